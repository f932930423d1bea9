#!/usr/bin/env bash
# A full disk (a 1 MiB tmpfs, filled): `getacert init` fails and leaves nothing it made,
# and an enrollment that cannot write its certificate answers 503 and leaves no empty
# newcerts/SERIAL.pem, index.txt as it was.
. "$(dirname "$0")/lib.sh"
setup
getacert_bin
[ -n "$BIN" ] || exit 1
mkdir -p "$T/small"
mount -t tmpfs -o size=1m tmpfs "$T/small" || { notok "mount a 1 MiB tmpfs"; exit 1; }
on_exit "umount '$T/small'"
fill() { dd if=/dev/zero of="$T/small/fill.$1" bs=4k 2>/dev/null; sync; }

mkdir "$T/small/ca1"
fill 1
"$BIN" init "$T/small/ca1" --cn full >"$T/init.out" 2>&1
check "init on a full disk fails" test $? -ne 0
check "init on a full disk leaves no file it made" test -z "$(find "$T/small/ca1" -type f)"
rm -f "$T/small"/fill.*

"$BIN" init "$T/small/ca" --cn full >"$T/init2.out" 2>&1 || notok "init with room" "$(cat "$T/init2.out")"
sed -i '/^\[ *getacert *\]/a address_rate = off' "$T/small/ca/ca.conf"
enroll_cgi() { cgi_enroll "$T/small/ca/ca.conf" "$1" "$T/$1.out"; }
enroll_cgi alice
check_grep "with room, an enrollment gets a certificate" "$T/alice.out" '^Content-[Tt]ype: application/x-x509-user-cert'
cp "$T/small/ca/index.txt" "$T/index.before"
fill 2
enroll_cgi bob
check_grep "on a full disk the enrollment answers 503" "$T/bob.out" '^Status: 503'
check "on a full disk no empty newcerts file is left" test -z "$(find "$T/small/ca/newcerts" -type f -empty)"
check "on a full disk index.txt is as it was" cmp "$T/index.before" "$T/small/ca/index.txt"
rm -f "$T/small"/fill.*
enroll_cgi carol
check_grep "with room again, the next enrollment gets a certificate" "$T/carol.out" '^Content-[Tt]ype: application/x-x509-user-cert'
