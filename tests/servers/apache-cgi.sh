#!/usr/bin/env bash
# Apache (ssl-clientauth.conf + getacert-cgi.conf): getacert as a plain CGI program
# under mod_cgi (as www-data, which therefore owns this CA), GETACERT_CONFIG from SetEnv.
. "$(dirname "$0")/lib.sh"
setup
getacert_bin
make_tls && make_ca www-data || exit 1
install_www
PORT=$(free_port)
start_php_fpm
start_apache getacert-cgi.conf || exit 1
suite_common
suite_revoke_ocsp www-data
