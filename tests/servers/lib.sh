# shellcheck shell=bash disable=SC2015
# (SC2015: "a && b || report" is meant: any step failing is reported.)
# Shared by the tests in tests/servers/: a scratch directory per test, TLS material,
# the CA, private nginx / Apache / php-fpm / getacert instances on loopback (configs
# rendered from the shipped apache/ and nginx/ files by scripts/lib/render.sh), the
# enrollment-and-login checks every server variant runs, and "ok"/"not ok" lines that
# tests/servers/run counts.
#
# GETACERT_PID: the running getacert daemon (a pid or a pid file), for stop_pid.
# Runs as root (Apache and nginx start as root and serve as www-data; getacert runs as
# the user getacert). Everything started here is stopped by the EXIT trap.

set -u
export GETACERT_PID=''
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
R_REPO=$REPO
# shellcheck source=../../scripts/lib/render.sh
. "$REPO/scripts/lib/render.sh"
# shellcheck source=../../scripts/lib/port.sh
. "$REPO/scripts/lib/port.sh"

TEST_NAME=$(basename "$0" .sh)
FAILED=0
STOPS=()

# --- reporting ------------------------------------------------------------------------
ok() { echo "ok - $TEST_NAME: $*"; }
notok() {
	FAILED=$((FAILED + 1))
	echo "not ok - $TEST_NAME: $1"
	shift
	local line
	for line in "$@"; do printf '%s\n' "$line" | sed 's/^/#   /'; done
}
skip() { echo "skip - $TEST_NAME: $*"; }
# check DESCRIPTION COMMAND...: ok when COMMAND succeeds; its output is shown otherwise.
check() {
	local desc=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then ok "$desc"; else notok "$desc" "$(tail -n 15 "$T/check.out")"; fi
}
# check_grep DESCRIPTION FILE REGEX: ok when FILE has a line matching REGEX (grep -E).
check_grep() {
	if grep -Eq -- "$3" "$2" 2>/dev/null; then ok "$1"; else notok "$1" "expected /$3/ in:" "$(head -c 1500 "$2" 2>/dev/null)"; fi
}
# check_nogrep DESCRIPTION FILE REGEX: ok when no line of FILE matches REGEX.
check_nogrep() {
	if grep -Eq -- "$3" "$2" 2>/dev/null; then notok "$1" "unexpected /$3/ in:" "$(head -c 1500 "$2")"; else ok "$1"; fi
}

# --- scratch directory and cleanup -------------------------------------------------------
setup() {
	[ "$(id -u)" = 0 ] || { echo "Bail out! tests/servers must run as root (sudo)"; exit 1; }
	T=$(mktemp -d "/tmp/getacert-$TEST_NAME.XXXXXX")
	# Workers (www-data, getacert, nobody) must traverse it.
	chmod 0755 "$T"
	mkdir -p "$T/bin" "$T/run/getacert" "$T/www/html/app" "$T/www/auth" "$T/tls" "$T/users" "$T/logs"
	trap teardown EXIT
	trap 'exit 130' INT TERM
}

# on_exit COMMAND: run COMMAND (a string) at teardown, last registered first.
on_exit() { STOPS=("$1" "${STOPS[@]}"); }

teardown() {
	local s
	for s in "${STOPS[@]}"; do eval "$s" >/dev/null 2>&1 || true; done
	if [ "$FAILED" -gt 0 ]; then
		local log
		for log in "$T"/logs/*.log "$T"/nginx/logs/error.log "$T"/apache/logs/error.log "$T"/php/error.log; do
			[ -s "$log" ] || continue
			echo "# --- ${log#"$T"/} (last lines)"
			tail -n 25 "$log" | sed 's/^/#   /'
		done
	fi
	if [ -n "${KEEP_TMP:-}" ]; then echo "# kept $T"; else rm -rf "$T"; fi
}

# stop_pid PIDFILE_OR_PID: TERM, wait up to 10 s, then KILL.
stop_pid() {
	local pid=$1
	[ -f "$pid" ] && pid=$(cat "$pid" 2>/dev/null)
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
	kill -KILL "$pid" 2>/dev/null || true
}

# wait_for TEST...: retries `test TEST...` for up to 10 s.
wait_for() {
	for _ in $(seq 50); do test "$@" && return 0; sleep 0.2; done
	return 1
}
wait_port() {
	for _ in $(seq 50); do ss -Htln "sport = :$1" | grep -q . && return 0; sleep 0.2; done
	return 1
}

# --- the program under test --------------------------------------------------------------
# getacert_bin: copies the program into $T/bin (readable by every user) and sets BIN.
# GETACERT_BIN names it; else the newest of target/release and target/debug.
getacert_bin() {
	local src=${GETACERT_BIN:-}
	if [ -z "$src" ]; then
		local f
		for f in "$REPO/target/release/getacert" "$REPO/target/debug/getacert"; do
			[ -x "$f" ] && { [ -z "$src" ] || [ "$f" -nt "$src" ]; } && src=$f
		done
	fi
	BIN=$T/bin/getacert
	if [ -z "$src" ] || [ ! -x "$src" ]; then
		notok "getacert program found" "no GETACERT_BIN and no target/{release,debug}/getacert: run cargo build"
		BIN=''
		return 0
	fi
	install -m 0755 "$src" "$BIN"
}

# --- TLS material ------------------------------------------------------------------------
# make_tls: $T/tls/server-ca.pem (what curl trusts), server.pem/server.key for
# 127.0.0.1 and localhost, and a rogue CA with a client certificate for "alice"
# (rogue-alice.pem/.key) that the servers must not accept.
make_tls() {
	local d=$T/tls
	(
		set -e
		make_server_tls "$d" 2
		cd "$d"
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/O=MyApp/CN=MyApp Root CA" \
			-keyout rogue-ca.key -out rogue-ca.pem
		openssl req -newkey rsa:2048 -nodes -subj "/O=MyApp/CN=alice" -keyout rogue-alice.key -out rogue-alice.csr
		printf 'extendedKeyUsage=clientAuth\n' >client.ext
		openssl x509 -req -in rogue-alice.csr -CA rogue-ca.pem -CAkey rogue-ca.key -CAcreateserial \
			-days 2 -extfile client.ext -out rogue-alice.pem
	) >"$T/logs/tls.out" 2>&1 || { notok "TLS test material made" "$(tail "$T/logs/tls.out")"; return 1; }
}

# --- the application CA --------------------------------------------------------------------
# make_ca OWNER [KEY=VALUE ...]: `getacert init $T/ca`, the whole directory given to
# OWNER (getacert for the daemon, www-data for mod_fcgid and CGI) and closed to others;
# each KEY=VALUE is added to the [ getacert ] section. OCSP answers are valid for 3 s
# (ocsp_next_update = 3), so that a revocation shows at the web server in seconds.
make_ca() {
	local owner=$1 kv
	shift
	CA=$T/ca
	if [ -z "$BIN" ]; then
		# No program: a stand-in CA made by openssl, so that the TLS, client
		# certificate and PHP parts are still checked.
		mkdir -p "$CA"
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/O=MyApp/CN=getacert test Root CA" \
			-keyout "$CA/rootCA.key" -out "$CA/rootCA.pem" 2>/dev/null
		cp "$CA/rootCA.pem" "$CA/ca-bundle.crt"
		chown -R "$owner:$owner" "$CA"
		chmod 0700 "$CA"
		return 0
	fi
	if ! "$BIN" init "$CA" --cn "getacert test Root CA" >"$T/logs/init.out" 2>&1; then
		notok "getacert init" "$(cat "$T/logs/init.out")"
		return 1
	fi
	for kv in ocsp_next_update=3 "$@"; do
		sed -i "/^\[ *getacert *\]/a ${kv%%=*} = ${kv#*=}" "$CA/ca.conf"
	done
	chown -R "$owner:$owner" "$CA"
	chmod 0700 "$CA"
}

# issue_direct NAME: a client certificate for CN=NAME signed with the CA key by
# `openssl x509 -req` (not by getacert): proves the server trusts the CA, independent
# of getacert. Writes $T/users/NAME-direct.{key,pem}.
issue_direct() {
	local u=$T/users/$1-direct
	openssl req -newkey rsa:2048 -nodes -subj "/O=MyApp/CN=$1" -keyout "$u.key" -out "$u.csr" 2>/dev/null &&
		openssl x509 -req -in "$u.csr" -CA "$CA/rootCA.pem" -CAkey "$CA/rootCA.key" -set_serial 0x7E57 \
			-days 1 -extfile "$T/tls/client.ext" -out "$u.pem" 2>/dev/null || return 1
	# Recorded in index.txt as `openssl ca` would, or the OCSP responder (rightly)
	# calls it unknown and the server refuses it.
	[ -f "$CA/index.txt" ] || return 0
	printf 'V\t%s\t\t7E57\tunknown\t/O=MyApp/CN=%s\n' "$(date -u -d '+1 day' +%y%m%d%H%M%SZ)" "$1" >>"$CA/index.txt"
}

# --- servers -----------------------------------------------------------------------------------
# install_www: the app (examples/auth/index.php at /auth/, with the article's .htaccess,
# which must be ignored), an existing PHP form page that posts to /getacert.php, and a
# leftover getacert.php (the article's) that must never answer.
install_www() {
	cp "$REPO/examples/auth/index.php" "$T/www/auth/index.php"
	printf 'SSLVerifyClient optional\nSSLVerifyDepth 1\n' >"$T/www/auth/.htaccess"
	cat >"$T/www/html/app/signup.php" <<'EOF'
<?php header('Content-Type: text/html'); ?>
<!DOCTYPE html>
<h1>Let's generate you a cert so you don't have to use a password!</h1>
<form method="post" action="/getacert.php">
  <keygen name="pubkey" challenge="randomchars">
  The username I want: <input type="text" name="username" value="Alice">
  <input type="submit" name="createcert" value="Generate">
</form>
EOF
	printf '%s\n' '<?php echo "LEFTOVER getacert.php ran\n";' >"$T/www/html/getacert.php"
	# Whether PHP ever sees the front secret that the web server sends getacert.
	cat >"$T/www/html/secret.php" <<'EOF'
<?php echo (getenv("GETACERT_FRONT_SECRET") === false && !isset($_SERVER["GETACERT_FRONT_SECRET"])) ? "no front secret\n" : "FRONT SECRET SEEN\n";
EOF
	printf '%s\n' '<?php echo "php ok\n";' >"$T/www/html/index.php"
}

start_php_fpm() {
	write_php_fpm "$T/php" "$T/run/php-fpm.sock" www-data
	local fpm
	fpm=$(find_php_fpm) || { notok "php-fpm found"; return 1; }
	"$fpm" -y "$T/php/php-fpm.conf" >"$T/logs/php-fpm.out" 2>&1 &&
		on_exit "stop_pid '$T/php/php-fpm.pid'" &&
		wait_for -S "$T/run/php-fpm.sock" ||
		{ notok "php-fpm started" "$(cat "$T/logs/php-fpm.out" "$T/php/error.log" 2>/dev/null)"; return 1; }
}

# render_site SHIPPED OUT: the shipped file with this test's paths.
render_site() {
	# The OCSP responder's loopback port, chosen once per test.
	while [ -z "${OCSP_PORT:-}" ] || [ "$OCSP_PORT" = "${PORT:-}" ]; do OCSP_PORT=$(free_port); done
	R_HTTPS_LISTEN=127.0.0.1:$PORT R_TLS_CERT=$T/tls/server.pem R_TLS_KEY=$T/tls/server.key \
		R_CA_CONF=$T/ca/ca.conf R_CA_DB_DIR=$T/ca R_CA_DIR=$T/ca R_WWW=$T/www \
		R_GETACERT_PASS=${GETACERT_PASS:-unix:$T/run/getacert/getacert.sock} R_PHP_SOCK=$T/run/php-fpm.sock \
		R_BIN_DIR=$T/bin R_CRL=${CRL:-} R_OCSP_LISTEN=127.0.0.1:${OCSP_PORT:?} render "$1" "$2"
}

# start_nginx: nginx/getacert.conf rendered into $T/nginx, on 127.0.0.1:$PORT.
start_nginx() {
	mkdir -p "$T/nginx"
	render_site "$REPO/nginx/getacert.conf" "$T/nginx/site.conf"
	write_nginx_main "$T/nginx" "$T/nginx/site.conf" www-data
	NGINX=(nginx -p "$T/nginx/" -c "$T/nginx/nginx.conf" -e "$T/nginx/logs/error.log")
	check "nginx -t accepts the rendered nginx/getacert.conf" "${NGINX[@]}" -t
	"${NGINX[@]}" >"$T/logs/nginx.out" 2>&1 && on_exit "stop_pid '$T/nginx/nginx.pid'" && wait_port "$PORT" ||
		{ notok "nginx started" "$(cat "$T/logs/nginx.out")"; return 1; }
}
reload_nginx() {
	render_site "$REPO/nginx/getacert.conf" "$T/nginx/site.conf"
	"${NGINX[@]}" -s reload && sleep 1
}

# start_apache GETACERT_CONF: apache/ssl-clientauth.conf and the given apache/getacert*.conf
# rendered into $T/apache, on 127.0.0.1:$PORT.
start_apache() {
	mkdir -p "$T/apache"
	APACHE_GETACERT=$1
	render_site "$REPO/apache/ssl-clientauth.conf" "$T/apache/site.conf"
	render_site "$REPO/apache/$APACHE_GETACERT" "$T/apache/getacert.conf"
	write_apache_main "$T/apache" "127.0.0.1:$PORT" "$T/www" "$T/run/php-fpm.sock" \
		"$T/apache/site.conf" "$T/apache/getacert.conf"
	# APACHE_EXTRA: more configuration lines for one test (modules, <Proxy> settings).
	[ -z "${APACHE_EXTRA:-}" ] || printf '%s\n' "$APACHE_EXTRA" >>"$T/apache/httpd.conf"
	APACHE=(apache2 -f "$T/apache/httpd.conf")
	check "apache2 -t accepts the rendered ssl-clientauth.conf + $APACHE_GETACERT" "${APACHE[@]}" -t
	"${APACHE[@]}" -k start >"$T/logs/apache.out" 2>&1 &&
		on_exit "stop_apache" && wait_port "$PORT" ||
		{ notok "apache started" "$(cat "$T/logs/apache.out" "$T/apache/logs/error.log" 2>/dev/null)"; return 1; }
}
stop_apache() {
	local pid
	pid=$(cat "$T/apache/run/httpd.pid" 2>/dev/null) || return 0
	"${APACHE[@]}" -k stop
	stop_pid "$pid"
}
reload_apache() {
	render_site "$REPO/apache/ssl-clientauth.conf" "$T/apache/site.conf"
	"${APACHE[@]}" -k graceful && sleep 2
}

# start_getacert_listen USER LISTEN [ENV=VALUE ...]: `getacert serve --listen LISTEN` as
# USER (uid and gid getacert, plus the supplementary group www-data for a unix socket
# with socket_group = www-data, as systemd's SupplementaryGroups= would).
start_getacert_listen() {
	local user=$1 listen=$2 groups=--clear-groups
	shift 2
	# Like systemd's RuntimeDirectory=getacert: the socket's directory is getacert's.
	case $listen in unix:*) groups=--groups=www-data && chown "$user" "$(dirname "${listen#unix:}")" ;; esac
	env "$@" setpriv --reuid="$user" --regid="$user" "$groups" --inh-caps=-all -- \
		"$BIN" --config "$CA/ca.conf" serve --log-stderr --listen "$listen" >>"$T/logs/getacert.log" 2>&1 &
	local pid=$!
	GETACERT_PID=$pid
	on_exit "stop_pid $pid"
	case $listen in
	unix:*) wait_for -S "${listen#unix:}" ;;
	tcp:*) wait_port "${listen##*:}" ;;
	esac || { notok "getacert serve --listen $listen started" "$(tail "$T/logs/getacert.log")"; return 1; }
}

# start_getacert_spawn SOCKET: spawn-fcgi makes SOCKET (0660 getacert:www-data) as root,
# then runs `getacert serve` as getacert with it on fd 0 -- the non-systemd equivalent
# of systemd/getacert.socket, used by scripts/provision-lamp.sh.
start_getacert_spawn() {
	GETACERT_PID=$T/run/getacert.pid
	spawn-fcgi -s "$1" -M 0660 -U getacert -G www-data -u getacert -g getacert \
		-P "$T/run/getacert.pid" -- "$BIN" --config "$CA/ca.conf" serve --log-stderr >>"$T/logs/getacert.log" 2>&1 &&
		on_exit "stop_pid '$T/run/getacert.pid'" && wait_for -S "$1" ||
		{ notok "spawn-fcgi getacert started" "$(tail "$T/logs/getacert.log")"; return 1; }
}

ensure_user_getacert() {
	id getacert >/dev/null 2>&1 ||
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin getacert
}

# --- the checks every server variant runs ---------------------------------------------------
url() { echo "https://127.0.0.1:$PORT$1"; }
# get PATH OUT [CURL_OPTIONS...]: the page, saved to OUT (status line appended as the last line).
get() {
	local path=$1 out=$2
	shift 2
	curl -sS --cacert "$T/tls/server-ca.pem" -w '\nHTTP_STATUS=%{http_code}\n' -o "$out.body" "$@" "$(url "$path")" >"$out.status" 2>&1
	cat "$out.body" "$out.status" >"$out" 2>/dev/null
}
# login USER OUT: /auth/ with USER's certificate.
login() { get /auth/ "$2" --cert "$T/users/$1.pem" --key "$T/users/$1.key"; }

# enroll USER MODE [enroll options]: scripts/enroll against /getacert.php; checks the
# answer (200, DER, application/x-x509-user-cert, verifies against rootCA.pem as a
# client certificate, CN=USER).
enroll() {
	local user=$1 mode=$2 u=$T/users/$1
	shift 2
	if "$REPO/scripts/enroll" -m "$mode" -k "$u.key" -o "$u.der" -p "$u.pem" "$@" \
		"$(url /getacert.php)" "$user" -- --cacert "$T/tls/server-ca.pem" >"$u.enroll" 2>&1; then
		ok "enroll $user with $mode: 200 application/x-x509-user-cert"
	else
		notok "enroll $user with $mode: 200 application/x-x509-user-cert" "$(cat "$u.enroll")"
		return 1
	fi
	check "$user's certificate is DER and verifies against rootCA.pem for clientAuth" \
		openssl verify -purpose sslclient -CAfile "$CA/rootCA.pem" "$u.pem"
	openssl x509 -in "$u.pem" -noout -subject -nameopt RFC2253 >"$u.subject" 2>&1
	check_grep "$user's certificate has CN=$user" "$u.subject" "(^subject=|,)CN=$user(,|$)"
}

# suite_common: the whole enrollment-and-login story through the running servers.
suite_common() {
	local o=$T/out
	mkdir -p "$o"

	get /index.php "$o/php"
	check_grep "PHP runs (php-fpm)" "$o/php" '^php ok'

	issue_direct direct
	get /auth/ "$o/direct" --cert "$T/users/direct-direct.pem" --key "$T/users/direct-direct.key"
	check_grep "a certificate signed with the CA key (openssl x509 -req) logs in: SUCCESS" "$o/direct" 'SSL_CLIENT_VERIFY=SUCCESS'
	check_grep "SSL_CLIENT_S_DN is RFC 2253, most specific first (CN=direct,O=MyApp)" "$o/direct" '^SSL_CLIENT_S_DN=CN=direct,O=MyApp$'
	get /auth/ "$o/direct13" --tlsv1.3 --cert "$T/users/direct-direct.pem" --key "$T/users/direct-direct.key"
	check_grep "over TLS 1.3 (no renegotiation) the client certificate still logs in" "$o/direct13" '^SSL_PROTOCOL=TLSv1.3$'
	check_grep "over TLS 1.3: SSL_CLIENT_VERIFY=SUCCESS" "$o/direct13" '^SSL_CLIENT_VERIFY=SUCCESS$'

	# The article's /auth/ flow: not authenticated, enroll, authenticated.
	get /auth/ "$o/auth-anon"
	check_grep "/auth/ without a certificate: SSL_CLIENT_VERIFY=NONE" "$o/auth-anon" '^SSL_CLIENT_VERIFY=NONE$'
	check_grep "/auth/ without a certificate: not authenticated" "$o/auth-anon" 'Not authenticated'
	check_grep "/auth/ without a certificate: no CN variable" "$o/auth-anon" '^SSL_CLIENT_S_DN_CN=\(unset\)$'

	get /getacert.php "$o/page"
	check_grep "GET /getacert.php: 200" "$o/page" '^HTTP_STATUS=200$'
	check_grep "GET /getacert.php: an HTML form" "$o/page" '<form'
	check_nogrep "GET /getacert.php: getacert answers, not the leftover getacert.php" "$o/page" 'LEFTOVER'

	if enroll alice spkac; then
		login alice "$o/auth-alice"
		check_grep "/auth/ with alice's certificate: SSL_CLIENT_VERIFY=SUCCESS" "$o/auth-alice" '^SSL_CLIENT_VERIFY=SUCCESS$'
		check_grep "/auth/ with alice's certificate: SSL_CLIENT_S_DN_CN=alice" "$o/auth-alice" '^SSL_CLIENT_S_DN_CN=alice$'
		check_grep "/auth/ with alice's certificate: Authenticated as alice" "$o/auth-alice" 'Authenticated as alice'
		local serial issuer
		serial=$(openssl x509 -in "$T/users/alice.pem" -noout -serial | sed 's/^serial=//')
		check_grep "/auth/ with alice's certificate: SSL_CLIENT_M_SERIAL is its serial" "$o/auth-alice" "^SSL_CLIENT_M_SERIAL=0*$serial$"
		issuer=$(openssl x509 -in "$CA/rootCA.pem" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
		check_grep "/auth/ with alice's certificate: SSL_CLIENT_I_DN is the CA (RFC 2253)" "$o/auth-alice" "^SSL_CLIENT_I_DN=$issuer$"
		check_grep "/auth/ with alice's certificate: SSL_CLIENT_CERT is passed" "$o/auth-alice" '^SSL_CLIENT_CERT=present$'
		# getacert reads SSL_CLIENT_VERIFY, _M_SERIAL, _I_DN and _CERT from the server too.
		get /getacert.php "$o/page-alice" --cert "$T/users/alice.pem" --key "$T/users/alice.key"
		check_grep "/getacert.php with alice's certificate: getacert knows she is signed in" "$o/page-alice" 'signed in as .*alice'
	fi

	if enroll bob csr; then
		login bob "$o/auth-bob"
		check_grep "/auth/ with bob's certificate (CSR): SUCCESS as bob" "$o/auth-bob" '^SSL_CLIENT_S_DN_CN=bob$'
	fi

	# A username that has a valid certificate is taken.
	if "$REPO/scripts/enroll" -k "$T/users/alice2.key" -o "$T/users/alice2.der" "$(url /getacert.php)" alice \
		-- --cacert "$T/tls/server-ca.pem" >"$o/alice2" 2>&1; then
		notok "a second enrollment for alice is refused (409)" "$(cat "$o/alice2")"
	else
		check_grep "a second enrollment for alice is refused (409)" "$o/alice2" '^409 '
	fi

	# Another CA's certificate for "alice", and none: never SUCCESS.
	get /auth/ "$o/rogue" --cert "$T/tls/rogue-alice.pem" --key "$T/tls/rogue-alice.key"
	check_nogrep "/auth/ with another CA's certificate for alice: not SUCCESS" "$o/rogue" 'SSL_CLIENT_VERIFY=SUCCESS|Authenticated as'
	get /getacert.php "$o/rogue-page" --cert "$T/tls/rogue-alice.pem" --key "$T/tls/rogue-alice.key"
	check_nogrep "/getacert.php with another CA's certificate: refused by the server" "$o/rogue-page" '^HTTP_STATUS=200$'

	# An existing PHP page whose form posts to /getacert.php, with the article's fields.
	get /app/signup.php "$o/signup"
	check_grep "the app's own PHP form page is served" "$o/signup" 'action="/getacert.php"'
	if grep -q 'name="pubkey"' "$o/signup" && grep -q 'name="username"' "$o/signup"; then
		local action
		action=$(sed -n 's/.*action="\([^"]*\)".*/\1/p' "$o/signup")
		if "$REPO/scripts/enroll" -m spkac -k "$T/users/carol.key" -o "$T/users/carol.der" -p "$T/users/carol.pem" \
			-d createcert=Generate "$(url "$action")" carol -- --cacert "$T/tls/server-ca.pem" >"$o/carol" 2>&1; then
			ok "the app's form (action=$action, fields username+pubkey+createcert) gets a certificate from getacert"
			login carol "$o/auth-carol"
			check_grep "/auth/ with carol's certificate: SUCCESS as carol" "$o/auth-carol" '^SSL_CLIENT_S_DN_CN=carol$'
		else
			notok "the app's form (action=$action, fields username+pubkey+createcert) gets a certificate from getacert" "$(cat "$o/carol")"
		fi
	else
		notok "the app's form has the article's fields" "$(cat "$o/signup")"
	fi

	# The CA directory is not served.
	get /auth/ca/ca.conf "$o/cadir"
	check_grep "/auth/ca/ca.conf is not served (403/404)" "$o/cadir" '^HTTP_STATUS=40[34]$'

	# Plain checks the database is still what `openssl ca` reads.
	# (openssl ca -status exits 1 even when it found the serial: judge by its output.)
	openssl ca -config "$CA/ca.conf" -status "$(openssl x509 -in "$T/users/alice.pem" -noout -serial 2>/dev/null | sed 's/^serial=//')" \
		>"$o/status" 2>&1
	check_grep "openssl ca -status reads getacert's index.txt: alice's serial is Valid" "$o/status" '=Valid \(V\)'
}

# suite_revoke_ocsp OWNER: `getacert revoke` (as OWNER, the CA's owner) revokes bob; with
# no reload, the web server refuses his new connections within nextUpdate (OCSP through
# the shipped loopback responder, whatever runs getacert: daemon, mod_fcgid or CGI),
# `openssl ocsp -url` says revoked, and alice still gets in.
suite_revoke_ocsp() {
	local o=$T/out serial start=$SECONDS
	[ -f "$T/users/bob.pem" ] || { notok "OCSP: bob has a certificate to revoke"; return 1; }
	serial=$(openssl x509 -in "$T/users/bob.pem" -noout -serial | sed 's/^serial=//')
	check "getacert revoke --serial $serial (bob)" runuser -u "$1" -- "$BIN" --config "$CA/ca.conf" revoke --serial "$serial"
	while login bob "$o/ocsp-bob" && grep -q 'SSL_CLIENT_VERIFY=SUCCESS' "$o/ocsp-bob" && [ $((SECONDS - start)) -le 6 ]; do
		sleep 0.5
	done
	check_nogrep "after getacert revoke, without a reload: bob is refused within 6 s (OCSP; took $((SECONDS - start)) s)" \
		"$o/ocsp-bob" 'SSL_CLIENT_VERIFY=SUCCESS'
	openssl ocsp -url "http://127.0.0.1:$OCSP_PORT/ocsp" -issuer "$CA/rootCA.pem" -CAfile "$CA/rootCA.pem" \
		-cert "$T/users/bob.pem" >"$o/ocsp-bob.txt" 2>&1
	check_grep "openssl ocsp -url (the shipped loopback responder): bob revoked" "$o/ocsp-bob.txt" ': revoked$'
	login alice "$o/ocsp-alice"
	check_grep "after getacert revoke: alice still logs in" "$o/ocsp-alice" '^SSL_CLIENT_S_DN_CN=alice$'
}

# suite_crl RELOAD_FUNCTION: revoke bob with `openssl ca` (as getacert, under getacert's
# lock), make a CRL, turn on the shipped (commented) CRL lines, reload: bob is out,
# alice still in.
suite_crl() {
	local o=$T/out serial
	[ -f "$T/users/bob.pem" ] || { notok "CRL: bob has a certificate to revoke"; return 1; }
	serial=$(openssl x509 -in "$T/users/bob.pem" -noout -serial | sed 's/^serial=//')
	check "openssl ca -revoke bob (as getacert, flock on index.txt.lock)" \
		runuser -u getacert -- flock "$CA/index.txt.lock" \
		openssl ca -config "$CA/ca.conf" -batch -revoke "$CA/newcerts/$serial.pem"
	check "openssl ca -gencrl" runuser -u getacert -- flock "$CA/index.txt.lock" \
		openssl ca -config "$CA/ca.conf" -batch -gencrl -out "$CA/crl.pem"
	# No reload yet: the OCSP responder already says revoked (openssl ca rewrote
	# index.txt), so a new connection of bob is refused within nextUpdate.
	local start=$SECONDS
	while login bob "$o/ocsp-bob" && grep -q 'SSL_CLIENT_VERIFY=SUCCESS' "$o/ocsp-bob" && [ $((SECONDS - start)) -le 6 ]; do
		sleep 0.5
	done
	check_nogrep "after openssl ca -revoke, without a reload: bob is refused within 6 s (OCSP; took $((SECONDS - start)) s)" \
		"$o/ocsp-bob" 'SSL_CLIENT_VERIFY=SUCCESS'
	login alice "$o/ocsp-alice"
	check_grep "after openssl ca -revoke, without a reload: alice still logs in" "$o/ocsp-alice" '^SSL_CLIENT_S_DN_CN=alice$'
	CRL=yes "$1"
	login bob "$o/crl-bob"
	check_nogrep "after the CRL: bob is no longer authenticated" "$o/crl-bob" 'SSL_CLIENT_VERIFY=SUCCESS'
	login alice "$o/crl-alice"
	check_grep "after the CRL: alice still is" "$o/crl-alice" '^SSL_CLIENT_S_DN_CN=alice$'
}

# --- privilege separation -----------------------------------------------------------------
# fcgi [ENV=VALUE ...] -- COMMAND_PREFIX... : cgi-fcgi with exactly these FastCGI
# parameters (cgi-fcgi sends its environment as the parameters and stdin as the body);
# `fcgi_as USER ADDRESS [ENV=VALUE ...]` runs it as USER against ADDRESS.
FCGI_BASE=(REQUEST_METHOD=GET REQUEST_URI=/getacert.php SCRIPT_NAME=/getacert.php
	SERVER_NAME=localhost SERVER_PORT=443 SERVER_PROTOCOL=HTTP/1.1 GATEWAY_INTERFACE=CGI/1.1
	HTTPS=on REMOTE_ADDR=127.0.0.1)
fcgi_as() {
	local user=$1 addr=$2
	shift 2
	runuser -u "$user" -- env -i "${FCGI_BASE[@]}" "$@" "$(command -v cgi-fcgi)" -bind -connect "$addr"
}

# suite_socket SOCKET: who may talk to getacert and who may read its key.
suite_socket() {
	local sock=$1 o=$T/out
	mkdir -p "$o"
	check "the socket is 0660 getacert:www-data" test "$(stat -c '%a %U %G' "$sock")" = "660 getacert www-data"
	fcgi_as www-data "$sock" GETACERT_FRONT_SECRET="$(cat "$CA/front-secret" 2>/dev/null)" </dev/null >"$o/sock-www" 2>&1
	check_grep "www-data (the web server) with the front secret gets an answer on the socket" "$o/sock-www" '^Content-[Tt]ype: text/html'
	fcgi_as nobody "$sock" </dev/null >"$o/sock-nobody" 2>&1
	check_nogrep "nobody (not in www-data) gets nothing from the socket" "$o/sock-nobody" '^Content-[Tt]ype|^Status|<form'
	# cgi-fcgi does not say why; curl -v does.
	runuser -u nobody -- curl -sv --unix-socket "$sock" http://localhost/ >"$o/sock-nobody-why" 2>&1
	check_grep "nobody's connect() is refused: Permission denied" "$o/sock-nobody-why" 'Permission denied'
	suite_key_private
}

# suite_key_private: the CA key is 0600 getacert and www-data can read neither it nor
# the database.
suite_key_private() {
	local key
	key=$(awk -F '=' '/^[[:space:]]*private_key[[:space:]]*=/ {gsub(/[[:space:]]/, "", $2); print $2; exit}' "$CA/ca.conf" 2>/dev/null)
	key=${key//\$dir/$CA}
	[ -n "$key" ] || key=$CA/rootCA.key
	check "the CA key ($key) is 0600 owned by getacert" test "$(stat -c '%a %U' "$key")" = "600 getacert"
	check "www-data cannot read the CA key" bash -c "! runuser -u www-data -- cat '$key' >/dev/null 2>&1"
	check "www-data cannot write index.txt" bash -c "! runuser -u www-data -- test -w '$CA/index.txt'"
}

# urlencode < TEXT: form encoding of PEM text (base64, '-', spaces, newlines).
urlencode() { sed 's/%/%25/g; s/+/%2B/g; s#/#%2F#g; s/=/%3D/g; s/ /%20/g' | awk 'BEGIN{ORS="%0A"} {print}'; }

# cgi_enroll CONF NAME OUT [USER]: NAME enrolls with a new CSR through getacert run as
# CGI (as USER, default the caller); the answer goes to OUT. True when it is a certificate.
cgi_enroll() {
	local conf=$1 name=$2 out=$3 user=${4:-} body
	openssl req -newkey rsa:2048 -nodes -subj /CN=x -keyout "$T/users/$name.key" -out "$T/users/$name.csr" 2>/dev/null
	body="username=$name&csr=$(urlencode <"$T/users/$name.csr")"
	printf '%s' "$body" | ${user:+runuser -u "$user" --} env -i GATEWAY_INTERFACE=CGI/1.1 REQUEST_METHOD=POST \
		CONTENT_TYPE=application/x-www-form-urlencoded CONTENT_LENGTH=${#body} SCRIPT_NAME=/getacert.php \
		SERVER_NAME=localhost HTTPS=on REMOTE_ADDR=127.0.0.1 GETACERT_CONFIG="$conf" "$BIN" >"$out" 2>&1
	grep -aq '^Content-[Tt]ype: application/x-x509-user-cert' "$out"
}

# forged_post ADDRESS OUT [USER [NAME [ENV=VALUE ...]]]: as USER (root), a POST straight
# to getacert's FastCGI socket claiming SSL_CLIENT_VERIFY=SUCCESS for "admin" (or the
# given ENV, e.g. someone's real certificate), enrolling NAME (mallory) by CSR with a
# key of its own.
forged_post() {
	local addr=$1 out=$2 user=${3:-root} name=${4:-mallory} body idn
	shift $(($# < 4 ? $# : 4))
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$T/users/forged-$name.key" -out "$T/users/forged-$name.csr" 2>/dev/null
	body="username=$name&csr=$(urlencode <"$T/users/forged-$name.csr")"
	idn=$(openssl x509 -in "$CA/rootCA.pem" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
	printf '%s' "$body" | fcgi_as "$user" "$addr" REQUEST_METHOD=POST CONTENT_TYPE=application/x-www-form-urlencoded \
		CONTENT_LENGTH=${#body} SSL_CLIENT_VERIFY=SUCCESS SSL_CLIENT_S_DN_CN=admin SSL_CLIENT_I_DN="$idn" \
		SSL_CLIENT_M_SERIAL=01 "$@" >"$out" 2>&1
}

# post_as_alice OUT FIELDS [CURL_OPTIONS...]: a POST of the url-encoded FIELDS to
# /getacert.php through the web server, presenting alice's certificate.
post_as_alice() {
	local out=$1 fields=$2
	shift 2
	get /getacert.php "$out" --cert "$T/users/alice.pem" --key "$T/users/alice.key" --data "$fields" "$@"
}

# suite_identity SOCKET [LOG]: issue 10 through the running web server and its shipped
# configuration (after suite_common enrolled alice); LOG: getacert's stderr, when the
# way it was started keeps it (spawn-fcgi does not).
suite_identity() {
	local sock=$1 log=${2:-} o=$T/out serial lines token
	[ -n "$BIN" ] && [ -f "$T/users/alice.pem" ] || { notok "identity: alice is enrolled"; return 1; }
	# Item 4: a PHP script (www-data) on the socket, passing alice's real certificate
	# (certificates are public) and her serial, for a key of its own.
	serial=$(openssl x509 -in "$T/users/alice.pem" -noout -serial | sed 's/^serial=//')
	lines=$(wc -l <"$CA/index.txt")
	forged_post "$sock" "$o/forged-www" www-data alice SSL_CLIENT_M_SERIAL="$serial" \
		SSL_CLIENT_S_DN_CN=alice SSL_CLIENT_CERT="$(cat "$T/users/alice.pem")"
	check_grep "front secret: www-data on the socket, forging alice with her own certificate, gets 403" "$o/forged-www" '^Status: 403'
	check_nogrep "front secret: ... and no certificate" "$o/forged-www" 'x509-user-cert'
	check "front secret: nothing was issued" test "$(wc -l <"$CA/index.txt")" = "$lines"
	if [ -n "$log" ]; then
		check_grep "front secret: the refusal is logged" "$log" 'does not carry the front secret'
		check_nogrep "front secret: its value is never logged" "$log" "$(cat "$CA/front-secret")"
	fi
	get /secret.php "$o/php-secret"
	check_grep "front secret: PHP behind the same server never gets GETACERT_FRONT_SECRET" "$o/php-secret" '^no front secret$'
	# ... while the web server itself, with the shipped include, is served (the page).
	get /getacert.php "$o/page-front"
	check_grep "front secret: the web server's own requests are served" "$o/page-front" '^HTTP_STATUS=200$'

	# Item 3: alice's account page token, posted cross-site from her browser.
	get /getacert.php "$o/acct" --cert "$T/users/alice.pem" --key "$T/users/alice.key"
	token=$(sed -n 's/.*name="token" value="\([^"]*\)".*/\1/p' "$o/acct" | head -n 1)
	[ -n "$token" ] || { notok "cross-site: alice's account page has a form token" "$(head -c 800 "$o/acct")"; return 1; }
	post_as_alice "$o/xs-origin" "action=add-device-code&token=$token" -H 'Origin: https://evil.example'
	check_grep "cross-site: alice's valid token with Origin https://evil.example: 403" "$o/xs-origin" '^HTTP_STATUS=403$'
	post_as_alice "$o/xs-null" "action=add-device-code&token=$token" -H 'Origin: null'
	check_grep "cross-site: Origin null: 403" "$o/xs-null" '^HTTP_STATUS=403$'
	post_as_alice "$o/xs-fetch" "action=add-device-code&token=$token" -H 'Sec-Fetch-Site: same-site'
	check_grep "cross-site: Sec-Fetch-Site same-site: 403" "$o/xs-fetch" '^HTTP_STATUS=403$'
	post_as_alice "$o/xs-renew" "username=alice&renew=yes&token=$token&csr=$(urlencode <"$T/users/forged-alice.csr")" \
		-H 'Sec-Fetch-Site: cross-site'
	check_grep "cross-site: renew=yes with alice's token from another site: 403" "$o/xs-renew" '^HTTP_STATUS=403$'
	check_grep "cross-site: alice's certificate is still valid" <(openssl ca -config "$CA/ca.conf" -status "$serial" 2>&1) '=Valid \(V\)'
	get /getacert.php "$o/xs-bob-token" --cert "$T/users/bob.pem" --key "$T/users/bob.key" \
		--data "action=add-device-code&token=$token"
	check_grep "token binding: alice's token in bob's browser: 400" "$o/xs-bob-token" '^HTTP_STATUS=400$'
	post_as_alice "$o/same-origin" "action=add-device-code&token=$token" \
		-H "Origin: https://127.0.0.1:$PORT" -H 'Sec-Fetch-Site: same-origin'
	check_grep "control: the same post from alice's own page gets a code" "$o/same-origin" 'id="add-device-code"'
	post_as_alice "$o/curl" "action=add-device-code&token=$token"
	check_grep "control: curl (no Origin, no Sec-Fetch-Site) gets a code" "$o/curl" 'id="add-device-code"'
}
