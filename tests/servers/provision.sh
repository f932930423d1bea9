#!/usr/bin/env bash
# scripts/provision-lamp.sh on this machine: it reconfigures the system's Apache, so it
# runs only with CI=true or GETACERT_TEST_PROVISION=1 (and in the Vagrant box).
#
# 1. An admin who followed the article (its rootCA.key, sha1 ca.conf, phpinfo page,
#    .htaccess files) runs the script: the CA is kept and fixed, enrolling and logging
#    in work, the key is getacert's alone.
# 2. Run again: the same files, the same CA, the old certificate still logs in.
# 3. The admin's own paths (GETACERT_SSL_DIR, _CA_DIR, _AUTH_DIR): a fresh CA there.
# 4. Back to the article's paths.
# Without systemd, Apache listens on 127.0.0.1 high ports and everything started is
# stopped at the end; with systemd (the Vagrant box) it keeps 80/443 and stays up.
. "$(dirname "$0")/lib.sh"
if [ "${CI:-}" != true ] && [ -z "${GETACERT_TEST_PROVISION:-}" ]; then
	skip "provision-lamp.sh reconfigures this machine's Apache: set CI=true or GETACERT_TEST_PROVISION=1"
	exit 0
fi
setup
getacert_bin
[ -n "$BIN" ] || exit 1
mkdir -p "$T/out"
export GETACERT_BIN=$BIN
if [ -d /run/systemd/system ]; then
	PORT=443
	export HTTPS_LISTEN=443 HTTP_LISTEN=80
else
	PORT=$(free_port)
	HTTP_PORT=$(free_port)
	export HTTPS_LISTEN=127.0.0.1:$PORT HTTP_LISTEN=127.0.0.1:$HTTP_PORT
	on_exit "apache2ctl stop; service \$(basename /usr/sbin/php-fpm* | sed 's/php-fpm\(.*\)/php\1-fpm/') stop; stop_pid /run/getacert/getacert.pid"
fi
SSL=/etc/apache2/ssl.crt CADIR=/var/www/auth/ca

# --- the article's state (steps 1-5), unless this machine already has a CA there -------------
if [ ! -f "$SSL/rootCA.key" ]; then
	(
		set -e
		mkdir -p "$SSL" && cd "$SSL"
		openssl genrsa -out rootCA.key 2048
		openssl req -x509 -new -nodes -key rootCA.key -days 7300 -subj "/C=US/ST=CA/O=MyApp/CN=MyApp Root CA" -out rootCA.pem
		cp rootCA.pem ca-bundle.crt
		mkdir -p /var/www/auth && cd /var/www/auth
		echo '<?php phpinfo();' >index.php
		printf 'SSLVerifyClient optional\nSSLVerifyDepth 1\n' >.htaccess
		mkdir -p "$CADIR" && cd "$CADIR"
		touch index.txt && mkdir -p newcerts && echo 1000 >serial && echo 'Deny from all' >.htaccess
		cat >ca.conf <<'EOF'
[ ca ]
default_ca      = CA_default
[ CA_default ]
dir            = /var/www/auth/ca/
database       = $dir/index.txt
new_certs_dir  = $dir/newcerts
certificate    = /etc/apache2/ssl.crt/rootCA.pem
serial         = $dir/serial
private_key    = /etc/apache2/ssl.crt/rootCA.key
RANDFILE       = $dir/private/.rand
default_days   = 3650
default_crl_days= 60
default_md     = sha1
policy         = policy_any
email_in_dn    = yes
name_opt       = ca_default
cert_opt       = ca_default
copy_extensions = none
[ policy_any ]
countryName            = supplied
stateOrProvinceName    = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = supplied
emailAddress           = optional
EOF
		chown -R www-data .
	) >"$T/logs/article.out" 2>&1
	check "the article's steps 1-5 state made" test $? = 0
	ARTICLE=yes
fi

provision() { # provision LOG [ENV=VALUE...]
	local log=$1
	shift
	env "$@" CI=true "$REPO/scripts/provision-lamp.sh" >"$log" 2>&1
}
snapshot() {
	sha256sum /etc/apache2/sites-available/getacert-ssl.conf /etc/apache2/conf-available/getacert.conf \
		/etc/apache2/ports.conf "$CADIR/ca.conf" "$SSL/rootCA.key" "$SSL/rootCA.pem" "$SSL/ca-bundle.crt" \
		/var/www/auth/index.php /usr/local/bin/getacert 2>&1
	ls /etc/apache2/sites-enabled /etc/apache2/conf-enabled /etc/apache2/mods-enabled
	stat -c '%n %a %U:%G' "$SSL/rootCA.key" "$CADIR" /run/getacert/getacert.sock 2>&1
}
CURLK=(-- -k)
enroll_login() { # enroll_login USER MODE CA_PEM: enroll on the provisioned Apache, log in
	local u=$T/users/$1
	check "provisioned Apache: enroll $1 ($2)" "$REPO/scripts/enroll" -m "$2" -k "$u.key" -o "$u.der" -p "$u.pem" \
		"https://127.0.0.1:$PORT/getacert.php" "$1" "${CURLK[@]}"
	check "provisioned Apache: $1's certificate verifies against $3" openssl verify -purpose sslclient -CAfile "$3" "$u.pem"
	curl -sk --cert "$u.pem" --key "$u.key" "https://127.0.0.1:$PORT/auth/" >"$T/out/auth-$1" 2>&1
	check_grep "provisioned Apache: /auth/ with $1's certificate: SUCCESS as $1" "$T/out/auth-$1" "^SSL_CLIENT_S_DN_CN=$1$"
}

# --- 1. first run ------------------------------------------------------------------------------------
check "provision-lamp.sh (first run) succeeds" provision "$T/logs/provision1.out"
tail -n 3 "$T/logs/provision1.out" | sed 's/^/#   /'
if [ -n "${ARTICLE:-}" ]; then
	check_grep "the article's ca.conf is kept, its default_md now sha256" "$CADIR/ca.conf" '^default_md *= *sha256'
	check "the article's ca.conf was backed up (ca.conf.bak with sha1)" grep -q '^default_md *= *sha1' "$CADIR/ca.conf.bak"
	check_nogrep "the article's phpinfo() page was replaced" /var/www/auth/index.php 'phpinfo'
fi
check "getacert check (as getacert) passes on the provisioned CA" runuser -u getacert -- /usr/local/bin/getacert --config "$CADIR/ca.conf" check
CA=$CADIR # read by suite_key_private
suite_key_private
check "the socket is 0660 getacert:www-data" test "$(stat -c '%a %U %G' /run/getacert/getacert.sock)" = "660 getacert www-data"
fcgi_as nobody /run/getacert/getacert.sock </dev/null >"$T/out/nobody" 2>&1
check_nogrep "nobody gets nothing from the socket" "$T/out/nobody" '^Content-[Tt]ype|<form'
curl -sk "https://127.0.0.1:$PORT/auth/" >"$T/out/auth-anon" 2>&1
check_grep "provisioned Apache: /auth/ without a certificate: NONE" "$T/out/auth-anon" '^SSL_CLIENT_VERIFY=NONE$'
u1=prov$$a$RANDOM
enroll_login "$u1" spkac "$SSL/rootCA.pem"
snapshot >"$T/out/snap1"

# --- 2. second run: same result ----------------------------------------------------------------------
check "provision-lamp.sh (second run) succeeds" provision "$T/logs/provision2.out"
snapshot >"$T/out/snap2"
check "second run: same configuration files, CA, key owner and modes" diff "$T/out/snap1" "$T/out/snap2"
curl -sk --cert "$T/users/$u1.pem" --key "$T/users/$u1.key" "https://127.0.0.1:$PORT/auth/" >"$T/out/auth-again" 2>&1
check_grep "second run: the first user's certificate still logs in" "$T/out/auth-again" "^SSL_CLIENT_S_DN_CN=$u1$"
enroll_login "prov$$b$RANDOM" csr "$SSL/rootCA.pem"

# --- 3. the admin's own paths: a fresh CA --------------------------------------------------------------
check "provision-lamp.sh with GETACERT_SSL_DIR/_CA_DIR/_AUTH_DIR (fresh CA) succeeds" \
	provision "$T/logs/provision3.out" GETACERT_SSL_DIR="$T/own/ssl" GETACERT_CA_DIR="$T/own/ca" \
	GETACERT_AUTH_DIR="$T/own/auth" GETACERT_CA_SUBJECT="/O=Own/CN=Own Root CA"
chmod 0755 "$T/own" 2>/dev/null
check "fresh CA: the key is 0600 getacert" test "$(stat -c '%a %U' "$T/own/ssl/rootCA.key" 2>&1)" = "600 getacert"
check_grep "fresh CA: ca.conf uses sha256 and keeps the key outside the database" "$T/own/ca/ca.conf" "^private_key += $T/own/ssl/rootCA.key$"
enroll_login "prov$$c$RANDOM" spkac "$T/own/ssl/rootCA.pem"

# --- 4. back to the article's paths ------------------------------------------------------------------
check "provision-lamp.sh back on the article's paths succeeds" provision "$T/logs/provision4.out"
snapshot >"$T/out/snap4"
check "back on the article's paths: the same state as the second run" diff "$T/out/snap2" "$T/out/snap4"
curl -sk --cert "$T/users/$u1.pem" --key "$T/users/$u1.key" "https://127.0.0.1:$PORT/auth/" >"$T/out/auth-back" 2>&1
check_grep "back on the article's paths: the first user still logs in" "$T/out/auth-back" "^SSL_CLIENT_S_DN_CN=$u1$"
for f in "$T"/logs/provision*.out; do
	[ "$FAILED" -eq 0 ] || { echo "# --- ${f##*/}"; tail -n 20 "$f" | sed 's/^/#   /'; }
done
