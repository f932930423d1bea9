#!/usr/bin/env bash
# nginx (nginx/getacert.conf) + getacert as user getacert on its own unix socket
# (`serve --listen unix:`, socket_group = www-data from the [ getacert ] section),
# the app through php-fpm; then revocation with the shipped ssl_crl line.
. "$(dirname "$0")/lib.sh"
setup
ensure_user_getacert
getacert_bin
make_tls && make_ca getacert socket_group=www-data || exit 1
install_www
PORT=$(free_port)
start_php_fpm
[ -z "$BIN" ] || start_getacert_listen getacert "unix:$T/run/getacert/getacert.sock"
start_nginx || exit 1
suite_common
suite_socket "$T/run/getacert/getacert.sock"
suite_identity "$T/run/getacert/getacert.sock" "$T/logs/getacert.log"
suite_crl reload_nginx
