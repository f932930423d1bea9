# scripts/bench/lib/measure.sh — sourced by scripts/bench/run: one enrollment, one
# measured point (wrk), the preflight and the correctness check of a leg, daemon start.
# shellcheck shell=bash

# ---------------------------------------------------------------- SPKAC pool from the page
urlenc() { LC_ALL=C awk 'BEGIN { for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i }
    { o = ""; for (i = 1; i <= length($0); i++) { c = substr($0, i, 1)
        o = o ((c ~ /[A-Za-z0-9._~-]/) ? c : sprintf("%%%02X", ord[c])) } print o }'; }
htmldec() { sed 's/&quot;/"/g; s/&#39;/'"'"'/g; s/&lt;/</g; s/&gt;/>/g; s/&amp;/\&/g'; }

# make_pool PATH TAG: GET the page, take its challenge="..." (else a constant), hidden
# form fields and cookie; sign one SPKAC per pool key. Sets POOL EXTRA COOKIE.
make_pool() {
    local path=$1 d=$W/points/$2 challenge i name value
    mkdir -p "$d"
    rm -f "$d/extra.names"
    curl -sS --max-time 10 -D "$d/page.hdr" -o "$d/page.html" "$URL$path" || true
    challenge=$(grep -o 'challenge="[^"]*"' "$d/page.html" 2>/dev/null | head -n 1 |
        sed 's/^challenge="//; s/"$//' | htmldec || true)
    [ -n "$challenge" ] || challenge=benchchallenge
    : >"$d/extra"
    # hidden fields (e.g. an anti-CSRF token), each name once, first value wins
    grep -io '<input[^>]*>' "$d/page.html" 2>/dev/null | grep -i 'type="hidden"' |
        while read -r tagline; do
            name=$(printf '%s\n' "$tagline" | sed -n 's/.*name="\([^"]*\)".*/\1/p' | htmldec)
            value=$(printf '%s\n' "$tagline" | sed -n 's/.*value="\([^"]*\)".*/\1/p' | htmldec)
            case $name in ''|username|pubkey) continue ;; esac
            grep -qxF "$name" "$d/extra.names" 2>/dev/null && continue
            printf '%s\n' "$name" >>"$d/extra.names"
            printf '&%s=%s' "$(printf '%s\n' "$name" | urlenc)" "$(printf '%s\n' "$value" | urlenc)" >>"$d/extra"
        done || true
    COOKIE=$(awk 'tolower($1) == "set-cookie:" { sub(/\r$/, ""); split($2, a, ";"); c = c (c == "" ? "" : "; ") a[1] } END { print c }' "$d/page.hdr" 2>/dev/null || true)
    : >"$d/pool"
    for i in $(seq 1 "$NKEYS"); do
        openssl spkac -key "$W/keys/k$i.pem" -challenge "$challenge" | sed 's/^SPKAC=//' | urlenc >>"$d/pool"
    done
    POOL=$d/pool
    EXTRA=$d/extra
    echo "$challenge" >"$d/challenge"
}

# ---------------------------------------------------------------- one enrollment with curl
# enroll_once PATH TAG USERNAME: sets E_CODE E_TIME (s) E_BODY (file); records the serial
enroll_once() {
    local path=$1 user=$3 d=$W/points/$2 body
    body="username=$user&pubkey=$(head -n 1 "$POOL")$(cat "$EXTRA")"
    printf '%s' "$body" >"$d/once.req"
    set -- -sS --max-time 30 -o "$d/once.body" -D "$d/once.hdr" -w '%{http_code} %{time_total}' \
        -H 'Content-Type: application/x-www-form-urlencoded' --data-binary "@$d/once.req"
    [ -n "$COOKIE" ] && set -- "$@" -H "Cookie: $COOKIE"
    local out
    out=$(curl "$@" "$URL$path" 2>>"$W/logs/curl.log") || out="000 0"
    E_CODE=${out% *}
    E_TIME=${out#* }
    E_BODY=$d/once.body
}

show_exchange() {  # show_exchange TAG: the request and answer of enroll_once, for a report
    local d=$W/points/$1
    {
        echo "---- request: POST $2"
        head -c 300 "$d/once.req"; echo
        echo "---- response"
        cat "$d/once.hdr" 2>/dev/null
        if LC_ALL=C grep -q '[^[:print:][:space:]]' "$d/once.body" 2>/dev/null; then
            echo "(binary body, $(wc -c <"$d/once.body") bytes)"
        else
            head -c 2000 "$d/once.body" 2>/dev/null; echo
        fi
        echo "----"
    } >&2
}

# ---------------------------------------------------------------- index helpers
index_of() { conf_get "$1" database; }
vcount() { grep -c '^V' "$1" 2>/dev/null || true; }
wait_quiet() {  # wait_quiet INDEX [LOCK]: until in-flight enrollments have landed
    local idx=$1 lock=${2:-} a b
    if [ -n "$lock" ] && [ -e "$lock" ]; then flock -w 30 "$lock" true 2>/dev/null || true; fi
    a=$(stat -c %s "$idx" 2>/dev/null || echo 0)
    for _ in $(seq 1 40); do
        sleep 0.25
        b=$(stat -c %s "$idx" 2>/dev/null || echo 0)
        [ "$a" = "$b" ] && break
        a=$b
    done
}

# ---------------------------------------------------------------- one measured point
# Every R_* entry holds one value per round, space-separated; the report quotes medians.
ROUND=1
# point LABEL PATH CONNS SECONDS CONF [PID_FOR_CPU]
point() {
    local label=$1 path=$2 conns=$3 secs=$4 conf=$5 cpid=${6:-} threads=1 idx v0 v1 c0=0 c1=0 d tag cpu=n/a err
    [ "$conns" -ge 2 ] && threads=2
    tag=$label-r$ROUND
    make_pool "$path" "$tag"
    d=$W/points/$tag
    idx=$(index_of "$conf")
    v0=$(vcount "$idx")
    [ -n "$cpid" ] && c0=$(cpu_ticks "$cpid")
    wrk -t "$threads" -c "$conns" -d "${secs}s" --timeout 10s --latency -s "$here/enroll.lua" \
        "$URL$path" -- "$POOL" "$(echo "$tag" | tr -cd 'a-z0-9')" "$d/result" "$EXTRA" "${COOKIE:-}" \
        >"$d/wrk.log" 2>&1 || { cat "$d/wrk.log" >&2; fail "$tag: wrk failed"; return 0; }
    # CGI processes still running for requests wrk gave up on at the end: let them finish
    case $path in
        /fastcgi/) ;;
        *) for _ in $(seq 1 100); do
               [ "$(proc_tree "$FCGIWRAP_PID" | wc -w)" -le $((CGI_CHILDREN + 1)) ] && break
               sleep 0.1
           done ;;
    esac
    wait_quiet "$idx" "$idx.lock"
    [ -n "$cpid" ] && c1=$(cpu_ticks "$cpid")
    v1=$(vcount "$idx")
    [ -f "$d/result" ] || { cat "$d/wrk.log" >&2; fail "$tag: wrk wrote no result"; return 0; }
    get() { sed -n "s/^$1=//p" "$d/result"; }
    if [ -n "$cpid" ] && [ $((v1 - v0)) -gt 0 ]; then
        cpu=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n=$((v1 - v0)) 'BEGIN { printf "%.3f", t * 1000 / hz / n }')
    fi
    err=$(( $(get non200) + $(get bad200) + $(get sockerr) ))
    rec_list R_RATE "$label" "$(get rate)"
    rec_list R_P50 "$label" "$(get p50_ms)"
    rec_list R_P99 "$label" "$(get p99_ms)"
    rec_set R_OK "$label" $(( ${R_OK[$label]:-0} + $(get ok) ))
    rec_set R_ANS "$label" $(( ${R_ANS[$label]:-0} + $(get answers) ))
    rec_list R_CODES "$label" "$(get codes)"
    rec_set R_ERR "$label" $(( ${R_ERR[$label]:-0} + err ))
    rec_set R_ISSUED "$label" $(( ${R_ISSUED[$label]:-0} + v1 - v0 ))
    [ "$cpu" = n/a ] || rec_list R_CPUMS "$label" "$cpu"
    # correct certificates/s: 200 answers with a DER certificate whose serial no other
    # answer of the point carries (the article's page, unlocked, hands out duplicates)
    rec_list R_CORRECT "$label" "$(sed -n 's/^serial=//p' "$d/result" | sort | uniq -u | wc -l |
        awk -v s="$(get duration_s)" '{ if (s > 0) printf "%.3f", $1 / s; else print "n/a" }')"
    sed -n 's/^serial=//p' "$d/result" >>"$(dirname "$conf")/bench-serials"
    echo "$conns" >>"$(dirname "$conf")/bench-conns"
    echo $(( $(get sockerr) )) >>"$(dirname "$conf")/bench-sockerr"
    log "round $ROUND $label (-c$conns ${secs}s $path): $(fmt "$(get rate)" 1) enrollments/s, p50 $(fmt "$(get p50_ms)" 2) ms, p99 $(fmt "$(get p99_ms)" 2) ms, errors $err (codes $(get codes)), issued $((v1 - v0)), daemon CPU/enrollment $cpu ms"
}

# ---------------------------------------------------------------- preflight of a leg
# preflight LABEL PATH CONF: one enrollment by curl, must be 200 + DER certificate that
# verifies against the CA. Sets FIRST_MS. Returns 1 (after reporting) when it is not.
preflight() {
    local label=$1 path=$2 conf=$3 cacert serial
    make_pool "$path" "$label-pre"
    enroll_once "$path" "$label-pre" "pre$(echo "$label" | tr -cd 'a-z0-9')"
    FIRST_MS=$(awk -v t="$E_TIME" 'BEGIN { printf "%.1f", t * 1000 }')
    cacert=$(conf_get "$conf" certificate)
    if [ "$E_CODE" != 200 ] || ! openssl x509 -inform DER -in "$E_BODY" -out "$E_BODY.pem" 2>/dev/null; then
        fail "$label: the first enrollment did not answer 200 with a DER certificate (HTTP $E_CODE)"
        show_exchange "$label-pre" "$path"
        return 1
    fi
    if ! openssl verify -CAfile "$cacert" "$E_BODY.pem" >/dev/null 2>>"$W/logs/verify.log"; then
        fail "$label: the first certificate does not verify against $cacert"
        tail -n 5 "$W/logs/verify.log" >&2
    fi
    serial=$(openssl x509 -in "$E_BODY.pem" -noout -serial | sed 's/^serial=//')
    echo "$serial" >>"$(dirname "$conf")/bench-serials"
    log "$label: first enrollment HTTP 200 in $FIRST_MS ms, serial $serial, $(openssl x509 -in "$E_BODY.pem" -noout -subject)"
    return 0
}

# ---------------------------------------------------------------- correctness of a leg
# check_leg LABEL CONF PREFILLED [report-only]
check_leg() {
    local label=$1 conf=$2 pre=$3 reportonly=${4:-0} dir idx newdir cacert v issued ok files dupidx dupresp missing allow upd s f verified=0 problems=""
    dir=$(dirname "$conf")
    touch "$dir/bench-serials" "$dir/bench-conns" "$dir/bench-sockerr"
    idx=$(conf_get "$conf" database)
    newdir=$(conf_get "$conf" new_certs_dir)
    cacert=$(conf_get "$conf" certificate)
    # `openssl ca` replaces index.txt by two renames; a request of the unlocked article
    # page stopped between them (fcgiwrap is stopped before these checks) leaves none.
    if [ ! -f "$idx" ]; then
        problems="; index.txt is missing (an openssl ca stopped between its two renames)"
        [ "$reportonly" = 1 ] || fail "$label: $idx is missing"
        : >"$idx"
    fi
    v=$(vcount "$idx")
    issued=$((v - pre))
    ok=$(wc -l <"$dir/bench-serials" 2>/dev/null || echo 0)
    files=$(find "$newdir" -maxdepth 1 -type f -name '*.pem' 2>/dev/null | wc -l)
    dupidx=$(awk -F'\t' '{ print $4 }' "$idx" | sort | uniq -d | wc -l)
    dupresp=$(sort "$dir/bench-serials" 2>/dev/null | uniq -d | wc -l)
    allow=$(awk '{ s += $1 } END { print s + 0 }' "$dir/bench-conns" "$dir/bench-sockerr" 2>/dev/null)
    # every certificate answered must be a V line of index.txt with its newcerts file
    missing=$(awk -F'\t' -v nd="$newdir" 'NR == FNR { if ($1 == "V") have[$4] = 1; next }
        { if (!($1 in have)) m++ } END { print m + 0 }' "$idx" "$dir/bench-serials" 2>/dev/null || echo "?")
    local nofile=0
    while read -r s; do
        [ -f "$newdir/$s.pem" ] || nofile=$((nofile + 1))
    done <"$dir/bench-serials"
    upd=ok
    if ! flock -w 30 "$idx.lock" openssl ca -config "$conf" -updatedb >"$W/logs/updatedb-$label.log" 2>&1; then
        upd=FAILED
    fi
    # openssl verify a sample: first, middle and last newcerts file
    local sample
    sample=$(find "$newdir" -maxdepth 1 -type f -name '*.pem' 2>/dev/null | sort | awk '{ a[NR] = $0 } END { if (NR) { print a[1]; print a[int((NR + 1) / 2)]; print a[NR] } }' | sort -u)
    for f in $sample; do
        if openssl verify -CAfile "$cacert" "$f" >>"$W/logs/verify.log" 2>&1; then
            verified=$((verified + 1))
        else
            problems="$problems; openssl verify failed on $(basename "$f")"
        fi
    done
    [ "$ok" -gt 0 ] || problems="$problems; no certificate was answered"
    [ "$issued" -ge "$ok" ] || problems="$problems; $ok certificates answered but only $issued index lines"
    [ "$issued" -le $((ok + allow)) ] || problems="$problems; $issued index lines for $ok answered certificates (more than the $allow requests possibly cut off by the end of wrk)"
    [ "$files" -eq "$issued" ] || problems="$problems; $files newcerts files for $issued index lines"
    [ "$dupidx" -eq 0 ] || problems="$problems; $dupidx serials appear twice in index.txt"
    [ "$dupresp" -eq 0 ] || problems="$problems; $dupresp serials answered more than once"
    [ "$missing" = 0 ] || problems="$problems; $missing answered serials are not V lines of index.txt"
    [ "$nofile" -eq 0 ] || problems="$problems; $nofile answered serials have no newcerts file"
    [ "$upd" = ok ] || problems="$problems; openssl ca -updatedb refused the database ($(tail -n 1 "$W/logs/updatedb-$label.log"))"
    problems=${problems#; }
    C_SUMMARY[$label]="200+DER answers $ok; index V lines added $issued (prefilled $pre); newcerts files $files; duplicate serials in index $dupidx, among answers $dupresp; answered serials missing from index $missing, without newcerts file $nofile; openssl ca -updatedb $upd; openssl verify $verified/$(echo "$sample" | grep -c . || true)"
    rec_set C_SUMMARY "$label" "${C_SUMMARY[$label]}"
    log "check $label: ${C_SUMMARY[$label]}"
    if [ -n "$problems" ]; then
        C_SUMMARY[$label]="${C_SUMMARY[$label]} — $problems"
        rec_set C_SUMMARY "$label" "${C_SUMMARY[$label]}"
        if [ "$reportonly" = 1 ]; then
            log "check $label (as published, not a failure): $problems"
        else
            fail "$label: $problems"
        fi
    fi
}

# ---------------------------------------------------------------- daemon start / stop
# start_daemon CONF: sets DAEMON; start-up = launch to first 200 on GET through nginx
start_daemon() {
    local conf=$1 t0 code=000
    rm -f "$SOCK"
    t0=$(now_ns)
    spawn "$W/logs/getacert.log" "$BIN" --config "$conf" serve --listen "unix:$SOCK" --workers "$WORKERS"
    DAEMON=$SPAWNED
    for _ in $(seq 1 3000); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/fastcgi/" 2>/dev/null || true)
        [ "$code" = 200 ] && break
        kill -0 "$DAEMON" 2>/dev/null || break
        sleep 0.005
    done
    STARTUP_MS=$(( ($(now_ns) - t0) / 1000000 ))
    if [ "$code" != 200 ]; then
        tail -n 20 "$W/logs/getacert.log" >&2
        curl -sS -D - --max-time 2 "$URL/fastcgi/" 2>&1 | head -n 20 >&2 || true
        fail "getacert serve --config $conf: GET /fastcgi/ never answered 200 (last HTTP $code)"
        return 1
    fi
    log "getacert serve ready (GET 200) ${STARTUP_MS} ms after launch (pid $DAEMON, $(proc_tree "$DAEMON" | wc -w) processes)"
}
