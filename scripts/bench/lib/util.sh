# scripts/bench/lib/util.sh — sourced by scripts/bench/run and scripts/bench/report:
# logging, process groups, number formatting, /proc measurements, and the record of
# every figure a run measures (so that report can render it again without a run).
# shellcheck shell=bash

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }
# start CMD... in its own session/process group; echoes the pid (= group id)
spawn() {
    local logf=$1; shift
    setsid "$@" >>"$logf" 2>&1 </dev/null &
    local pid=$!
    PGROUPS="$PGROUPS $pid"
    SPAWNED=$pid
}

stop_group() {
    local g=$1 rest=""
    kill -TERM -- "-$g" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 -- "-$g" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$g" 2>/dev/null || true
    wait "$g" 2>/dev/null || true
    for x in $PGROUPS; do [ "$x" = "$g" ] || rest="$rest $x"; done
    PGROUPS=$rest
}

now_ns() { date +%s%N; }
fmt() { awk -v v="$1" -v d="${2:-1}" 'BEGIN { if (v == "" || v == "n/a") print "n/a"; else printf "%.*f\n", d, v }'; }
div() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.*f\n", d, a / b }'; }
# yes/no/n/a for "A OP B" (OP one of le ge lt gt)
cmpv() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
    if (a == "n/a" || a == "" || b == "") { print "n/a"; exit }
    r = (op == "le") ? a <= b : (op == "ge") ? a >= b : (op == "lt") ? a < b : a > b
    print r ? "met" : "**missed**" }'; }

# ------------------------------------------------------------- /proc measurements
CLK_TCK=$(getconf CLK_TCK)

# pids of PID and all its descendants
proc_tree() {
    local rootpid=$1 f line rest pid
    declare -A kids=()
    for f in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$f" || continue
        pid=${line%% *}
        rest=${line##*) }
        # shellcheck disable=SC2086 # split the numeric fields
        set -- $rest
        kids[$2]="${kids[$2]:-} $pid"
    done
    local -a queue=("$rootpid")
    local i=0 k
    while [ "$i" -lt "${#queue[@]}" ] && [ "$i" -lt 10000 ]; do
        for k in ${kids[${queue[$i]}]:-}; do queue+=("$k"); done
        i=$((i + 1))
    done
    echo "${queue[*]}"
}

# CPU time (clock ticks) used so far by PID's process tree: utime+stime of every live
# process plus cutime+cstime (its children that have exited and been reaped: fcgiwrap's
# CGI processes, the forks of article.cgi). Nothing is counted twice.
cpu_ticks() {
    local total=0 p line rest
    for p in $(proc_tree "$1"); do
        read -r line 2>/dev/null <"/proc/$p/stat" || continue
        rest=${line##*) }
        # shellcheck disable=SC2086 # split the numeric fields
        set -- $rest          # $1 = state (field 3) ... $12 utime $13 stime $14 cutime $15 cstime
        total=$((total + ${12} + ${13} + ${14} + ${15}))
    done
    echo "$total"
}

# "KIB NPROC": largest VmHWM (peak RSS) in PID's tree, and how many processes
peak_rss_kib() {
    local max=0 n=0 p v
    for p in $(proc_tree "$1"); do
        v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        [ -n "$v" ] || continue
        n=$((n + 1))
        [ "$v" -gt "$max" ] && max=$v
    done
    echo "$max $n"
}

# ---------------------------------------------------------------- the record of a run
# Every figure the report quotes goes through these, which set it in this shell and
# append it to $RECORD (one "kind<TAB>name<TAB>label<TAB>value" line); scripts/bench/report
# replays the file into the same arrays and variables.
RECORD=${RECORD:-/dev/null}
rec_list() {  # rec_list ARRAY LABEL VALUE: append VALUE to ARRAY[LABEL] (one per round)
    eval "$1[\$2]=\"\${$1[\$2]:-} \$3\""
    printf 'list\t%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RECORD"
}
rec_set() {  # rec_set ARRAY LABEL VALUE
    eval "$1[\$2]=\$3"
    printf 'set\t%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RECORD"
}
rec_var() {  # rec_var NAME VALUE
    printf -v "$1" '%s' "$2"
    printf 'var\t%s\t-\t%s\n' "$1" "$2" >>"$RECORD"
}
# replay FILE: the inverse of the three above
replay() {
    local kind name label value
    while IFS=$'\t' read -r kind name label value; do
        case $name in *[!A-Za-z0-9_]*|'') continue ;; esac
        case $kind in
            list) eval "$name[\$label]=\"\${$name[\$label]:-} \$value\"" ;;
            set) eval "$name[\$label]=\$value" ;;
            var) printf -v "$name" '%s' "$value" ;;
        esac
    done <"$1"
}
# The arrays a run fills (label -> values); see point, prefill_leg and check_leg.
declare -gA R_CORRECT R_RATE R_P50 R_P99 R_ERR R_OK R_CODES R_CPUMS R_ISSUED R_ANS C_SUMMARY S_START S_FIRST S_RSS S_CHECK S_READY
