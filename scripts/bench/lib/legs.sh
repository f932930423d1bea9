# scripts/bench/lib/legs.sh — sourced by scripts/bench/run: the legs (FastCGI, tmpfs,
# CGI, the article's method, pre-filled databases, EC), one round each per call.
# shellcheck shell=bash

# ================================================================ the legs
# Rounds are interleaved (every leg once per round, then again) so that a noisy minute on
# this shared machine hits all legs alike; the report quotes the median of the rounds.
declare -A LEG_OK
leg_ready() {  # leg_ready NAME PATH CONF: preflight once, in the first round
    local name=$1
    if [ -z "${LEG_OK[$name]:-}" ]; then
        LEG_OK[$name]=0
        preflight "$name" "$2" "$3" && LEG_OK[$name]=1
    fi
    [ "${LEG_OK[$name]}" = 1 ]
}
# daemon_leg NAME CONF LABEL:CONNS... — one round of a FastCGI daemon leg
daemon_leg() {
    local name=$1 conf=$2 pt; shift 2
    [ "${LEG_OK[$name]:-1}" = 1 ] || return 0
    if start_daemon "$conf" && leg_ready "$name" /fastcgi/ "$conf"; then
        for pt in "$@"; do
            point "${pt%%:*}" /fastcgi/ "${pt#*:}" "$DUR" "$conf" "$DAEMON"
        done
        [ "$name" != fastcgi ] || rec_var RSS_MAIN "$(peak_rss_kib "$DAEMON")"
    else
        LEG_OK[$name]=0
    fi
    stop_group "$DAEMON"
}
# prefill_leg N — one round of the FastCGI daemon on an index.txt pre-filled with N records
prefill_leg() {
    local n=$1 lab=pre$1 pconf t0 rss old
    pconf=$W/ca-$lab/ca.conf
    [ "${LEG_OK[$lab]:-1}" = 1 ] || return 0
    if [ ! -d "$W/ca-$lab" ]; then
        copy_ca "$W/ca-rsa" "$W/ca-$lab"
        if [ "$n" -gt 0 ]; then
            log "pre-filling $(index_of "$pconf") with $n records"
            "$here/gen-index" "$n" "$(index_of "$pconf")" "$(conf_get "$pconf" serial)" 1000
        fi
    fi
    t0=$(now_ns)
    if "$BIN" --config "$pconf" check >"$W/logs/check-$lab.log" 2>&1; then
        rec_list S_CHECK "$lab" $(( ($(now_ns) - t0) / 1000000 ))
    fi
    if ! start_daemon "$pconf"; then
        LEG_OK[$lab]=0; stop_group "$DAEMON"; return 0
    fi
    rec_list S_START "$lab" "$STARTUP_MS"
    make_pool /fastcgi/ "$lab-first-r$ROUND"
    enroll_once /fastcgi/ "$lab-first-r$ROUND" "first${lab}r$ROUND"
    rec_list S_FIRST "$lab" "$(awk -v t="$E_TIME" 'BEGIN { printf "%.1f", t * 1000 }')"
    rec_list S_READY "$lab" "$(awk -v s="$STARTUP_MS" -v t="$E_TIME" 'BEGIN { printf "%.0f", s + t * 1000 }')"
    if [ "$E_CODE" = 200 ] && openssl x509 -inform DER -in "$E_BODY" -noout 2>/dev/null; then
        openssl x509 -inform DER -in "$E_BODY" -noout -serial | sed 's/^serial=//' >>"$W/ca-$lab/bench-serials"
        LEG_OK[$lab]=1
    else
        fail "$lab: first enrollment answered HTTP $E_CODE"
        show_exchange "$lab-first-r$ROUND" /fastcgi/
        LEG_OK[$lab]=0; stop_group "$DAEMON"; return 0
    fi
    point "$lab" /fastcgi/ 16 "$DUR" "$pconf" "$DAEMON"
    rss=$(peak_rss_kib "$DAEMON")
    old=${S_RSS[$lab]:-0 0}
    [ "${rss%% *}" -lt "${old%% *}" ] || rec_set S_RSS "$lab" "$rss"
    stop_group "$DAEMON"
}

leg_fastcgi() { daemon_leg fastcgi "$W/ca-fastcgi/ca.conf" fc1:1 fc16:16; }
leg_tmpfs() { [ -z "$SHM" ] || daemon_leg tmpfs "$SHM/ca/ca.conf" shm1:1 shm16:16; }
leg_cgi() {
    if leg_ready cgi /cgi/ "$W/ca-cgi/ca.conf"; then
        point cgi1 /cgi/ 1 "$DUR" "$W/ca-cgi/ca.conf"
        point cgi16 /cgi/ 16 "$DUR" "$W/ca-cgi/ca.conf"
    fi
}
leg_article() {
    if leg_ready article /article/ "$W/ca-article/ca.conf"; then
        point art1 /article/ 1 "$DUR" "$W/ca-article/ca.conf"
        point art16 /article/ 16 "$DUR" "$W/ca-article/ca.conf"
    fi
}
leg_prefill() {
    local -a sizes
    read -r -a sizes <<<"$SIZES"
    local k=$(( (ROUND - 1) % ${#sizes[@]} )) n
    for n in "${sizes[@]:k}" "${sizes[@]:0:k}"; do prefill_leg "$n"; done
}
leg_php() {  # the article's own page under php-fpm, as printed and with flock
    if leg_ready php /php/ "$W/ca-php/ca.conf"; then
        point php16 /php/ 16 "$DUR" "$W/ca-php/ca.conf"
    fi
    if leg_ready phpflock /php-flock/ "$W/ca-phpflock/ca.conf"; then
        point phpflock16 /php-flock/ 16 "$DUR" "$W/ca-phpflock/ca.conf"
    fi
}
leg_ec() { daemon_leg ec "$W/ca-ecfast/ca.conf" ec1:1 ec16:16; }
