#!/usr/bin/env bash
# The README's admin commands run as root on a CA owned by getacert (the daemon's user):
# they act as the owner, so every file they write (crl.pem, crlnumber, index.txt,
# getacert.codes, the lock file) stays getacert's and enrollment keeps working; and a
# lock file left owned by root (an old `flock … openssl ca` as root) is no obstacle,
# since getacert opens it read-only.
. "$(dirname "$0")/lib.sh"
setup
getacert_bin
[ -n "$BIN" ] || exit 1
ensure_user_getacert
make_ca getacert || exit 1

# enroll NAME: a CSR by CGI, run as getacert (the daemon's user).
enroll() { cgi_enroll "$CA/ca.conf" "$1" "$T/$1.out" getacert; }

check "an enrollment as getacert works" enroll alice
"$BIN" --config "$CA/ca.conf" crl >"$T/crl.out" 2>&1
check "root: getacert crl" test $? = 0
check_grep "root: it says whose it acts as" "$T/crl.out" "^getacert: acting as uid $(id -u getacert) gid $(id -g getacert), the owner of $CA\$"
"$BIN" --config "$CA/ca.conf" recovery-code bob >"$T/code.out" 2>&1
check "root: getacert recovery-code" test $? = 0
"$BIN" --config "$CA/ca.conf" revoke --user alice >"$T/revoke.out" 2>&1
check "root: getacert revoke --user alice" test $? = 0
"$BIN" --config "$CA/ca.conf" updatedb >"$T/updatedb.out" 2>&1
check "root: getacert updatedb" test $? = 0
for f in index.txt crl.pem crlnumber getacert.codes index.txt.lock; do
	check "after the admin commands as root, $f still belongs to getacert" \
		test "$(stat -c %U "$CA/$f" 2>&1)" = getacert
done
check "after the admin commands as root, enrollment as getacert still works" enroll carol

# A lock file owned by root, read-only to everyone else.
chown root:root "$CA/index.txt.lock"
chmod 0644 "$CA/index.txt.lock"
check "a lock file owned by root (0644) does not stop an enrollment as getacert" enroll dave
check "getacert check passes as getacert" runuser -u getacert -- "$BIN" --config "$CA/ca.conf" check
