#!/bin/sh
# The article's Ubuntu LAMP server, with getacert in place of getacert.php.
#
#   sudo scripts/provision-lamp.sh
#
# Installs Apache with mod_ssl and PHP (php-fpm), the application CA in the article's
# places, the `getacert` system user that alone may read the CA key, getacert itself
# (from target/release, built here when missing) as a FastCGI daemon behind
# /run/getacert/getacert.sock (systemd socket activation; without systemd, as in CI
# containers, spawn-fcgi makes the same socket and starts the daemon as getacert), the
# HTTPS site of apache/ssl-clientauth.conf with apache/getacert.conf, and the /auth/
# test page. Run it again at any time: it keeps the CA and ends in the same state.
#
# An admin who already followed the article keeps the CA key, rootCA.pem and ca.conf:
# only default_md = sha1 becomes sha256 (backup ca.conf.bak) and index.txt.attr gets
# unique_subject = no, the two things `getacert check` warns about.
#
# Environment (defaults are the article's):
#   GETACERT_SSL_DIR   /etc/apache2/ssl.crt  rootCA.key, rootCA.pem, ca-bundle.crt
#   GETACERT_CA_DIR    /var/www/auth/ca      ca.conf, index.txt, serial, newcerts/
#   GETACERT_AUTH_DIR  /var/www/auth         the app's /auth/ pages
#   GETACERT_CA_SUBJECT  subject of a new root CA (/C=US/ST=CA/L=Sacramento/O=MyApp/CN=MyApp Root CA)
#   GETACERT_BIN       the getacert program to install (default: target/release/getacert)
#   HTTPS_LISTEN, HTTP_LISTEN  Apache's ports (443, 80), e.g. 127.0.0.1:18443 in CI;
#                      when not the defaults, /etc/apache2/ports.conf is rewritten
#   CI=true            never prompt (nothing here prompts anyway)
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/render.sh
. "$repo/scripts/lib/render.sh"

SSL_DIR=${GETACERT_SSL_DIR:-/etc/apache2/ssl.crt}
CA_DIR=${GETACERT_CA_DIR:-/var/www/auth/ca}
AUTH_DIR=${GETACERT_AUTH_DIR:-/var/www/auth}
CA_SUBJECT=${GETACERT_CA_SUBJECT:-/C=US/ST=CA/L=Sacramento/O=MyApp/CN=MyApp Root CA}
HTTPS_LISTEN=${HTTPS_LISTEN:-443}
HTTP_LISTEN=${HTTP_LISTEN:-80}
CA_CONF=$CA_DIR/ca.conf
SOCK=/run/getacert/getacert.sock
export DEBIAN_FRONTEND=noninteractive

say() { printf '==> %s\n' "$*"; }
die() { printf 'provision-lamp: %s\n' "$*" >&2; exit 1; }
has_systemd() { [ -d /run/systemd/system ]; }

[ "$(id -u)" = 0 ] || die "run as root (sudo $0)"

# --- 0. packages (apt-get update only when something is missing) -----------------------
need=''
pkgs='apache2 php-fpm openssl ssl-cert curl ca-certificates'
has_systemd || pkgs="$pkgs spawn-fcgi"
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need="$need $p"
done
if [ -n "$need" ]; then
	say "installing$need"
	apt-get update -q
	# shellcheck disable=SC2086 # a list of package names
	apt-get install -y -q --no-install-recommends $need
fi

# --- 1. the getacert program -------------------------------------------------------------
bin=${GETACERT_BIN:-$repo/target/release/getacert}
if ! "$bin" --version >/dev/null 2>&1; then
	say "building getacert (cargo build --release)"
	for p in build-essential pkg-config libssl-dev; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			{ apt-get update -q && apt-get install -y -q --no-install-recommends "$p"; }
	done
	PATH=$HOME/.cargo/bin:$PATH
	if ! command -v cargo >/dev/null; then
		curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
	fi
	(cd "$repo" && cargo build --release)
	bin=$repo/target/release/getacert
fi
if ! cmp -s "$bin" /usr/local/bin/getacert; then
	say "installing $bin as /usr/local/bin/getacert"
	install -m 0755 "$bin" /usr/local/bin/getacert.new
	mv -f /usr/local/bin/getacert.new /usr/local/bin/getacert
fi

# --- 2. the getacert user: the only one (with root) who may read the CA key -------------
if ! id getacert >/dev/null 2>&1; then
	say "creating the system user getacert"
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin getacert
fi

# --- 3. the application CA (article steps 1 and 4) ----------------------------------------
mkdir -p "$SSL_DIR"
chmod 0755 "$SSL_DIR"
if [ ! -f "$SSL_DIR/rootCA.key" ]; then
	say "making the root CA in $SSL_DIR ($CA_SUBJECT)"
	(umask 077 && openssl genrsa -out "$SSL_DIR/rootCA.key" 2048 2>/dev/null)
	openssl req -x509 -new -key "$SSL_DIR/rootCA.key" -days 7300 -subj "$CA_SUBJECT" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$SSL_DIR/rootCA.pem"
fi
[ -f "$SSL_DIR/rootCA.pem" ] || die "$SSL_DIR/rootCA.key exists but rootCA.pem does not"
[ -f "$SSL_DIR/ca-bundle.crt" ] || cp "$SSL_DIR/rootCA.pem" "$SSL_DIR/ca-bundle.crt"
chown getacert:getacert "$SSL_DIR/rootCA.key"
chmod 0600 "$SSL_DIR/rootCA.key"
chmod 0644 "$SSL_DIR/rootCA.pem" "$SSL_DIR/ca-bundle.crt"

mkdir -p "$CA_DIR/newcerts"
[ -f "$CA_DIR/index.txt" ] || : >"$CA_DIR/index.txt"
[ -f "$CA_DIR/serial" ] || echo 1000 >"$CA_DIR/serial"
[ -f "$CA_DIR/crlnumber" ] || echo 1000 >"$CA_DIR/crlnumber"
# Several certificates per user (one per device) need unique_subject = no.
if ! grep -qs '^unique_subject *= *no' "$CA_DIR/index.txt.attr"; then
	echo 'unique_subject = no' >"$CA_DIR/index.txt.attr"
fi
if [ ! -f "$CA_CONF" ]; then
	say "writing $CA_CONF"
	cat >"$CA_CONF" <<EOF
# The article's ca.conf (step 4.2), for getacert and \`openssl ca -config\`.
# Written by scripts/provision-lamp.sh. When you run openssl ca by hand, do it as
# getacert and hold getacert's lock:
#   runuser -u getacert -- flock $CA_DIR/index.txt.lock openssl ca -config $CA_CONF ...
[ ca ]
default_ca      = CA_default

[ CA_default ]
dir             = $CA_DIR
database        = \$dir/index.txt
new_certs_dir   = \$dir/newcerts
certificate     = $SSL_DIR/rootCA.pem
private_key     = $SSL_DIR/rootCA.key
serial          = \$dir/serial
crlnumber       = \$dir/crlnumber
crl             = \$dir/crl.pem
default_days    = 365
default_crl_days = 30
default_md      = sha256
policy          = policy_any
email_in_dn     = yes
name_opt        = ca_default
cert_opt        = ca_default
copy_extensions = none
unique_subject  = no

[ policy_any ]
countryName            = optional
stateOrProvinceName    = optional
localityName           = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = supplied
emailAddress           = optional

[ getacert ]
# What the article's getacert.php hard-coded. Every key, with its default, is listed
# in the ca.conf that \`getacert init DIR\` writes.
organizational_unit = MyApp client certificate
crl_file = $CA_DIR/crl.pem
EOF
else
	# The article's ca.conf: keep it, but OpenSSL 3 clients refuse SHA-1 certificates.
	if grep -q '^[[:space:]]*default_md[[:space:]]*=[[:space:]]*sha1' "$CA_CONF"; then
		say "$CA_CONF: default_md sha1 -> sha256 (backup: ca.conf.bak)"
		sed -i.bak 's/^\([[:space:]]*default_md[[:space:]]*=[[:space:]]*\)sha1/\1sha256/' "$CA_CONF"
	fi
	grep -q '^\[ *getacert *\]' "$CA_CONF" || printf '\n[ getacert ]\n' >>"$CA_CONF"
fi
# The front secret: getacert answers only requests that carry it, and only Apache's
# master process (root) reads the copy Apache sends, so a PHP script on the socket is
# not taken for the web server (issue 10; docs/deployment.md).
if [ ! -s "$CA_DIR/front-secret" ]; then
	(umask 077 && openssl rand -hex 32 >"$CA_DIR/front-secret")
fi
(umask 077 && printf 'SetEnv GETACERT_FRONT_SECRET "%s"\n' "$(cat "$CA_DIR/front-secret")" >"$SSL_DIR/front-secret.apache")
chown root:root "$SSL_DIR/front-secret.apache"
chmod 0600 "$SSL_DIR/front-secret.apache"
grep -q '^front_secret_file' "$CA_CONF" ||
	sed -i "/^\[ *getacert *\]/a front_secret_file = $CA_DIR/front-secret" "$CA_CONF"
# The database belongs to getacert; nobody else may even look (the web server serves
# $AUTH_DIR, and the article put the CA inside it).
chown -R getacert:getacert "$CA_DIR"
chmod 0700 "$CA_DIR"
say "getacert check"
runuser -u getacert -- /usr/local/bin/getacert --config "$CA_CONF" check

# --- 4. the app's /auth/ page (article step 3, without phpinfo) ---------------------------
mkdir -p "$AUTH_DIR"
if [ ! -f "$AUTH_DIR/index.php" ] || grep -qx '<?php phpinfo();' "$AUTH_DIR/index.php"; then
	install -m 0644 "$repo/examples/auth/index.php" "$AUTH_DIR/index.php"
fi

# --- 5. Apache: mod_ssl, php-fpm, the HTTPS site, /getacert.php -----------------------------
fpm=$(basename "$(find_php_fpm)")             # php-fpm8.3, whose service is php8.3-fpm
fpm=php${fpm#php-fpm}-fpm
# PHP runs as its own user, not as www-data: a PHP script then cannot use Apache's
# access to getacert's socket (www-data), nor read what Apache reads.
id phpapp >/dev/null 2>&1 ||
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin phpapp
pool=/etc/php/${fpm#php}
pool=${pool%-fpm}/fpm/pool.d/www.conf
if [ -f "$pool" ]; then
	sed -i 's/^user = www-data$/user = phpapp/; s/^group = www-data$/group = phpapp/' "$pool"
fi
a2enmod -q ssl proxy_fcgi setenvif >/dev/null
a2enconf -q "$fpm" >/dev/null
case $HTTPS_LISTEN in *:*) vhost=$HTTPS_LISTEN ;; *) vhost="*:$HTTPS_LISTEN" ;; esac
[ "$HTTPS_LISTEN" = 443 ] && vhost=''
R_HTTPS_LISTEN=$vhost R_CA_DIR=$SSL_DIR R_CA_DB_DIR=$CA_DIR R_CA_CONF=$CA_CONF R_AUTH_DIR=$AUTH_DIR \
	render "$repo/apache/ssl-clientauth.conf" /etc/apache2/sites-available/getacert-ssl.conf
R_CA_DIR=$SSL_DIR render "$repo/apache/getacert.conf" /etc/apache2/conf-available/getacert.conf
a2enconf -q getacert >/dev/null
a2dissite -q default-ssl >/dev/null 2>&1 || true     # the article enabled it; ours replaces it
a2ensite -q getacert-ssl >/dev/null
if [ "$HTTPS_LISTEN" != 443 ] || [ "$HTTP_LISTEN" != 80 ]; then
	printf '# Written by scripts/provision-lamp.sh (HTTP_LISTEN, HTTPS_LISTEN)\nListen %s\n<IfModule ssl_module>\n\tListen %s\n</IfModule>\n' \
		"$HTTP_LISTEN" "$HTTPS_LISTEN" >/etc/apache2/ports.conf
fi
apache2ctl configtest

# --- 6. start everything ---------------------------------------------------------------------
if has_systemd; then
	install -m 0644 "$repo/systemd/getacert.socket" "$repo/systemd/getacert.service" /etc/systemd/system/
	if [ "$CA_CONF" != /etc/getacert/ca.conf ]; then
		mkdir -p /etc/systemd/system/getacert.service.d
		printf '[Service]\nEnvironment=GETACERT_CONFIG=%s\nReadWritePaths=-%s\n' "$CA_CONF" "$CA_DIR" \
			>/etc/systemd/system/getacert.service.d/provision.conf
	fi
	systemctl daemon-reload
	systemctl enable --now getacert.socket
	systemctl try-restart getacert.service
	systemctl enable "$fpm" && systemctl restart "$fpm"
	systemctl enable apache2
	systemctl reload-or-restart apache2
else
	# No systemd (containers, CI): spawn-fcgi makes the socket as root, 0660
	# getacert:www-data, and runs getacert as getacert with it on fd 0.
	mkdir -p /run/getacert
	chmod 0755 /run/getacert
	if [ -f /run/getacert/getacert.pid ]; then
		pid=$(cat /run/getacert/getacert.pid)
		kill "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	fi
	rm -f "$SOCK"
	spawn-fcgi -s "$SOCK" -M 0660 -U getacert -G www-data -u getacert -g getacert \
		-P /run/getacert/getacert.pid -- /usr/local/bin/getacert --config "$CA_CONF" serve
	service "$fpm" restart
	apache2ctl graceful
fi

# --- 7. does it answer? ---------------------------------------------------------------------
case $HTTPS_LISTEN in *:*) base=https://$HTTPS_LISTEN ;; *) base=https://127.0.0.1:$HTTPS_LISTEN ;; esac
i=0
until code=$(curl -ks -o /dev/null -w '%{http_code}' "$base/getacert.php") && [ "$code" = 200 ]; do
	i=$((i + 1))
	[ $i -lt 30 ] || die "$base/getacert.php answers ${code:-nothing}, not 200 (see /var/log/apache2/error.log)"
	sleep 1
done
say "ready: $base/getacert.php (enroll), $base/auth/ (log in)"
say "the CA key $SSL_DIR/rootCA.key is readable by getacert only; web server socket $SOCK"
