#!/usr/bin/env bash
# systemd/getacert.socket + getacert.service: systemd-analyze verify finds nothing to
# say, the hardening the deployment relies on is there, ExecStartPre's `check` passes
# for a CA owned by getacert, and socket activation works: a socket with the unit's
# SocketUser/SocketGroup/SocketMode, handed over in LISTEN_FDS by
# systemd-socket-activate, serves www-data and refuses nobody.
. "$(dirname "$0")/lib.sh"
setup
ensure_user_getacert
getacert_bin
[ -n "$BIN" ] || exit 1
make_ca getacert || exit 1
U=$REPO/systemd

if command -v systemd-analyze >/dev/null; then
	mkdir -p "$T/units"
	sed "s#^\(ExecStart[A-Za-z]*=\)getacert #\1$BIN #" "$U/getacert.service" >"$T/units/getacert.service"
	cp "$U/getacert.socket" "$T/units/"
	# (--man=no: the man page is installed by the package; tests/cleanroot checks it there.)
	systemd-analyze verify --man=no "$T/units/getacert.socket" "$T/units/getacert.service" >"$T/out.verify" 2>&1
	check "systemd-analyze verify: no errors, no warnings" test "$?:$(wc -c <"$T/out.verify")" = "0:0"
	[ -s "$T/out.verify" ] && sed 's/^/#   /' "$T/out.verify"
else
	skip "systemd-analyze not installed"
fi

for want in User=getacert Group=getacert NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes \
	ProtectHome=yes RestrictAddressFamilies=AF_UNIX PrivateNetwork=yes IPAddressDeny=any StartLimitIntervalSec=0 \
	'InaccessiblePaths=-/dev/shm -/run/lock' CapabilityBoundingSet= \
	SystemCallFilter=@system-service 'ReadWritePaths=-/etc/getacert -/var/www/auth/ca' UMask=0077; do
	check_grep "getacert.service has $want" "$U/getacert.service" "^$want\$"
done
for want in ListenStream=/run/getacert/getacert.sock SocketUser=getacert SocketGroup=www-data SocketMode=0660; do
	check_grep "getacert.socket has $want" "$U/getacert.socket" "^$want\$"
done

check "ExecStartPre: getacert check passes as getacert" runuser -u getacert -- "$BIN" --config "$CA/ca.conf" check

# Socket activation, with the unit's socket settings.
unit() { sed -n "s/^$1=//p" "$U/getacert.socket"; }
SOCK=$T/run/getacert/getacert.sock
command -v systemd-socket-activate >/dev/null || { skip "socket activation: systemd-socket-activate not installed"; exit 0; }
systemd-socket-activate -l "$SOCK" -- setpriv --reuid=getacert --regid=getacert --clear-groups --inh-caps=-all \
	"$BIN" --config "$CA/ca.conf" serve --log-stderr >>"$T/logs/getacert.log" 2>&1 &
on_exit "stop_pid $!"
if wait_for -S "$SOCK"; then
	chown "$(unit SocketUser):$(unit SocketGroup)" "$SOCK"
	chmod "$(unit SocketMode)" "$SOCK"
	suite_socket "$SOCK"
	check_grep "getacert took the socket from LISTEN_FDS and runs as getacert" <(ps -o user=,args= -C getacert) '^getacert .* serve'
else
	notok "systemd-socket-activate made the socket" "$(tail "$T/logs/getacert.log")"
fi
