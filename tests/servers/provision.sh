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
# 5. The shipped CRL lines, uncommented, pass configtest (provisioning made crl.pem).
# 6. mod_fcgid enabled after Apache started (as the test-deps provisioner does): the
#    next run restarts Apache, whose children then serve instead of crashing in a loop.
# With systemd, a CA under /tmp is refused: the unit's PrivateTmp=yes would hide it.
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
		/var/www/auth/index.php /usr/local/bin/getacert "$CADIR/crl.pem" 2>&1
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
	check_nogrep "the article's phpinfo() page was replaced" /var/www/auth/index.php '^<\?php phpinfo\(\);'
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
# Not under /tmp: getacert.service's PrivateTmp=yes hides it from the daemon.
OWN=$(mktemp -d /var/lib/getacert-provision-test.XXXXXX)
on_exit "rm -rf '$OWN'"
chmod 0755 "$OWN"
check "provision-lamp.sh with GETACERT_SSL_DIR/_CA_DIR/_AUTH_DIR (fresh CA) succeeds" \
	provision "$T/logs/provision3.out" GETACERT_SSL_DIR="$OWN/ssl" GETACERT_CA_DIR="$OWN/ca" \
	GETACERT_AUTH_DIR="$OWN/auth" GETACERT_CA_SUBJECT="/O=Own/CN=Own Root CA"
check "fresh CA: the key is 0600 getacert" test "$(stat -c '%a %U' "$OWN/ssl/rootCA.key" 2>&1)" = "600 getacert"
check_grep "fresh CA: ca.conf uses sha256 and keeps the key outside the database" "$OWN/ca/ca.conf" "^private_key += $OWN/ssl/rootCA.key$"
check "fresh CA: provisioning made its crl.pem, a CRL signed by its root CA" \
	openssl crl -in "$OWN/ca/crl.pem" -noout -CAfile "$OWN/ssl/rootCA.pem"
enroll_login "prov$$c$RANDOM" spkac "$OWN/ssl/rootCA.pem"
if [ -d /run/systemd/system ]; then
	provision "$T/logs/provision-tmp.out" GETACERT_SSL_DIR="$T/tmpca/ssl" GETACERT_CA_DIR="$T/tmpca/ca" \
		GETACERT_AUTH_DIR="$T/tmpca/auth"
	check "with systemd, a CA under /tmp is refused (the unit's PrivateTmp=yes hides it)" test $? -ne 0
	check_grep "with systemd, a CA under /tmp: the error says why" "$T/logs/provision-tmp.out" 'PrivateTmp=yes'
	check "with systemd, a CA under /tmp: nothing was made there" test ! -e "$T/tmpca"
fi

# --- 4. back to the article's paths ------------------------------------------------------------------
check "provision-lamp.sh back on the article's paths succeeds" provision "$T/logs/provision4.out"
snapshot >"$T/out/snap4"
check "back on the article's paths: the same state as the second run" diff "$T/out/snap2" "$T/out/snap4"
curl -sk --cert "$T/users/$u1.pem" --key "$T/users/$u1.key" "https://127.0.0.1:$PORT/auth/" >"$T/out/auth-back" 2>&1
check_grep "back on the article's paths: the first user still logs in" "$T/out/auth-back" "^SSL_CLIENT_S_DN_CN=$u1$"

# --- 5. the shipped CRL lines --------------------------------------------------------------------------
site=/etc/apache2/sites-available/getacert-ssl.conf
cp "$site" "$T/site.conf"
sed -i 's/^\([[:space:]]*\)#\(SSLCARevocation\)/\1\2/' "$site"
check_grep "the shipped CRL lines are uncommented for the test" "$site" '^[[:space:]]*SSLCARevocationFile /var/www/auth/ca/crl.pem$'
check "the shipped CRL lines pass apache2ctl configtest (provisioning made crl.pem)" apache2ctl configtest
cp "$T/site.conf" "$site"

# --- 6. mod_fcgid enabled while Apache runs ---------------------------------------------------------
if [ -f /etc/apache2/mods-available/fcgid.load ]; then
	had_fcgid=$([ -e /etc/apache2/mods-enabled/fcgid.load ] && echo yes)
	pid1=$(cat /run/apache2/apache2.pid 2>/dev/null)
	log=/var/log/apache2/error.log
	lines=$(wc -l <"$log" 2>/dev/null || echo 0)
	sleep 1 # a module enabled in the second Apache started would not count as "since"
	if [ -n "$had_fcgid" ]; then a2dismod -q fcgid >/dev/null; else a2enmod -q fcgid >/dev/null; fi
	check "mod_fcgid toggled while Apache runs: provision-lamp.sh succeeds" provision "$T/logs/provision-fcgid.out"
	check_grep "mod_fcgid toggled: provisioning restarted Apache (a reload cannot take a new module)" \
		"$T/logs/provision-fcgid.out" 'restarting it'
	check "mod_fcgid toggled: Apache's main process is a new one" test "$(cat /run/apache2/apache2.pid 2>/dev/null)" != "$pid1"
	sleep 3
	for _ in 1 2 3; do curl -sk --max-time 10 -o /dev/null "https://127.0.0.1:$PORT/getacert.php"; done
	tail -n +"$((lines + 1))" "$log" >"$T/out/fcgid-errors" 2>/dev/null
	check_nogrep "mod_fcgid toggled: no Apache child crashed (error.log)" "$T/out/fcgid-errors" 'exit signal|AH00052|mod_fcgid: .*(can.t|error)'
	curl -sk --max-time 10 --cert "$T/users/$u1.pem" --key "$T/users/$u1.key" "https://127.0.0.1:$PORT/auth/" >"$T/out/auth-fcgid" 2>&1
	check_grep "mod_fcgid toggled: the first user still logs in" "$T/out/auth-fcgid" "^SSL_CLIENT_S_DN_CN=$u1$"
	# Back as it was (and restarted again).
	if [ -n "$had_fcgid" ]; then a2enmod -q fcgid >/dev/null; else a2dismod -q fcgid >/dev/null; fi
	sleep 1
	check "mod_fcgid back as it was: provision-lamp.sh succeeds" provision "$T/logs/provision-fcgid2.out"
else
	notok "mod_fcgid is installed (libapache2-mod-fcgid; test-deps in the VM)"
fi
for f in "$T"/logs/provision*.out; do
	[ "$FAILED" -eq 0 ] || { echo "# --- ${f##*/}"; tail -n 20 "$f" | sed 's/^/#   /'; }
done
