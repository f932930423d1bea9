# shellcheck shell=sh
# Turns the shipped apache/ and nginx/ files into configurations for other paths and
# ports, so that the demo, the provisioning script and tests/servers run exactly the
# files an admin copies (only paths, ports and the commented CRL lines change), and
# writes the small private main configurations (nginx.conf, httpd.conf, php-fpm.conf)
# that let those servers run from a scratch directory on loopback, next to -- never
# instead of -- the system's own, with a server certificate for 127.0.0.1.
#
# POSIX sh, to be sourced. Nothing here starts or stops a process.
#
# render SHIPPED_FILE OUT_FILE
#   Copies SHIPPED_FILE to OUT_FILE, replacing the shipped paths with the values of
#   these variables when they are set (unset or empty: the shipped value stays):
#     R_HTTPS_LISTEN  443 in `listen 443 ssl` / `<VirtualHost *:443>`, e.g. 127.0.0.1:8443
#                     (the IPv6 listen line is dropped)
#     R_TLS_CERT      /etc/ssl/certs/ssl-cert-snakeoil.pem
#     R_TLS_KEY       /etc/ssl/private/ssl-cert-snakeoil.key
#     R_CA_CONF       /var/www/auth/ca/ca.conf and /etc/getacert/ca.conf
#     R_CA_DB_DIR     /var/www/auth/ca (the CA database, crl.pem)
#     R_CA_DIR        /etc/apache2/ssl.crt and /etc/getacert (ca-bundle.crt, crl.pem)
#     R_AUTH_DIR      /var/www/auth (the app)
#     R_WWW           /var/www
#     R_GETACERT_PASS unix:/run/getacert/getacert.sock, e.g. unix:/tmp/x/g.sock or 127.0.0.1:9000
#     R_PHP_SOCK      /run/php/php-fpm.sock
#     R_BIN_DIR       /usr/local/bin (where the getacert program is)
#     R_OCSP_LISTEN   127.0.0.1:8961, the loopback address of the OCSP responder
#     R_CRL=yes       uncomments the CRL lines (SSLCARevocation*, ssl_crl)

_r_pat() { printf '%s' "$1" | sed 's/[][\.*^$#]/\\&/g'; }
_r_rep() { printf '%s' "$1" | sed 's/[\&#]/\\&/g'; }
# _r_sub FROM NAME VALUE: sed expressions replacing FROM by a token, and the token by
# VALUE (two steps, so that a value containing another shipped path is left alone),
# when VALUE is set.
_r_sub() {
	[ -n "$3" ] || return 0
	printf 's#%s#@@R_%s@@#g\n' "$(_r_pat "$1")" "$2" >>"$_r_tmp.1"
	printf 's#@@R_%s@@#%s#g\n' "$2" "$(_r_rep "$3")" >>"$_r_tmp.2"
}

render() {
	_r_tmp=$(mktemp)
	: >"$_r_tmp.1"
	: >"$_r_tmp.2"
	if [ -n "${R_HTTPS_LISTEN:-}" ]; then
		printf '%s\n' '/listen[[:space:]]*\[::\]:443/d' >>"$_r_tmp.1"
		_r_sub 'listen 443 ssl' LISTEN "listen $R_HTTPS_LISTEN ssl"
		_r_sub '<VirtualHost *:443>' VHOST "<VirtualHost $R_HTTPS_LISTEN>"
	fi
	_r_sub /etc/ssl/certs/ssl-cert-snakeoil.pem TLS_CERT "${R_TLS_CERT:-}"
	_r_sub /etc/ssl/private/ssl-cert-snakeoil.key TLS_KEY "${R_TLS_KEY:-}"
	_r_sub /var/www/auth/ca/ca.conf CA_CONF "${R_CA_CONF:-}"
	_r_sub /etc/getacert/ca.conf CA_CONF "${R_CA_CONF:-}"
	_r_sub /var/www/auth/ca CA_DB_DIR "${R_CA_DB_DIR:-}"
	_r_sub /etc/apache2/ssl.crt CA_DIR "${R_CA_DIR:-}"
	_r_sub /etc/getacert CA_DIR "${R_CA_DIR:-}"
	_r_sub /var/www/auth AUTH_DIR "${R_AUTH_DIR:-}"
	_r_sub /var/www WWW "${R_WWW:-}"
	_r_sub unix:/run/getacert/getacert.sock GETACERT_PASS "${R_GETACERT_PASS:-}"
	_r_sub /run/php/php-fpm.sock PHP_SOCK "${R_PHP_SOCK:-}"
	_r_sub /usr/local/bin BIN_DIR "${R_BIN_DIR:-}"
	_r_sub 127.0.0.1:8961 OCSP_LISTEN "${R_OCSP_LISTEN:-}"
	if [ "${R_CRL:-}" = yes ]; then
		printf '%s\n' 's/^\([[:space:]]*\)#\(SSLCARevocation\)/\1\2/' 's/^\([[:space:]]*\)#\(ssl_crl \)/\1\2/' >>"$_r_tmp.1"
	fi
	sed -f "$_r_tmp.1" -f "$_r_tmp.2" "$1" >"$2"
	_r_rc=$?
	rm -f "$_r_tmp" "$_r_tmp.1" "$_r_tmp.2"
	return $_r_rc
}

# write_nginx_main PREFIX SITE_CONF [USER]
#   PREFIX/nginx.conf: a private nginx (pid, logs, temp files under PREFIX) whose http
#   block includes SITE_CONF (a rendered nginx/getacert.conf). fastcgi_params and
#   mime.types are copied from /etc/nginx, snippets/getacert-params.conf from the
#   repository ($R_REPO). SITE_CONF must be an absolute path. USER: the worker user
#   when started as root. Start it with
#   nginx -p PREFIX/ -c PREFIX/nginx.conf -e PREFIX/logs/error.log
write_nginx_main() {
	_n_prefix=$1
	mkdir -p "$_n_prefix/logs" "$_n_prefix/tmp" "$_n_prefix/snippets"
	cp /etc/nginx/fastcgi_params /etc/nginx/mime.types "$_n_prefix/"
	cp "$R_REPO/nginx/getacert-params.conf" "$_n_prefix/snippets/"
	{
		[ -z "${3:-}" ] || printf 'user %s;\n' "$3"
		cat <<EOF
worker_processes 1;
pid $_n_prefix/nginx.pid;
error_log $_n_prefix/logs/error.log;
events { worker_connections 128; }
http {
	include mime.types;
	default_type application/octet-stream;
	access_log $_n_prefix/logs/access.log;
	client_body_temp_path $_n_prefix/tmp/body;
	fastcgi_temp_path $_n_prefix/tmp/fastcgi;
	proxy_temp_path $_n_prefix/tmp/proxy;
	uwsgi_temp_path $_n_prefix/tmp/uwsgi;
	scgi_temp_path $_n_prefix/tmp/scgi;
	include $2;
}
EOF
	} >"$_n_prefix/nginx.conf"
}

# write_apache_main DIR LISTEN WWW PHP_SOCK SITE_CONF [GETACERT_CONF]
#   DIR/httpd.conf: a private Apache (ServerRoot, pid, logs, runtime files under DIR;
#   modules from /usr/lib/apache2/modules; event MPM; workers as www-data) listening
#   on LISTEN, with WWW readable, PHP through php-fpm at PHP_SOCK (the way Debian's
#   php-fpm.conf does it), including SITE_CONF (a rendered apache/ssl-clientauth.conf)
#   and GETACERT_CONF (a rendered apache/getacert*.conf). Start it with
#   apache2 -f DIR/httpd.conf -k start
write_apache_main() {
	_a_dir=$1
	mkdir -p "$_a_dir/logs" "$_a_dir/run" "$_a_dir/fcgid"
	chown www-data "$_a_dir/fcgid" 2>/dev/null || true
	{
		cat <<EOF
ServerRoot $_a_dir
ServerName localhost
Define APACHE_LOG_DIR $_a_dir/logs
PidFile $_a_dir/run/httpd.pid
DefaultRuntimeDir $_a_dir/run
Mutex file:$_a_dir/run default
ErrorLog $_a_dir/logs/error.log
LogLevel warn
LogFormat "%h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"" combined
Listen $2 https
User www-data
Group www-data
EOF
		for m in mpm_event authz_core authz_host mime dir alias env setenvif \
			socache_shmcb ssl proxy proxy_fcgi fcgid cgi; do
			printf 'LoadModule %s_module /usr/lib/apache2/modules/mod_%s.so\n' "$m" "$m"
		done
		cat <<EOF
TypesConfig /etc/mime.types
SSLSessionCache shmcb:$_a_dir/run/ssl_scache(512000)
SSLRandomSeed startup builtin
FcgidIPCDir $_a_dir/fcgid
FcgidProcessTableFile $_a_dir/run/fcgid_shm
<Directory />
	Options FollowSymLinks
	AllowOverride None
	Require all denied
</Directory>
<Directory $3>
	Options FollowSymLinks
	AllowOverride None
	Require all granted
</Directory>
DirectoryIndex index.php index.html
<FilesMatch ".+\.php$">
	SetHandler "proxy:unix:$4|fcgi://localhost"
</FilesMatch>
Include $5
EOF
		[ -z "${6:-}" ] || printf 'Include %s\n' "$6"
	} >"$_a_dir/httpd.conf"
}

# write_php_fpm DIR SOCKET [USER]
#   DIR/php-fpm.conf: a private php-fpm master (pid and log under DIR) with one pool
#   listening on SOCKET; USER (when started as root) runs the pool and owns the socket.
#   Start it with php-fpmX.Y -y DIR/php-fpm.conf
write_php_fpm() {
	mkdir -p "$1"
	{
		cat <<EOF
[global]
pid = $1/php-fpm.pid
error_log = $1/error.log
daemonize = yes
[app]
listen = $2
listen.mode = 0660
pm = static
pm.max_children = 2
catch_workers_output = yes
EOF
		if [ -n "${3:-}" ]; then
			printf 'user = %s\ngroup = %s\nlisten.owner = %s\nlisten.group = %s\n' "$3" "$3" "$3" "$3"
		fi
	} >"$1/php-fpm.conf"
}

# find_php_fpm: prints the php-fpm program (php-fpm8.2, php-fpm8.3, ...).
find_php_fpm() {
	for _p in /usr/sbin/php-fpm*; do
		[ -x "$_p" ] && { printf '%s\n' "$_p"; return 0; }
	done
	command -v php-fpm
}

# make_server_tls DIR DAYS: DIR/server-ca.pem (what clients trust: curl --cacert) and
# DIR/server.pem + server.key, a certificate for 127.0.0.1 and localhost it signed.
make_server_tls() {
	(
		cd "$1" || exit 1
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$2" \
			-subj "/CN=getacert loopback server CA" -keyout server-ca.key -out server-ca.pem &&
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
				-keyout server.key -out server.csr &&
			printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext &&
			openssl x509 -req -in server.csr -CA server-ca.pem -CAkey server-ca.key -CAcreateserial \
				-days "$2" -extfile server.ext -out server.pem
	)
}
