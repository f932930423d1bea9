#!/bin/sh
# The article's getacert.php ("Adding Easy SSL Client Authentication To Any Webapp"),
# step for step, as a CGI shell script, for scripts/bench/run to compare getacert with.
#
# Per POST, like the PHP: a temp file, an SPKAC file with the article's fields, one
# `openssl ca -config ca.conf -days 3650 -notext -batch -spkac FILE -out FILE.out`,
# and the DER output sent back as application/x-x509-user-cert. GET answers the
# article's keygen form (constant challenge "randomchars").
#
# Deliberate differences from the published page (so the comparison is fair):
#  - index.txt is NOT truncated on each request (the article's "reset CA DB" destroys the
#    record of every issued certificate; openssl ca is then also cheaper than it should be);
#  - `openssl ca` runs under `flock ARTICLE_LOCK`: without it, parallel requests reuse
#    serial numbers and lose index lines. ARTICLE_AS_PUBLISHED=1 drops the lock (and, as
#    the PHP, answers 200 whatever openssl did) to measure the page as published;
#  - no `emailAddress=` line: the PHP writes it empty, and OpenSSL 3 refuses the whole
#    request ("string too short");
#  - a failed `openssl ca` answers 500 (the PHP answers 200 with an empty body);
#  - temp files are removed; no Last-Modified/Accept-Ranges headers.
# The CGI environment (fcgiwrap passes nginx's fastcgi_param values):
#   ARTICLE_CONF  the ca.conf;  ARTICLE_LOCK  lock file;  ARTICLE_TMP  temp dir.
set -u

conf=${ARTICLE_CONF:?ARTICLE_CONF not set}
lock=${ARTICLE_LOCK:-$conf.lock}
tmpdir=${ARTICLE_TMP:-/tmp}

if [ "${REQUEST_METHOD:-GET}" != POST ]; then
    printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
    cat <<'HTML'
<!DOCTYPE html>
<h1>Let's generate you a cert so you don't have to use a password!</h1>
<form method="post">
  <keygen name="pubkey" challenge="randomchars">
  The username I want: <input type="text" name="username" value="Alice">
  <input type="submit" name="createcert" value="Generate">
</form>
HTML
    exit 0
fi

uniqpath=$(mktemp "$tmpdir/certreq.XXXXXX") || exit 1

# $_POST decoding and the SPKAC file, in one awk (the PHP does this in-process).
if ! LC_ALL=C awk -v out="$uniqpath.spkac" '
    function urldecode(s,    r, i, c) {
        gsub(/\+/, " ", s)
        r = ""
        for (i = 1; i <= length(s); i++) {
            c = substr(s, i, 1)
            if (c == "%" && (substr(s, i + 1, 2) in hex)) {
                r = r hex[substr(s, i + 1, 2)]; i += 2
            } else r = r c
        }
        return r
    }
    BEGIN {
        for (i = 0; i < 256; i++) {
            hex[sprintf("%02X", i)] = sprintf("%c", i)
            hex[sprintf("%02x", i)] = sprintf("%c", i)
        }
    }
    { body = body $0 }
    END {
        n = split(body, kv, "&")
        for (i = 1; i <= n; i++) {
            eq = index(kv[i], "=")
            if (eq == 0) continue
            f[urldecode(substr(kv[i], 1, eq - 1))] = urldecode(substr(kv[i], eq + 1))
        }
        username = f["username"]; key = f["pubkey"]
        if (username == "" || username ~ /[ \t\r\n\v\f]/) exit 1
        gsub(/[ \t\r\n\v\f]/, "", key)      # str_replace(" \t\n\r\0\x0B", "")
        sub(/^SPKAC=/, "", key)
        print "SPKAC=" key                    > out
        print "CN=" username                  > out
        print "0.OU=MyApp client certificate" > out
        print "organizationName=MyApp"        > out
        print "countryName=US"                > out
        print "stateOrProvinceName=CA"        > out
        print "localityName=Sacramento"       > out
    }'; then
    printf 'Status: 400 Bad Request\r\nContent-Type: text/plain\r\n\r\n'
    echo "Must not have whitespace in username or email!"
    rm -f "$uniqpath" "$uniqpath.spkac"
    exit 0
fi

if [ -n "${ARTICLE_AS_PUBLISHED:-}" ]; then
    openssl ca -config "$conf" -days 3650 -notext -batch \
        -spkac "$uniqpath.spkac" -out "$uniqpath.out" >"$uniqpath.log" 2>&1
    rc=$?
    [ -f "$uniqpath.out" ] || : >"$uniqpath.out"
    rc=0                                   # the PHP answers 200 whatever happened
else
    flock "$lock" openssl ca -config "$conf" -days 3650 -notext -batch \
        -spkac "$uniqpath.spkac" -out "$uniqpath.out" >"$uniqpath.log" 2>&1
    rc=$?
fi

if [ "$rc" -eq 0 ] && [ -f "$uniqpath.out" ]; then
    printf 'Content-Length: %s\r\nContent-Type: application/x-x509-user-cert\r\n\r\n' \
        "$(stat -c %s "$uniqpath.out")"
    cat "$uniqpath.out"
else
    printf 'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n'
    echo "openssl ca failed"
    cat "$uniqpath.log" >&2
fi
rm -f "$uniqpath" "$uniqpath.spkac" "$uniqpath.out" "$uniqpath.log"
