#!/usr/bin/env bash
# Add-device and revocation end to end, through nginx (getacert as user getacert on its
# own unix socket) and through Apache + mod_proxy_fcgi (getacert under spawn-fcgi), each
# with its own CA, the shipped OCSP settings (ocsp_next_update = 3 s here) and the
# shipped CRL lines on as well: device 1 enrolls alice and gets an add-device code,
# device 2 enrolls alice with it, both log in; device 1 revokes device 2 on the account
# page and, with no reload of the web server, a new connection of device 2 is refused
# within nextUpdate while device 1 and bob still get in; then `getacert revoke` revokes
# device 1, refused the same way; `openssl ocsp -url` against the shipped loopback
# responder agrees; a saved TLS session does not get a revoked device back in. Through
# nginx also: the revoked device cannot revoke device 1.
#
# The rate limits stay at their defaults (address_rate 20/60, username_rate 5/60):
# each server has its own getacert, which gets 7 POSTs from 127.0.0.1, 4 of them
# enrollments or code attempts for alice.
. "$(dirname "$0")/lib.sh"

# serial_of PEM: its serial, upper-case hex without leading zeros.
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//; s/^0*//' | tr a-f A-F; }
# index_status SERIAL: V, R or E from index.txt (serials compared without leading zeros).
index_status() { awk -F '\t' -v s="$1" '{ x = toupper($4); sub(/^0+/, "", x) } x == s { print $1 }' "$CA/index.txt"; }
# form_token PAGE: the value of the first name="token" input.
form_token() { grep -o 'name="token" value="[^"]*"' "$1" | head -n 1 | sed 's/.*value="//; s/"$//'; }
# as_device DEVICE PATH OUT [CURL_OPTIONS...]: `get` with DEVICE's certificate and key
# ($T/users/DEVICE.{pem,key}); response headers in OUT.headers.
as_device() {
	local dev=$1
	shift
	get "$1" "$2" -D "$2.headers" --cert "$T/users/$dev.pem" --key "$T/users/$dev.key" "${@:3}"
}
# post_csr OUT USERNAME KEY [FIELD=VALUE ...]: an anonymous CSR enrollment (new key in
# KEY when it does not exist) for USERNAME, with more form fields; DER body in OUT.body.
post_csr() {
	local out=$1 user=$2 key=$3 kv args=()
	shift 3
	[ -f "$key" ] || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key" 2>/dev/null
	openssl req -new -key "$key" -subj "/CN=$user" -out "$key.csr" 2>/dev/null
	for kv in "$@"; do args+=(--data-urlencode "$kv"); done
	get /getacert.php "$out" -D "$out.headers" --data-urlencode "username=$user" --data-urlencode "csr@$key.csr" "${args[@]}"
}
# refused_or_not_success OUT: curl failed (status 000) or got a 4xx, or the page says
# SSL_CLIENT_VERIFY is something other than SUCCESS; and never SUCCESS.
refused_or_not_success() {
	! grep -Eq 'SSL_CLIENT_VERIFY=SUCCESS|Authenticated as' "$1" &&
		grep -Eq '^HTTP_STATUS=(000|4[0-9][0-9])$|^SSL_CLIENT_VERIFY=(FAILED|NONE|GENEROUS)' "$1"
}

# server_generation SERVER: changes when the web server reloads (nginx: its worker
# pids; Apache: the restarts its error log records).
server_generation() {
	case $1 in
	nginx) pgrep -P "$(cat "$T/nginx/nginx.pid")" | sort | paste -sd ' ' ;;
	apache) grep -cE 'graceful restart|SIGHUP received|resuming normal operations' "$T/apache/logs/error.log" ;;
	esac
}
# refused_within SECONDS DEVICE OUT: tries /auth/ with DEVICE's certificate (a new TLS
# connection each time) every half second until it is refused; fails after SECONDS.
# Sets WAITED to the seconds it took.
refused_within() {
	local limit=$1 dev=$2 out=$3 start=$SECONDS
	WAITED=''
	while :; do
		login "$dev" "$out"
		refused_or_not_success "$out" && { WAITED=$((SECONDS - start)); return 0; }
		[ $((SECONDS - start)) -le "$limit" ] || return 1
		sleep 0.5
	done
}
# resumed_for SERVER PROTO SESSION OUT FIRST: resumes SESSION (device 1, alice.pem) once a second
# for up to 15 s until the server no longer says SUCCESS; reports how long it did.
resumed_for() {
	local s=$1 proto=$2 sess=$3 out=$4 start=$SECONDS until=never
	if [ ! -s "$sess" ]; then
		if grep -q "^New, ${proto/tls1_/TLSv1.}" "$5"; then
			ok "$s: the server gave device 1 no $proto session to resume (nothing to let it back in)"
		else
			notok "$s: openssl s_client -$proto connected as device 1" "$(tail -n 5 "$5")"
		fi
		return 0
	fi
	while [ $((SECONDS - start)) -le 15 ]; do
		{ printf 'GET /auth/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n'; sleep 1; } | openssl s_client -connect "127.0.0.1:$PORT" \
			"-$proto" -cert "$T/users/alice.pem" -key "$T/users/alice.key" -sess_in "$sess" -sess_out "$sess.new" >"$out" 2>&1
		[ -s "$sess.new" ] && mv "$sess.new" "$sess"
		grep -q 'SSL_CLIENT_VERIFY=SUCCESS' "$out" || break
		until="$((SECONDS - start)) s"
	done
	if grep -q 'SSL_CLIENT_VERIFY=SUCCESS' "$out"; then
		notok "$s: after getacert revoke, resuming device 1's $proto session stops working within 15 s" \
			"$(grep -E '^(New|Reused)|SSL_CLIENT_VERIFY' "$out")"
	else
		ok "$s: after getacert revoke, resuming device 1's $proto session let it in until: $until ($(grep -Eo '^(New|Reused)' "$out" | head -n 1) at the end)"
	fi
}
# ocsp_status PEM: what `openssl ocsp -url` says about PEM, asking the loopback responder
# the web server uses (verified against rootCA.pem).
ocsp_status() {
	openssl ocsp -url "http://127.0.0.1:$OCSP_PORT/ocsp" -issuer "$CA/rootCA.pem" -CAfile "$CA/rootCA.pem" \
		-cert "$1" 2>&1 | tee -a "$T/out/ocsp.log" | awk -v f="$1: " 'index($0, f) == 1 { print substr($0, length(f) + 1) }'
}

# devices_story SERVER RELOAD_FUNCTION [forged]: the whole story through the running server.
devices_story() {
	local s=$1 reload=$2 forged=${3:-} o=$T/out tok code s1 s2 gen
	mkdir -p "$o"

	check "$s: getacert init wrote a CRL signed by the CA, listing nothing" \
		bash -c "openssl crl -in '$CA/crl.pem' -CAfile '$CA/rootCA.pem' -noout 2>&1 | grep -q 'verify OK' &&
			! openssl crl -in '$CA/crl.pem' -noout -text | grep -q 'Serial Number'"

	# 1. Device 1 enrolls alice.
	enroll alice csr || return 1
	login alice "$o/d1-auth"
	check_grep "$s: device 1 at /auth/: SSL_CLIENT_VERIFY=SUCCESS" "$o/d1-auth" '^SSL_CLIENT_VERIFY=SUCCESS$'
	check_grep "$s: device 1 at /auth/: SSL_CLIENT_S_DN_CN=alice" "$o/d1-auth" '^SSL_CLIENT_S_DN_CN=alice$'
	s1=$(serial_of "$T/users/alice.pem")
	enroll bob csr || return 1

	# 2. Device 1's account page, and an add-device code.
	as_device alice /getacert.php "$o/d1-page"
	check_grep "$s: device 1 at /getacert.php: the account page, signed in as alice" "$o/d1-page" \
		'You are signed in as <span id="username">alice</span>'
	tok=$(form_token "$o/d1-page")
	check "$s: the account page has a form token" test -n "$tok"
	as_device alice /getacert.php "$o/d1-code" --data-urlencode action=add-device-code --data-urlencode "token=$tok"
	check_grep "$s: POST action=add-device-code with device 1's certificate: 200" "$o/d1-code" '^HTTP_STATUS=200$'
	code=$(grep -o 'id="add-device-code">[^<]*' "$o/d1-code" | sed 's/.*>//')
	check "$s: the answer shows the code in #add-device-code" test -n "$code"

	# 3. Device 2: a new key, no certificate, the code.
	post_csr "$o/d2-enroll" alice "$T/users/alice-d2.key" "code=$code"
	check_grep "$s: device 2 enrolls alice with the code: 200" "$o/d2-enroll" '^HTTP_STATUS=200$'
	check_grep "$s: device 2's answer is application/x-x509-user-cert" "$o/d2-enroll.headers" \
		'^[Cc]ontent-[Tt]ype: application/x-x509-user-cert'
	if openssl x509 -inform DER -in "$o/d2-enroll.body" -out "$T/users/alice-d2.pem" 2>/dev/null; then
		ok "$s: device 2's certificate is DER"
	else
		notok "$s: device 2's certificate is DER" "$(head -c 600 "$o/d2-enroll.body")"
		return 1
	fi
	check "$s: device 2's certificate verifies against rootCA.pem for clientAuth" \
		openssl verify -purpose sslclient -CAfile "$CA/rootCA.pem" "$T/users/alice-d2.pem"
	s2=$(serial_of "$T/users/alice-d2.pem")
	check "$s: device 2 has its own serial" test -n "$s2" -a "$s2" != "$s1"
	login alice-d2 "$o/d2-auth"
	check_grep "$s: device 2 at /auth/: SSL_CLIENT_VERIFY=SUCCESS" "$o/d2-auth" '^SSL_CLIENT_VERIFY=SUCCESS$'
	check_grep "$s: device 2 at /auth/: SSL_CLIENT_S_DN_CN=alice" "$o/d2-auth" '^SSL_CLIENT_S_DN_CN=alice$'
	login alice "$o/d1-auth2"
	check_grep "$s: device 1 still logs in next to device 2" "$o/d1-auth2" '^SSL_CLIENT_VERIFY=SUCCESS$'
	post_csr "$o/d3-nocode" alice "$T/users/alice-d3.key"
	check_grep "$s: an anonymous enrollment for alice without a code: 409" "$o/d3-nocode" '^HTTP_STATUS=409$'
	post_csr "$o/d3-again" alice "$T/users/alice-d3.key" "code=$code"
	check_grep "$s: the same code a second time: 403" "$o/d3-again" '^HTTP_STATUS=403$'

	# 4. Device 1 revokes device 2.
	as_device alice /getacert.php "$o/d1-page2"
	check "$s: device 1's account page lists 2 devices" \
		test "$(grep -o '<li data-serial="[0-9A-F]*"' "$o/d1-page2" | wc -l)" = 2
	check_grep "$s: device 1's account page offers to revoke device 2 ($s2)" "$o/d1-page2" \
		"name=\"serial\" value=\"0*$s2\""
	tok=$(form_token "$o/d1-page2")
	gen=$(server_generation "$s")
	as_device alice /getacert.php "$o/d1-revoke" --data-urlencode action=revoke \
		--data-urlencode "serial=$s2" --data-urlencode "token=$tok"
	check_grep "$s: POST action=revoke serial=$s2 from device 1: 200" "$o/d1-revoke" '^HTTP_STATUS=200$'
	check_grep "$s: the page says device 2 is revoked and refused within nextUpdate" "$o/d1-revoke" \
		"The device with certificate 0*$s2 can no longer sign in: this page no longer accepts it, and the web server refuses its new connections within 3 seconds"
	check "$s: index.txt: device 2 ($s2) is R" test "$(index_status "$s2")" = R
	check "$s: index.txt: device 1 ($s1) is still V" test "$(index_status "$s1")" = V
	openssl crl -in "$CA/crl.pem" -noout -text >"$o/crl.txt" 2>&1
	check_grep "$s: crl.pem now lists device 2's serial" "$o/crl.txt" "Serial Number: 0*$s2\$"
	check_nogrep "$s: crl.pem does not list device 1's serial" "$o/crl.txt" "Serial Number: 0*$s1\$"
	check "$s: openssl verify -crl_check: device 2 is revoked" bash -c "! openssl verify -crl_check \
		-CAfile '$CA/rootCA.pem' -CRLfile '$CA/crl.pem' '$T/users/alice-d2.pem'"
	check "$s: openssl verify -crl_check: device 1 is fine" openssl verify -crl_check \
		-CAfile "$CA/rootCA.pem" -CRLfile "$CA/crl.pem" "$T/users/alice.pem"

	# 5. No reload: OCSP. A new connection of device 2 is refused within nextUpdate
	# (3 s, plus nginx's cache of the last "good"), device 1 and bob still get in.
	if refused_within 6 alice-d2 "$o/d2-auth-ocsp"; then
		ok "$s: without a reload, a new connection of device 2 is refused after ${WAITED} s (nextUpdate 3 s)"
	else
		notok "$s: without a reload, a new connection of device 2 is refused within 6 s" "$(cat "$o/d2-auth-ocsp")"
	fi
	check "$s: the web server was not reloaded" test "$(server_generation "$s")" = "$gen"
	login alice "$o/d1-auth-ocsp"
	check_grep "$s: device 1 still logs in" "$o/d1-auth-ocsp" '^SSL_CLIENT_VERIFY=SUCCESS$'
	login bob "$o/bob-auth-ocsp"
	check_grep "$s: bob (another user) still logs in" "$o/bob-auth-ocsp" '^SSL_CLIENT_S_DN_CN=bob$'
	as_device alice-d2 /getacert.php "$o/d2-page"
	check_nogrep "$s: device 2 at /getacert.php: never the account page" "$o/d2-page" 'You are signed in as'
	check "$s: openssl ocsp -url (the shipped loopback responder): device 2 revoked" \
		test "$(ocsp_status "$T/users/alice-d2.pem")" = revoked
	check "$s: openssl ocsp -url: device 1 good" test "$(ocsp_status "$T/users/alice.pem")" = good

	if [ -n "$forged" ]; then
		# The revoked device, with a valid form token, tries to revoke device 1.
		as_device alice-d2 /getacert.php "$o/d2-revoke" --data-urlencode action=revoke \
			--data-urlencode "serial=$s1" --data-urlencode "token=$tok"
		check_nogrep "$s: revoked device 2 POSTs action=revoke serial=$s1: not 200" "$o/d2-revoke" '^HTTP_STATUS=200$'
		check "$s: index.txt: device 1 ($s1) is still V" test "$(index_status "$s1")" = V
	fi

	# 5b. `getacert revoke` (the admin) revokes device 1. TLS sessions it saved before
	# (TLS 1.3 and TLS 1.2) are resumed once a second, each new session chained into
	# the next try, until the server stops letting it in: the worst case a revoked
	# device gets by resumption (nginx: none, no resumption at all; Apache: TLS 1.2
	# for SSLSessionCacheTimeout).
	local proto
	for proto in tls1_3 tls1_2; do
		# (stdin open for a second: TLS 1.3 sends its session after the handshake.)
		sleep 1 | openssl s_client -connect "127.0.0.1:$PORT" "-$proto" -cert "$T/users/alice.pem" \
			-key "$T/users/alice.key" -sess_out "$o/d1.$proto.session" >"$o/d1-$proto-s_client" 2>&1
	done
	check "$s: getacert revoke --serial $s1 (device 1)" runuser -u getacert -- "$BIN" --config "$CA/ca.conf" revoke --serial "$s1"
	if refused_within 6 alice "$o/d1-auth-revoked"; then
		ok "$s: after getacert revoke, a new connection of device 1 is refused after ${WAITED} s"
	else
		notok "$s: after getacert revoke, a new connection of device 1 is refused within 6 s" "$(cat "$o/d1-auth-revoked")"
	fi
	check "$s: openssl ocsp -url: device 1 revoked" test "$(ocsp_status "$T/users/alice.pem")" = revoked
	login bob "$o/bob-auth-revoke"
	check_grep "$s: bob still logs in after alice's devices are revoked" "$o/bob-auth-revoke" '^SSL_CLIENT_S_DN_CN=bob$'
	check "$s: openssl ocsp -url: bob good" test "$(ocsp_status "$T/users/bob.pem")" = good
	for proto in tls1_3 tls1_2; do
		resumed_for "$s" "$proto" "$o/d1.$proto.session" "$o/d1-$proto-resumed" "$o/d1-$proto-s_client"
	done

	# 6. The CRL path (for `openssl ca` users) still works: after a reload with the new
	# CRL, both revoked devices stay out and bob stays in.
	check "$s: reload with the new CRL" "$reload"
	login alice-d2 "$o/d2-auth-after"
	if refused_or_not_success "$o/d2-auth-after"; then
		ok "$s: after the reload, device 2 at /auth/ is refused or not SUCCESS ($(grep -Eo '^SSL_CLIENT_VERIFY=.*|^HTTP_STATUS=.*|^curl: .*' "$o/d2-auth-after" | paste -sd ' '))"
	else
		notok "$s: after the reload, device 2 at /auth/ is refused or not SUCCESS" "$(cat "$o/d2-auth-after")"
	fi
	openssl crl -in "$CA/crl.pem" -noout -text >"$o/crl2.txt" 2>&1
	check_grep "$s: crl.pem lists device 1 after getacert revoke" "$o/crl2.txt" "Serial Number: 0*$s1\$"
	login bob "$o/bob-auth-after"
	check_grep "$s: after the reload, bob at /auth/: SUCCESS" "$o/bob-auth-after" '^SSL_CLIENT_S_DN_CN=bob$'

	# 7. getacert check reads the web server's configuration and asks its responder.
	runuser -u getacert -- "$BIN" --config "$CA/ca.conf" check --web-config "$T/$s/site.conf" >"$o/check-up" 2>&1
	check_grep "$s: getacert check --web-config: the responder answers, signed by this CA" "$o/check-up" \
		"^ok: .*the OCSP responder http://127.0.0.1:$OCSP_PORT/ocsp answers, signed by this CA"

	# 8. The responder down (getacert stopped): certificate logins fail closed, once
	# nginx's cached answer is past its nextUpdate; pages without a certificate load.
	stop_pid "$GETACERT_PID"
	runuser -u getacert -- "$BIN" --config "$CA/ca.conf" check --web-config "$T/$s/site.conf" >"$o/check-down" 2>&1
	check_grep "$s: getacert check --web-config, getacert down: the responder does not answer" "$o/check-down" \
		"^warning: .*the OCSP responder http://127.0.0.1:$OCSP_PORT/ocsp does not answer"
	sleep 4
	login bob "$o/bob-auth-down"
	if refused_or_not_success "$o/bob-auth-down"; then
		ok "$s: getacert down: bob's certificate login is refused ($(grep -Eo '^HTTP_STATUS=.*|^curl: \([0-9]+\)' "$o/bob-auth-down" | paste -sd ' '))"
	else
		notok "$s: getacert down: bob's certificate login is refused" "$(cat "$o/bob-auth-down")"
	fi
	get /auth/ "$o/anon-down"
	check_grep "$s: getacert down: /auth/ without a certificate still loads" "$o/anon-down" '^SSL_CLIENT_VERIFY=NONE$'
	cat "$o"/*.status >"$o/all-status"
	check_nogrep "$s: no request was rate limited (429)" "$o/all-status" '^HTTP_STATUS=429$'
}

# Each server in its own scratch directory, CA and getacert (a subshell: setup's EXIT
# trap tears it down at the subshell's end).
rc=0
(
	setup
	ensure_user_getacert
	getacert_bin
	[ -n "$BIN" ] || exit 1
	make_tls && make_ca getacert socket_group=www-data ocsp_next_update=3 || exit 1
	install_www
	PORT=$(free_port)
	CRL=yes
	start_php_fpm
	start_getacert_listen getacert "unix:$T/run/getacert/getacert.sock"
	start_nginx || exit 1
	check_grep "nginx: the rendered site has ssl_crl on" "$T/nginx/site.conf" '^[[:space:]]*ssl_crl '
	devices_story nginx reload_nginx forged
	[ "$FAILED" -eq 0 ]
) || rc=1
(
	setup
	ensure_user_getacert
	getacert_bin
	[ -n "$BIN" ] || exit 1
	make_tls && make_ca getacert ocsp_next_update=3 || exit 1
	install_www
	PORT=$(free_port)
	CRL=yes
	start_php_fpm
	start_getacert_spawn "$T/run/getacert/getacert.sock"
	start_apache getacert.conf || exit 1
	check_grep "apache: the rendered site has SSLCARevocationFile on" "$T/apache/site.conf" '^[[:space:]]*SSLCARevocationFile '
	devices_story apache reload_apache
	[ "$FAILED" -eq 0 ]
) || rc=1
exit "$rc"
