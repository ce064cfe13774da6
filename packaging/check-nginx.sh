#!/bin/sh
# check-nginx.sh (make check): what the packages expose and how (API.md section 8).
#  - conf/nginx/eventfold.conf answers /metrics to loopback clients only (allow
#    127.0.0.1 and ::1, deny all), and nginx -t accepts both halves of the
#    configuration included as the packages document it;
#  - no package drops the API into a server the administrator did not choose (the
#    RPM spec and the Debian packaging never install into nginx's default.d);
#  - the systemd units bound memory and tasks, wait longer than the programs' own
#    grace period before killing, and give eventfold-query a read-only data
#    directory except read/.
# That a non-loopback client is refused is tested through HTTP by
# tests/integration/test_exposure.py (a client bound to 127.0.0.2).
set -eu

src=${EF_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${EF_BUILDDIR:-.}
nginx=${EF_NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

T=$(mktemp -d /tmp/ef-check-nginx.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

snippet="$src/conf/nginx/eventfold.conf"
# The body of `location = /metrics { ... }`, comments dropped.
sed -n '/^location = \/metrics {/,/^}/p' "$snippet" | sed 's/#.*//' > "$T/metrics.block"
[ -s "$T/metrics.block" ] || bad "no 'location = /metrics' block in $snippet"
for d in 'allow 127.0.0.1;' 'allow ::1;' 'deny all;'; do
    grep -q "^ *$d *\$" "$T/metrics.block" || bad "/metrics lacks '$d'"
done
# deny all must come after the allows (nginx applies the first match).
last_allow=$(grep -n '^ *allow ' "$T/metrics.block" | tail -1 | cut -d: -f1)
deny=$(grep -n '^ *deny all;' "$T/metrics.block" | cut -d: -f1)
[ -n "$last_allow" ] && [ -n "$deny" ] && [ "$deny" -gt "$last_allow" ] || bad "'deny all' is not after the allows"

if [ -x "$nginx" ]; then
    params=/etc/nginx/fastcgi_params
    [ -f "$params" ] || params="$(dirname "$(dirname "$nginx")")/etc/nginx/fastcgi_params"
    cp "$params" "$T/fastcgi_params"
    cp "$src/conf/nginx/eventfold-upstream.conf" "$T/"
    cp "$snippet" "$T/eventfold.conf"
    mkdir "$T/tmp"
    cat > "$T/nginx.conf" <<CONF
error_log $T/error.log;
pid $T/nginx.pid;
events { worker_connections 64; }
http {
    client_body_temp_path $T/tmp/body;
    fastcgi_temp_path $T/tmp/fastcgi;
    proxy_temp_path $T/tmp/proxy;
    uwsgi_temp_path $T/tmp/uwsgi;
    scgi_temp_path $T/tmp/scgi;
    include $T/eventfold-upstream.conf;
    server {
        listen 127.0.0.1:1;
        include $T/eventfold.conf;
    }
}
CONF
    if ! "$nginx" -t -q -p "$T" -c "$T/nginx.conf" -e "$T/error.log" >"$T/t.log" 2>&1; then
        bad "nginx -t refuses the configuration:"; cat "$T/t.log" "$T/error.log" 2>/dev/null || :
    fi
else
    echo "note: no nginx at $nginx: nginx -t skipped"
fi

grep -n 'default\.d' "$src/packaging/rpm/eventfold.spec" | grep -v '^[0-9]*: *#' > "$T/rpm" || :
[ ! -s "$T/rpm" ] || { bad "the RPM spec uses nginx's default.d:"; cat "$T/rpm"; }
if grep -rn 'default\.d' "$src/packaging/debian" "$src/conf/Makefile.inc" | grep -v ':[0-9]*: *#' > "$T/deb"; then
    bad "the Debian packaging or conf/Makefile.inc uses nginx's default.d:"; cat "$T/deb"
fi

grace=$(sed -n 's/^#define SRV_DEFAULT_GRACE_SECONDS \([0-9]*\).*/\1/p' "$src/src/server/server_int.h")
margin=$(sed -n 's/^#define KILL_MARGIN_S \([0-9]*\).*/\1/p' "$src/src/server/master.c")
[ -n "$grace" ] && [ -n "$margin" ] || bad "cannot find the grace period in src/server"
for u in command query tailer; do
    f="$src/packaging/systemd/eventfold-$u.service.in"
    for k in MemoryMax TasksMax TimeoutStopSec; do
        grep -q "^$k=" "$f" || bad "$f: no $k="
    done
    stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s*$/\1/p' "$f")
    if [ -n "$grace" ] && [ -n "$margin" ] && [ -n "$stop" ] && [ "$stop" -le $((grace + margin)) ]; then
        bad "$f: TimeoutStopSec=$stop is not longer than the grace period plus margin ($grace + $margin s)"
    fi
done
q="$src/packaging/systemd/eventfold-query.service.in"
# ProtectSystem=strict (hardening.inc) makes everything read-only but ReadWritePaths=:
# for eventfold-query that is read/ alone, never the whole data directory.
grep -q '^ProtectSystem=strict$' "$src/packaging/systemd/hardening.inc" || bad "hardening.inc: no ProtectSystem=strict"
! grep -q '^ReadWritePaths=' "$src/packaging/systemd/hardening.inc" || bad "hardening.inc: a ReadWritePaths= for every unit"
[ "$(grep -c '^ReadWritePaths=' "$q")" = 1 ] && grep -q '^ReadWritePaths=/var/lib/eventfold/read$' "$q" ||
    bad "$q: want exactly ReadWritePaths=/var/lib/eventfold/read"
grep -q '^d /var/lib/eventfold/read ' "$src/packaging/tmpfiles/eventfold.conf" ||
    bad "tmpfiles does not create /var/lib/eventfold/read (eventfold-query's ReadWritePaths)"

[ $fail -eq 0 ] && echo "PASS: /metrics loopback-only, nginx -t clean, no default.d, units bounded"
exit $fail
