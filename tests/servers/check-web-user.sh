#!/usr/bin/env bash
# `getacert check` and the web server's user (www-data): a CA key or database owned by
# it, or writable by its group, is a problem in the socket modes (check run as root or
# as the daemon's user exits 1 and says how to fix it), and is named as a warning when
# check runs as www-data itself (mod_fcgid, mod_cgi: getacert runs as www-data there).
. "$(dirname "$0")/lib.sh"
setup
getacert_bin
[ -n "$BIN" ] || exit 1
ensure_user_getacert
make_ca www-data || exit 1

"$BIN" --config "$CA/ca.conf" check >"$T/root.out" 2>&1
check "a CA owned by www-data: check as root exits 1" test $? = 1
check_grep "it names the key and www-data, and how to fix it" "$T/root.out" \
	"^problem: $CA/rootCA.key belongs to www-data, the web server's user.*chown -R getacert:getacert $CA"
runuser -u www-data -- "$BIN" --config "$CA/ca.conf" check >"$T/www.out" 2>&1
check "the same CA, check as www-data (the CGI modes): exit 0" test $? = 0
check_grep "... with a warning naming www-data" "$T/www.out" "^warning: $CA/rootCA.key belongs to www-data, the web server's user: so it is under mod_fcgid or mod_cgi"

chown -R getacert:getacert "$CA"
runuser -u getacert -- "$BIN" --config "$CA/ca.conf" check >"$T/ok.out" 2>&1
check "given to getacert: check as getacert passes" test $? = 0
check_nogrep "... and says nothing about www-data" "$T/ok.out" 'www-data'
chgrp www-data "$CA/index.txt"
chmod 0660 "$CA/index.txt"
runuser -u getacert -- "$BIN" --config "$CA/ca.conf" check >"$T/grp.out" 2>&1
check "index.txt writable by the group www-data: check as getacert exits 1" test $? = 1
check_grep "it names index.txt and the group" "$T/grp.out" "^problem: $CA/index.txt is writable by the group of www-data"
