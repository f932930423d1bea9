#!/usr/bin/env bash
# Apache (ssl-clientauth.conf + getacert-fcgid.conf): mod_fcgid starts getacert itself
# (as www-data, which therefore owns this CA -- see the file's PRIVILEGES note).
. "$(dirname "$0")/lib.sh"
setup
getacert_bin
make_tls && make_ca www-data || exit 1
install_www
PORT=$(free_port)
start_php_fpm
start_apache getacert-fcgid.conf || exit 1
suite_common
suite_revoke_ocsp www-data
