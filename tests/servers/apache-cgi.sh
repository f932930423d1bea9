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

# Issue 10, item 1: a query string without "=" never becomes getacert's command line.
o=$T/out/argv
before=$(cat "$CA/index.txt")
for q in "revoke+--user+alice" "recovery-code+alice+--revoke-all" "crl+--out+$CA/overwritten" \
	"init+$CA/newca" "serve+--listen+tcp:127.0.0.1:$(free_port)"; do
	get "/getacert.php?$q" "$o"
	check_grep "cgi_query_string_without_equals_runs_nothing: GET ?$q is refused (403)" "$o" '^HTTP_STATUS=403$'
done
check "cgi_query_string_without_equals_runs_nothing: index.txt unchanged (alice still valid)" \
	test "$before" = "$(cat "$CA/index.txt")"
check "cgi_query_string_without_equals_runs_nothing: no file written, no CA made" \
	test ! -e "$CA/overwritten" -a ! -e "$CA/newca"
get "/getacert.php?enroll=1" "$o.eq"
check_grep "a query string with '=' still reaches getacert" "$o.eq" '^HTTP_STATUS=200$'
suite_revoke_ocsp www-data
