#!/usr/bin/env bash
# Add-device end to end, through nginx (getacert as user getacert on its own unix
# socket) and through Apache + mod_proxy_fcgi (getacert under spawn-fcgi), each with its
# own CA and the shipped CRL lines on from the start (`getacert init` writes an empty
# signed crl.pem): device 1 enrolls alice and gets an add-device code, device 2 enrolls
# alice with it, both log in; device 1 revokes device 2; getacert treats device 2 as
# anonymous at once, and after the reload the web server refuses it while device 1
# still gets in. Through nginx also: the revoked device cannot revoke device 1.
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

# devices_story SERVER RELOAD_FUNCTION [forged]: the whole story through the running server.
devices_story() {
	local s=$1 reload=$2 forged=${3:-} o=$T/out tok code s1 s2
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
		test "$(grep -o '<strong>Certificate [^<]*</strong>' "$o/d1-page2" | wc -l)" = 2
	check_grep "$s: device 1's account page offers to revoke device 2 ($s2)" "$o/d1-page2" \
		"name=\"serial\" value=\"0*$s2\""
	tok=$(form_token "$o/d1-page2")
	as_device alice /getacert.php "$o/d1-revoke" --data-urlencode action=revoke \
		--data-urlencode "serial=$s2" --data-urlencode "token=$tok"
	check_grep "$s: POST action=revoke serial=$s2 from device 1: 200" "$o/d1-revoke" '^HTTP_STATUS=200$'
	check_grep "$s: the page says device 2 can no longer sign in" "$o/d1-revoke" \
		"The device with certificate 0*$s2 can no longer sign in"
	check "$s: index.txt: device 2 ($s2) is R" test "$(index_status "$s2")" = R
	check "$s: index.txt: device 1 ($s1) is still V" test "$(index_status "$s1")" = V
	openssl crl -in "$CA/crl.pem" -noout -text >"$o/crl.txt" 2>&1
	check_grep "$s: crl.pem now lists device 2's serial" "$o/crl.txt" "Serial Number: 0*$s2\$"
	check_nogrep "$s: crl.pem does not list device 1's serial" "$o/crl.txt" "Serial Number: 0*$s1\$"
	check "$s: openssl verify -crl_check: device 2 is revoked" bash -c "! openssl verify -crl_check \
		-CAfile '$CA/rootCA.pem' -CRLfile '$CA/crl.pem' '$T/users/alice-d2.pem'"
	check "$s: openssl verify -crl_check: device 1 is fine" openssl verify -crl_check \
		-CAfile "$CA/rootCA.pem" -CRLfile "$CA/crl.pem" "$T/users/alice.pem"

	# 5. Before the reload: the web server still says SUCCESS, getacert knows better.
	login alice-d2 "$o/d2-auth-stale"
	check_grep "$s: before the reload, the server (old CRL) still says SUCCESS for device 2" "$o/d2-auth-stale" \
		'^SSL_CLIENT_VERIFY=SUCCESS$'
	as_device alice-d2 /getacert.php "$o/d2-page"
	check_grep "$s: device 2 at /getacert.php before the reload: 200" "$o/d2-page" '^HTTP_STATUS=200$'
	check_nogrep "$s: device 2 at /getacert.php: not the account page" "$o/d2-page" 'You are signed in as'
	check_grep "$s: device 2 at /getacert.php: the enrollment form" "$o/d2-page" 'name="username"'

	if [ -n "$forged" ]; then
		# The revoked device, with a valid form token, tries to revoke device 1.
		as_device alice-d2 /getacert.php "$o/d2-revoke" --data-urlencode action=revoke \
			--data-urlencode "serial=$s1" --data-urlencode "token=$tok"
		check_grep "$s: revoked device 2 POSTs action=revoke serial=$s1: 403" "$o/d2-revoke" '^HTTP_STATUS=403$'
		check "$s: index.txt: device 1 ($s1) is still V" test "$(index_status "$s1")" = V
	fi

	# 6. After the reload: the server refuses device 2, device 1 still gets in.
	check "$s: reload with the new CRL" "$reload"
	login alice-d2 "$o/d2-auth-after"
	if refused_or_not_success "$o/d2-auth-after"; then
		ok "$s: after the reload, device 2 at /auth/ is refused or not SUCCESS ($(grep -Eo '^SSL_CLIENT_VERIFY=.*|^HTTP_STATUS=.*|^curl: .*' "$o/d2-auth-after" | paste -sd ' '))"
	else
		notok "$s: after the reload, device 2 at /auth/ is refused or not SUCCESS" "$(cat "$o/d2-auth-after")"
	fi
	login alice "$o/d1-auth-after"
	check_grep "$s: after the reload, device 1 at /auth/: SUCCESS" "$o/d1-auth-after" '^SSL_CLIENT_VERIFY=SUCCESS$'
	check_grep "$s: after the reload, device 1 at /auth/: CN alice" "$o/d1-auth-after" '^SSL_CLIENT_S_DN_CN=alice$'
	as_device alice /getacert.php "$o/d1-page3"
	check_grep "$s: after the reload, device 1's account page shows device 2 revoked" "$o/d1-page3" \
		"Certificate 0*$s2</strong> <br><span class=\"meta\">revoked"
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
	make_tls && make_ca getacert socket_group=www-data || exit 1
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
	make_tls && make_ca getacert || exit 1
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
