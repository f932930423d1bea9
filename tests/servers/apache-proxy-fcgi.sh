#!/usr/bin/env bash
# Apache (ssl-clientauth.conf + getacert.conf, mod_proxy_fcgi) + getacert as user
# getacert on a unix socket made by spawn-fcgi (0660 getacert:www-data, fd 0: what
# scripts/provision-lamp.sh runs without systemd); then revocation with the shipped
# SSLCARevocationFile/SSLCARevocationCheck lines.
. "$(dirname "$0")/lib.sh"
setup
ensure_user_getacert
getacert_bin
make_tls && make_ca getacert || exit 1
install_www
PORT=$(free_port)
start_php_fpm
[ -z "$BIN" ] || start_getacert_spawn "$T/run/getacert/getacert.sock"
start_apache getacert.conf || exit 1
suite_common
suite_socket "$T/run/getacert/getacert.sock"
suite_identity "$T/run/getacert/getacert.sock"
suite_crl reload_apache
