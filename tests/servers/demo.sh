#!/usr/bin/env bash
# scripts/demo (the README's main command) runs to the end without input, shows alice
# authenticated, and `scripts/demo stop` leaves nothing running.
. "$(dirname "$0")/lib.sh"
setup
getacert_bin
[ -n "$BIN" ] || exit 1
PORT=$(free_port)
OCSP_PORT=$(free_port)
D=$T/demo
check "CI=true scripts/demo runs to the end (stdin closed)" \
	env CI=true GETACERT_BIN="$BIN" GETACERT_DEMO_DIR="$D" GETACERT_DEMO_PORT="$PORT" GETACERT_DEMO_OCSP_PORT="$OCSP_PORT" timeout 300 "$REPO/scripts/demo" </dev/null
cp "$T/check.out" "$T/demo.out"
check_grep "the demo enrolled alice (SPKAC) and bob (CSR)" "$T/demo.out" '^200 application/x-x509-user-cert'
check_grep "the demo shows /auth/ without a certificate: NONE" "$T/demo.out" '^SSL_CLIENT_VERIFY=NONE$'
check_grep "the demo shows /auth/ with alice's certificate: Authenticated as alice" "$T/demo.out" 'Authenticated as alice'
check_grep "the demo says what to do next in a browser" "$T/demo.out" "https://127.0.0.1:$PORT/getacert.php"
check "alice.p12 opens with the password it prints" openssl pkcs12 -in "$D/users/alice.p12" -passin pass:demo -nokeys -out /dev/null
check "scripts/demo stop" env GETACERT_DEMO_DIR="$D" "$REPO/scripts/demo" stop
sleep 0.5
check "after scripts/demo stop nothing of the demo runs" bash -c "! pgrep -af -- '$D' | grep -v pgrep"
check "after scripts/demo stop the port is free" bash -c "! ss -Htln 'sport = :$PORT' | grep -q ."
check "after scripts/demo stop the OCSP port is free" bash -c "! ss -Htln 'sport = :$OCSP_PORT' | grep -q ."
