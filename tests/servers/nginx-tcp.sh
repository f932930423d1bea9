#!/usr/bin/env bash
# nginx + getacert on FastCGI over TCP (`serve --listen tcp:`) with
# FCGI_WEB_SERVER_ADDRS=127.0.0.1; a second getacert that lists only 127.0.0.2 must
# give a forged request from 127.0.0.1 nothing.
. "$(dirname "$0")/lib.sh"
setup
ensure_user_getacert
getacert_bin
make_tls && make_ca getacert || exit 1
install_www
PORT=$(free_port)
FCGI_PORT=$(free_port)
GETACERT_PASS=127.0.0.1:$FCGI_PORT
start_php_fpm
[ -z "$BIN" ] || start_getacert_listen getacert "tcp:127.0.0.1:$FCGI_PORT" FCGI_WEB_SERVER_ADDRS=127.0.0.1
start_nginx || exit 1
suite_common
suite_key_private

# FCGI_WEB_SERVER_ADDRS: a peer it lists gets an answer, one it does not gets nothing.
lines_before=$(wc -l <"$CA/index.txt" 2>/dev/null || echo 0)
OTHER_PORT=$(free_port)
if [ -n "$BIN" ] && start_getacert_listen getacert "tcp:127.0.0.1:$OTHER_PORT" FCGI_WEB_SERVER_ADDRS=127.0.0.2; then
	forged_post "127.0.0.1:$OTHER_PORT" "$T/out/forged"
	check_nogrep "FCGI_WEB_SERVER_ADDRS=127.0.0.2: a forged SSL_CLIENT_VERIFY=SUCCESS from 127.0.0.1 gets nothing" \
		"$T/out/forged" '^Status|^Content-[Tt]ype|x509'
	check "FCGI_WEB_SERVER_ADDRS=127.0.0.2: nothing was issued" test "$(wc -l <"$CA/index.txt")" = "$lines_before"
fi
fcgi_as root "127.0.0.1:$FCGI_PORT" GETACERT_FRONT_SECRET="$(cat "$CA/front-secret")" </dev/null >"$T/out/listed" 2>&1
check_grep "FCGI_WEB_SERVER_ADDRS=127.0.0.1: a request from 127.0.0.1 with the front secret is answered" "$T/out/listed" '^Content-[Tt]ype: text/html'
# The same forged POST from a listed address (any local user can make one): 403
# without the front secret (issue 10 item 4)...
forged_post "127.0.0.1:$FCGI_PORT" "$T/out/forged-listed"
check_grep "a forged POST from a listed address without the front secret: 403" "$T/out/forged-listed" '^Status: 403'
check "... and nothing was issued" test "$(wc -l <"$CA/index.txt")" = "$lines_before"
# ... and a certificate with it: the refusals above are the address and secret checks,
# not a malformed request.
forged_post "127.0.0.1:$FCGI_PORT" "$T/out/forged-secret" root mallory GETACERT_FRONT_SECRET="$(cat "$CA/front-secret")"
check_grep "the same POST with the front secret is answered with a certificate" "$T/out/forged-secret" \
	'^Content-[Tt]ype: application/x-x509-user-cert'
# getacert refuses TCP without a front secret.
sed -i '/^front_secret_file/d' "$CA/ca.conf"
NOSECRET_PORT=$(free_port)
runuser -u getacert -- "$BIN" --config "$CA/ca.conf" serve --log-stderr --listen "tcp:127.0.0.1:$NOSECRET_PORT" >"$T/out/nosecret" 2>&1
check_grep "serve --listen tcp: without front_secret_file refuses to start" "$T/out/nosecret" 'refusing to serve FastCGI on TCP'
