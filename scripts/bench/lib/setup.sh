# scripts/bench/lib/setup.sh — sourced by scripts/bench/run: checks the tools, measures
# the machine (signature speed, synchronous writes), makes the CAs and starts nginx and
# fcgiwrap. Top-level code of the run, in its order; shares its variables.
# shellcheck shell=bash

# ---------------------------------------------------------------- prerequisites
for t in nginx fcgiwrap wrk openssl curl flock awk setsid php-fpm; do
    command -v "$t" >/dev/null 2>&1 || compgen -G "/usr/sbin/$t*" >/dev/null || die "$t not found"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
FCGIWRAP=$(command -v fcgiwrap || echo /usr/sbin/fcgiwrap)
PHPFPM=$(compgen -G '/usr/sbin/php-fpm*' | head -n 1 || command -v php-fpm)
BIN_ID=""
if [ "$article_only" = 0 ]; then
    [ -x "$BIN" ] || die "getacert binary $BIN not found (cargo build --release, or GETACERT=..., or --article-only)"
    # run a private copy: a rebuild during the run must not change the binary under test
    # between rounds (every daemon start and every CGI request executes it afresh)
    BIN_ID="$("$BIN" --version 2>/dev/null | head -n 1), built $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$BIN" | cut -c1-12)"
    cp "$BIN" "$W/getacert"
    BIN=$W/getacert
    log "binary under test: $BIN_ID"
fi

FAILURES=0
fail() { log "CORRECTNESS FAILURE: $*"; FAILURES=$((FAILURES + 1)); echo "- $*" >>"$W/failures"; }

rec_var CPU_MODEL "$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
rec_var BIN_ID "$BIN_ID"
rec_var RUN_DATE "$(date -u '+%Y-%m-%d %H:%M UTC')"
rec_var VERSIONS "$(openssl version | cut -d' ' -f1-2), nginx $("$NGINX" -v 2>&1 | sed 's#.*/##'), wrk $(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }')"
for _v in smoke article_only NCPU ROUNDS DUR ASIS_DUR SPEED_S WORKERS CGI_CHILDREN SIZES; do rec_var "$_v" "${!_v}"; done
log "work dir $W; $NCPU cores ($CPU_MODEL); $DUR s per point; smoke=$smoke"

# ---------------------------------------------------------------- RSA/EC sign speed
speed() {  # speed ALG -> sign/s
    openssl speed -seconds "$SPEED_S" "$1" 2>/dev/null |
        awk -v alg="$1" '
            alg == "rsa2048" && /^rsa 2048 bits/ { print $6; exit }
            alg == "ecdsap256" && /256 bits ecdsa \(nistp256\)/ { print $(NF - 1); exit }'
}
log "openssl speed rsa2048 / ecdsap256 (${SPEED_S} s each)"
rec_var RSA_SIGNS "$(speed rsa2048)"
rec_var EC_SIGNS "$(speed ecdsap256)"
rec_var RSA_MS "$(div 1000 "$RSA_SIGNS" 3)"
rec_var EC_MS "$(div 1000 "$EC_SIGNS" 3)"
log "one RSA-2048 signature: $RSA_MS ms ($RSA_SIGNS sign/s); one ECDSA P-256 signature: $EC_MS ms"

# ---------------------------------------------------------------- disk: synchronous writes
# what an fsync costs on the file system holding the CA directories (getacert fsyncs the
# files it writes for every enrollment; openssl ca does not fsync at all)
NSYNC=100; [ "$smoke" = 1 ] && NSYNC=20
rec_var SYNC_MS "$(LC_ALL=C dd if=/dev/zero of="$W/fsync.test" bs=4096 count="$NSYNC" oflag=dsync 2>&1 |
    awk -v n="$NSYNC" '/copied/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "s,") { printf "%.3f", $i * 1000 / n; exit } }')"
rm -f "$W/fsync.test"
# and what creating (and removing) a file costs there: getacert creates two per enrollment
# (newcerts/SERIAL.pem, a temp file renamed over serial), openssl ca four
mkdir -p "$W/create.test"
n0=$(now_ns)
for i in $(seq 1 "$NSYNC"); do : >"$W/create.test/f$i"; done
n1=$(now_ns)
rm -rf "$W/create.test"
rec_var CREATE_MS "$(awk -v d=$((n1 - n0)) -v n="$NSYNC" 'BEGIN { printf "%.3f", d / n / 1e6 }')"
log "one file creation in the work directory: $CREATE_MS ms"
log "one synchronous 4 KiB write (dd oflag=dsync) on $(df -P "$W" | awk 'NR == 2 { print $1 }'): $SYNC_MS ms"

# ---------------------------------------------------------------- keys and CA
log "making $NKEYS client RSA-2048 keys"
for i in $(seq 1 "$NKEYS"); do
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/keys/k$i.pem" 2>/dev/null
done

# conf_get CONF KEY: first "KEY = value" in CONF, with $dir / ${dir} expanded
conf_get() {
    awk -v key="$2" '
        { sub(/#.*/, "") }
        /^[ \t]*dir[ \t]*=/ && dir == "" { v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]+$/, "", v); dir = v }
        $0 ~ "^[ \t]*" key "[ \t]*=" && val == "" { v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]+$/, "", v); val = v }
        END {
            gsub(/\$\{dir\}|\$dir/, dir, val)
            gsub(/^"|"$/, "", val)
            print val
        }' "$1"
}

# standalone CA for --article-only (the article's ca.conf, with sha256 and its own dir)
make_openssl_ca() {
    local d=$1
    mkdir -p "$d/newcerts" "$d/private"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/private/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$d/private/ca.key" -days 7300 -subj "/CN=Bench CA" -out "$d/ca.pem" 2>/dev/null
    : >"$d/index.txt"; echo 1000 >"$d/serial"; echo "unique_subject = no" >"$d/index.txt.attr"
    cat >"$d/ca.conf" <<EOF
[ ca ]
default_ca      = CA_default
[ CA_default ]
dir            = $d
database       = \$dir/index.txt
new_certs_dir  = \$dir/newcerts
certificate    = \$dir/ca.pem
serial         = \$dir/serial
private_key    = \$dir/private/ca.key
default_days   = 3650
default_crl_days= 60
default_md     = sha256
policy         = policy_any
email_in_dn    = yes
name_opt       = ca_default
cert_opt       = ca_default
copy_extensions = none
[ policy_any ]
countryName            = supplied
stateOrProvinceName    = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = supplied
emailAddress           = optional
EOF
}

if [ "$article_only" = 1 ]; then
    log "stand-in CA made with openssl (no getacert binary)"
    make_openssl_ca "$W/ca-rsa"
else
    log "getacert init (RSA-2048 and EC P-256 CAs)"
    "$BIN" init "$W/ca-rsa" --cn 'Bench CA' --key rsa:2048 >>"$W/logs/init.log" 2>&1 ||
        { cat "$W/logs/init.log" >&2; die "getacert init --key rsa:2048 failed"; }
    "$BIN" init "$W/ca-ec" --cn 'Bench CA EC' --key ec:P-256 >>"$W/logs/init.log" 2>&1 ||
        { cat "$W/logs/init.log" >&2; die "getacert init --key ec:P-256 failed"; }
fi
[ -f "$W/ca-rsa/ca.conf" ] || die "no $W/ca-rsa/ca.conf"

# All the load comes from 127.0.0.1: turn getacert's per-address rate limit off (with the
# default, 20 enrollments per 60 s per address, the daemon rightly answers 429 to the
# rest). Skipped for a binary that does not know the setting.
unlimit() {
    local conf=$1
    [ "$article_only" = 0 ] || return 0
    grep -q '^\[ *getacert *\]' "$conf" || printf '\n[ getacert ]\n' >>"$conf"
    cp "$conf" "$conf.orig"
    awk '/^\[ *getacert *\]/ { print; print "address_rate = off  # scripts/bench/run: all load comes from 127.0.0.1"; next }
         /^[ \t]*address_rate[ \t]*=/ { next } { print }' "$conf.orig" >"$conf"
    if "$BIN" --config "$conf" check 2>&1 | grep -q address_rate; then
        mv "$conf.orig" "$conf"
        log "this getacert does not know address_rate; rate limit left as it is"
    else
        rm -f "$conf.orig"
    fi
}
unlimit "$W/ca-rsa/ca.conf"
[ ! -f "$W/ca-ec/ca.conf" ] || unlimit "$W/ca-ec/ca.conf"
# One front secret for every daemon leg, so one nginx include serves them all (a
# getacert from before the front secret has none, and nginx includes nothing).
if [ -f "$W/ca-rsa/front-secret.nginx" ] && [ -f "$W/ca-ec/front-secret" ]; then
    cp "$W/ca-rsa/front-secret" "$W/ca-ec/front-secret"
fi

# copy_ca SRC DST: same CA key and certificate, own database
copy_ca() {
    cp -a "$1" "$2"
    sed -i "s#$1#$2#g" "$2/ca.conf"
    rm -f "$2"/*.lock "$2"/.lock 2>/dev/null || true
}

# ---------------------------------------------------------------- nginx + fcgiwrap
SOCK=$W/getacert.sock
WRAPSOCK=$W/fcgiwrap.sock
PHPSOCK=$W/php-fpm.sock
mkdir -p "$W/nginx/logs" "$W/nginx/tmp"
if [ "$article_only" = 0 ]; then
    copy_ca "$W/ca-rsa" "$W/ca-cgi"
fi
copy_ca "$W/ca-rsa" "$W/ca-article"
copy_ca "$W/ca-rsa" "$W/ca-published"
copy_ca "$W/ca-rsa" "$W/ca-php"
copy_ca "$W/ca-rsa" "$W/ca-phpflock"
cp "$here/article.cgi" "$W/article.cgi"
cp "$here/article.php" "$W/article.php"
chmod 755 "$W/article.cgi"

params() {
    cat <<'EOF'
            fastcgi_param QUERY_STRING      $query_string;
            fastcgi_param REQUEST_METHOD    $request_method;
            fastcgi_param CONTENT_TYPE      $content_type;
            fastcgi_param CONTENT_LENGTH    $content_length;
            fastcgi_param SCRIPT_NAME       $fastcgi_script_name;
            fastcgi_param REQUEST_URI       $request_uri;
            fastcgi_param DOCUMENT_URI      $document_uri;
            fastcgi_param DOCUMENT_ROOT     $document_root;
            fastcgi_param SERVER_PROTOCOL   $server_protocol;
            fastcgi_param REQUEST_SCHEME    $scheme;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param SERVER_SOFTWARE   nginx/$nginx_version;
            fastcgi_param REMOTE_ADDR       $remote_addr;
            fastcgi_param REMOTE_PORT       $remote_port;
            fastcgi_param SERVER_ADDR       $server_addr;
            fastcgi_param SERVER_PORT       $server_port;
            fastcgi_param SERVER_NAME       $server_name;
EOF
}

user_line=""
[ "$(id -u)" = 0 ] && user_line="user root root;"
cat >"$W/nginx/nginx.conf" <<EOF
# generated by scripts/bench/run
$user_line
worker_processes 1;
pid $W/nginx/nginx.pid;
error_log $W/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $W/nginx/tmp/body;
    fastcgi_temp_path $W/nginx/tmp/fastcgi;
    proxy_temp_path $W/nginx/tmp/proxy;
    uwsgi_temp_path $W/nginx/tmp/uwsgi;
    scgi_temp_path $W/nginx/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    fastcgi_read_timeout 60s;
    server {
        listen 127.0.0.1:$PORT;
        server_name localhost;
        root $W/www;
        # 1. getacert as a FastCGI daemon (serve --listen unix:...)
        location = /fastcgi/ {
$(params)
$([ ! -f "$W/ca-rsa/front-secret.nginx" ] || echo "            include $W/ca-rsa/front-secret.nginx;")
            fastcgi_pass unix:$SOCK;
        }
        # 2. getacert as plain CGI through fcgiwrap
        location = /cgi/ {
$(params)
            fastcgi_param SCRIPT_FILENAME $BIN;
            fastcgi_param GETACERT_CONFIG $W/ca-cgi/ca.conf;
            fastcgi_pass unix:$WRAPSOCK;
        }
        # 3. the article's method (article.cgi), openssl ca under flock
        location = /article/ {
$(params)
            fastcgi_param SCRIPT_FILENAME $W/article.cgi;
            fastcgi_param ARTICLE_CONF $W/ca-article/ca.conf;
            fastcgi_param ARTICLE_LOCK $(conf_get "$W/ca-article/ca.conf" database).lock;
            fastcgi_param ARTICLE_TMP $W/tmp;
            fastcgi_pass unix:$WRAPSOCK;
        }
        # 3b. the article's method as published: no lock
        location = /published/ {
$(params)
            fastcgi_param SCRIPT_FILENAME $W/article.cgi;
            fastcgi_param ARTICLE_CONF $W/ca-published/ca.conf;
            fastcgi_param ARTICLE_AS_PUBLISHED 1;
            fastcgi_param ARTICLE_TMP $W/tmp;
            fastcgi_pass unix:$WRAPSOCK;
        }
        # 4. the article's own page, getacert.php, under php-fpm (as printed: no lock)
        location = /php/ {
$(params)
            fastcgi_param SCRIPT_FILENAME $W/article.php;
            fastcgi_param ARTICLE_CONF $W/ca-php/ca.conf;
            fastcgi_param ARTICLE_DB $(conf_get "$W/ca-php/ca.conf" database);
            fastcgi_param ARTICLE_TMP $W/tmp;
            fastcgi_pass unix:$PHPSOCK;
        }
        # 4b. the same page with the obvious flock fix
        location = /php-flock/ {
$(params)
            fastcgi_param SCRIPT_FILENAME $W/article.php;
            fastcgi_param ARTICLE_CONF $W/ca-phpflock/ca.conf;
            fastcgi_param ARTICLE_DB $(conf_get "$W/ca-phpflock/ca.conf" database);
            fastcgi_param ARTICLE_FLOCK 1;
            fastcgi_param ARTICLE_TMP $W/tmp;
            fastcgi_pass unix:$PHPSOCK;
        }
    }
}
EOF
# php-fpm: as many children as fcgiwrap has, so both run 16 requests at once
php_user=""
[ "$(id -u)" = 0 ] && php_user=$'user = root\ngroup = root'
cat >"$W/php-fpm.conf" <<EOF
[global]
error_log = $W/logs/php-fpm-error.log
daemonize = no
[article]
$php_user
listen = $PHPSOCK
pm = static
pm.max_children = $CGI_CHILDREN
clear_env = no
EOF
mkdir -p "$W/www"

port_busy() { curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null; }
port_busy "$PORT" && die "port $PORT already answers (set BENCH_PORT)"
"$NGINX" -t -p "$W/nginx" -e "$W/nginx/logs/error.log" -c "$W/nginx/nginx.conf" >>"$W/logs/nginx.log" 2>&1 ||
    { cat "$W/logs/nginx.log" >&2; die "nginx -t failed"; }
spawn "$W/logs/nginx.log" "$NGINX" -p "$W/nginx" -e "$W/nginx/logs/error.log" -c "$W/nginx/nginx.conf" -g 'daemon off;'
NGINX_PID=$SPAWNED
spawn "$W/logs/fcgiwrap.log" "$FCGIWRAP" -f -c "$CGI_CHILDREN" -s "unix:$WRAPSOCK"
FCGIWRAP_PID=$SPAWNED
spawn "$W/logs/php-fpm.log" "$PHPFPM" -R -F -y "$W/php-fpm.conf"
PHPFPM_PID=$SPAWNED
for _ in $(seq 1 100); do
    [ -S "$WRAPSOCK" ] && curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/article/" && break
    sleep 0.05
done
kill -0 "$NGINX_PID" 2>/dev/null || { cat "$W/logs/nginx.log" "$W/nginx/logs/error.log" >&2; die "nginx did not start"; }
kill -0 "$FCGIWRAP_PID" 2>/dev/null || { cat "$W/logs/fcgiwrap.log" >&2; die "fcgiwrap did not start"; }
for _ in $(seq 1 100); do [ -S "$PHPSOCK" ] && break; sleep 0.05; done
kill -0 "$PHPFPM_PID" 2>/dev/null && [ -S "$PHPSOCK" ] ||
    { cat "$W/logs/php-fpm.log" "$W/logs/php-fpm-error.log" >&2 2>/dev/null; die "php-fpm did not start"; }
log "nginx on 127.0.0.1:$PORT (pid $NGINX_PID), fcgiwrap -c $CGI_CHILDREN (pid $FCGIWRAP_PID)"

URL=http://127.0.0.1:$PORT
