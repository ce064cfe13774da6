#!/bin/sh
# test-deb.sh: builds the eventfold .deb, installs it on this machine, runs the
# installed programs the way the systemd units would, smoke-tests them behind a
# private nginx that uses the installed nginx configuration, then purges the
# package and checks that nothing but the data directory is left.
#
#   packaging/test-deb.sh [TARBALL]       (make check-packages passes one)
#
# This machine has no running systemd, so the units are not started; instead
# the test reads them: ExecStart= and User= of each service, ListenStream=,
# SocketUser=, SocketGroup= and SocketMode= of each socket, and starts the
# ExecStart= command line as that user with the listening socket on fd 0
# (spawn-fcgi -n, as StandardInput=socket provides it), inside a mount-namespace
# sandbox that reproduces ProtectSystem=strict, ReadWritePaths=, PrivateTmp=,
# ProtectHome= and NoNewPrivileges= of the units. The sockets are made in
# a private directory instead of /run/eventfold, and the private nginx gets the
# installed configuration with that one path rewritten (after checking that it
# names the units' ListenStream= paths).
#
# Needs root, dpkg-buildpackage, apt-get, nginx, spawn-fcgi, curl, setpriv and unshare;
# exits 77 (skipped) without them. Refuses to run (exit 1) when eventfold is
# already installed or /var/lib/eventfold exists, as it would change them.
# Bounded: the build has EF_TEST_BUILD_TIMEOUT seconds (default 1200), every
# other step a few seconds. Everything it starts is stopped by PID, and the
# package, the data directory and the user it created are removed on exit.
# The package is built with EF_PKG_NOCHECK=1 (the unit and integration tests
# are `make check`'s job; set EF_PKG_NOCHECK=0 to run them in the build too).
set -eu

say() { echo "test-deb: $*"; }
die() { echo "test-deb: FAIL: $*" >&2; exit 1; }
skip() { echo "test-deb: SKIP: $*"; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root (installs a package)"
PATH="$PATH:/usr/sbin:/sbin"
for tool in dpkg-buildpackage apt-get dpkg-deb nginx spawn-fcgi curl setpriv unshare python3 timeout flock; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool not found"
done

# pkg_present: true if dpkg knows eventfold in any state but "not installed".
pkg_present() {
    case "$(dpkg-query -W -f='${Status}' eventfold 2>/dev/null || :)" in
        ''|*' not-installed') return 1 ;;
        *) return 0 ;;
    esac
}

srcdir=$(cd "$(dirname "$0")/.." && pwd)
tarball=${1:-}

# One run at a time on this machine: the package and /var/lib/eventfold are global.
lockdir=/run/lock
[ -d "$lockdir" ] && [ -w "$lockdir" ] || lockdir=/tmp
exec 9>"$lockdir/eventfold-test-deb.lock"
flock -w 5 9 || die "another test-deb.sh is running"

! pkg_present || die "package eventfold is already installed here; purge it first (apt-get purge eventfold)"
[ ! -e /var/lib/eventfold ] || die "/var/lib/eventfold exists; the test would write into it"
user_existed=no
getent passwd eventfold >/dev/null && user_existed=yes

T=$(mktemp -d /tmp/eventfold-test-deb.XXXXXX)
chmod 0755 "$T"     # nginx's workers (www-data) must reach the sockets in $T/run
pids=""         # every process started, nginx included: stopped by PID on exit
prog_pids=""    # the eventfold programs among them
installed=no

cleanup() {
    rc=$?
    trap - EXIT INT TERM
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || :; done
    for pid in $pids; do
        n=0
        while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.2; n=$((n + 1)); done
        kill -KILL "$pid" 2>/dev/null || :
    done
    if [ "$installed" = yes ]; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq eventfold >/dev/null 2>&1 || :
    fi
    rm -rf /var/lib/eventfold
    if [ "$user_existed" = no ] && getent passwd eventfold >/dev/null; then
        userdel eventfold 2>/dev/null || :
        getent group eventfold >/dev/null && groupdel eventfold 2>/dev/null || :
    fi
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        for f in "$T"/*.log; do
            [ -s "$f" ] || continue
            echo "----- $(basename "$f") (last lines)" >&2
            tail -n 30 "$f" >&2
        done
    fi
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build ------------------------------------------------------------------
say "building the .deb"
mkdir "$T/out"
EF_OUTDIR="$T/out" EF_PKG_NOCHECK=${EF_PKG_NOCHECK:-1} \
    timeout "${EF_TEST_BUILD_TIMEOUT:-1200}" \
    sh "$srcdir/packaging/build-packages.sh" --deb-only ${tarball:+"$tarball"} >"$T/build.log" 2>&1 \
    || die "package build failed (log above)"
deb=$(ls "$T"/out/eventfold_*.deb)
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed -e 's|^\./|/|' -e 's|/$||' | grep -v '^$' > "$T/contents"

# --- install ----------------------------------------------------------------
say "installing $(basename "$deb")"
installed=yes
DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q --no-install-recommends "$deb" \
    >"$T/apt-install.log" 2>&1 || die "apt-get install failed"

getent passwd eventfold >/dev/null || die "postinst did not create the user eventfold (sysusers)"
[ -d /var/lib/eventfold ] || die "postinst did not create /var/lib/eventfold (tmpfiles)"
[ "$(stat -c %U:%G:%a /var/lib/eventfold)" = eventfold:eventfold:750 ] \
    || die "/var/lib/eventfold is $(stat -c %U:%G:%a /var/lib/eventfold), want eventfold:eventfold:750"
for f in /usr/bin/eventfold-command /usr/bin/eventfold-query /usr/bin/eventfold-tailer /usr/bin/eventfoldctl \
         /etc/eventfold/eventfold.conf /etc/nginx/snippets/eventfold.conf /etc/nginx/conf.d/eventfold-upstream.conf \
         /usr/share/man/man5/eventfold.conf.5.gz /usr/share/man/man8/eventfoldctl.8.gz \
         /usr/share/doc/eventfold/api.md /usr/share/doc/eventfold/openapi.yaml; do
    [ -e "$f" ] || die "not installed: $f"
done
dpkg-query -W -f='${Conffiles}\n' eventfold | grep -q '/etc/eventfold/eventfold.conf' \
    || die "/etc/eventfold/eventfold.conf is not a conffile"
for v in command query tailer ctl; do
    b=/usr/bin/eventfold-$v; [ $v = ctl ] && b=/usr/bin/eventfoldctl
    "$b" --version >/dev/null 2>&1 || die "$b --version failed"
done

unitdir=
for d in /lib/systemd/system /usr/lib/systemd/system; do
    [ -f "$d/eventfold-command.service" ] && unitdir=$d && break
done
[ -n "$unitdir" ] || die "eventfold-command.service not installed"

# The installed units as systemd itself reads them (no running manager needed):
# no errors, and the hardening keeps every service's exposure at or below 3.0.
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify --man=no "$unitdir"/eventfold-*.socket "$unitdir"/eventfold-*.service \
        >"$T/units-verify.log" 2>&1 || die "systemd-analyze verify rejects the installed units"
    for svc in command query tailer; do
        systemd-analyze security --offline=yes --threshold=30 "$unitdir/eventfold-$svc.service" \
            >"$T/units-security.log" 2>&1 || die "eventfold-$svc.service: exposure above 3.0"
        say "eventfold-$svc.service: $(grep -o 'Overall exposure level.*' "$T/units-security.log")"
    done
fi

# unit_key UNIT KEY: the value of the (single) KEY= line of an installed unit.
unit_key() {
    v=$(sed -n "s/^$2=//p" "$unitdir/$1")
    [ -n "$v" ] && [ "$(printf '%s\n' "$v" | wc -l)" -eq 1 ] || die "$1: want exactly one $2= line"
    printf '%s\n' "$v"
}

# The units' sandbox, as far as it can be had without systemd: in a private
# mount namespace the root file system is read-only except ReadWritePaths=
# (ProtectSystem=strict), /tmp and /var/tmp are empty tmpfs (PrivateTmp=),
# /home and /root are empty and read-only (ProtectHome=), and the program runs
# as User=/Group= with no_new_privs and no capabilities (NoNewPrivileges=,
# CapabilityBoundingSet=). The seccomp filter and the other Protect*= options
# are not reproduced. Arguments: MODE RW-PATH USER GROUP COMMAND..., MODE "ns"
# in a fresh mount namespace, "plain" (only the user and privilege part) where
# this machine allows no mount namespaces.
SANDBOX='set -e
mode=$1 rw=$2 user=$3 group=$4; shift 4
if [ "$mode" = ns ]; then
    mount --bind "$rw" "$rw"
    mount -o remount,bind,ro /
    for d in /tmp /var/tmp; do mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$d"; done
    for d in /home /root; do if [ -d "$d" ]; then mount -t tmpfs -o ro,mode=0755 tmpfs "$d"; fi; done
fi
exec setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs \
    --bounding-set=-all --inh-caps=-all -- "$@"'
mkdir "$T/probe"
if unshare --mount --propagation private mount -t tmpfs tmpfs "$T/probe" 2>/dev/null; then
    # Absolute paths: spawn-fcgi execs its program with execv, without a PATH search.
    sandbox_mode=ns launch="$(command -v unshare) --mount --propagation private /bin/sh -c"
    say "programs run sandboxed as the units say (read-only /, private /tmp, no privileges)"
else
    sandbox_mode=plain launch="/bin/sh -c"
    say "no mount namespaces here: programs run without the units' file-system sandbox"
fi

# start_socket_service NAME: runs eventfold-NAME as eventfold-NAME.service would,
# with the socket of eventfold-NAME.socket (made in $T/run) on fd 0. spawn-fcgi
# makes the socket and execs the sandbox, which execs the program: one PID.
start_socket_service() {
    svc=eventfold-$1.service sock=eventfold-$1.socket
    listen=$(unit_key "$sock" ListenStream)
    [ "$listen" = "/run/eventfold/$1.sock" ] || die "$sock: ListenStream=$listen"
    [ "$(unit_key "$svc" StandardInput)" = socket ] || die "$svc: no StandardInput=socket"
    exec_start=$(unit_key "$svc" ExecStart)
    case "$exec_start" in /*) ;; *) die "$svc: ExecStart= with a prefix: $exec_start" ;; esac
    user=$(unit_key "$svc" User)
    group=$(unit_key "$svc" Group)
    rw=$(unit_key "$svc" ReadWritePaths)
    sock_user=$(unit_key "$sock" SocketUser)
    sock_group=$(unit_key "$sock" SocketGroup)
    sock_mode=$(unit_key "$sock" SocketMode)
    # shellcheck disable=SC2086  # $launch and ExecStart= are split into words (no quotes in them)
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        spawn-fcgi -n -s "$T/run/$1.sock" -U "$sock_user" -G "$sock_group" -M "$sock_mode" -- \
        $launch "$SANDBOX" sandbox "$sandbox_mode" "$rw" "$user" "$group" $exec_start \
        >"$T/$1.log" 2>&1 &
    pids="$pids $!" prog_pids="$prog_pids $!:$rw"
    say "started $svc (pid $!): $exec_start"
}

mkdir "$T/run"
start_socket_service command
start_socket_service query
svc=eventfold-tailer.service
exec_start=$(unit_key $svc ExecStart)
user=$(unit_key $svc User)
group=$(unit_key $svc Group)
rw=$(unit_key $svc ReadWritePaths)
# shellcheck disable=SC2086
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    $launch "$SANDBOX" sandbox "$sandbox_mode" "$rw" "$user" "$group" $exec_start \
    >"$T/tailer.log" 2>&1 &
pids="$pids $!" prog_pids="$prog_pids $!:$rw"
say "started $svc (pid $!): $exec_start"

# --- private nginx with the installed configuration ---------------------------
nginx_user=$(unit_key eventfold-command.socket SocketGroup)   # www-data: nginx's user and group
for f in conf.d/eventfold-upstream.conf snippets/eventfold.conf; do
    case $f in conf.d/*) grep -q 'unix:/run/eventfold/command.sock' "/etc/nginx/$f" \
        && grep -q 'unix:/run/eventfold/query.sock' "/etc/nginx/$f" \
        || die "/etc/nginx/$f does not name the units' sockets" ;; esac
    sed "s|/run/eventfold/|$T/run/|g" "/etc/nginx/$f" > "$T/$(basename "$f")"
done
cp /etc/nginx/fastcgi_params "$T/fastcgi_params"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir "$T/nginx-tmp"
cat > "$T/nginx.conf" <<NGINX
user $nginx_user;
worker_processes 1;
daemon off;
pid $T/nginx.pid;
error_log $T/nginx-error.log info;
events { worker_connections 64; }
http {
    access_log $T/nginx-access.log;
    client_body_temp_path $T/nginx-tmp/body;
    fastcgi_temp_path $T/nginx-tmp/fastcgi;
    proxy_temp_path $T/nginx-tmp/proxy;
    uwsgi_temp_path $T/nginx-tmp/uwsgi;
    scgi_temp_path $T/nginx-tmp/scgi;
    include $T/eventfold-upstream.conf;
    server {
        listen 127.0.0.1:$port;
        include $T/eventfold.conf;
    }
}
NGINX
nginx -t -p "$T" -c "$T/nginx.conf" >"$T/nginx-t.log" 2>&1 || die "nginx -t rejects the installed configuration"
nginx -p "$T" -c "$T/nginx.conf" >"$T/nginx.log" 2>&1 &
pids="$pids $!"
base="http://127.0.0.1:$port"

# get PATH [HEADER] / post PATH BODY: print the HTTP status (000 if there was no
# answer); the body is left in $T/body and the headers in $T/headers.
get() {
    curl -sS -m 15 -o "$T/body" -D "$T/headers" -w '%{http_code}' ${2:+-H "$2"} "$base$1" \
        2>>"$T/curl.log" || echo 000
}
post() {
    curl -sS -m 15 -o "$T/body" -D "$T/headers" -w '%{http_code}' \
        -H 'Content-Type: application/json' --data-binary "$2" "$base$1" 2>>"$T/curl.log" || echo 000
}
header() { sed -n "s/^$1: *//Ip" "$T/headers" | tr -d '\r' | head -n 1; }

# The programs start asynchronously: wait (bounded) until /metrics answers.
n=0
until [ "$(get /metrics)" = 200 ]; do
    n=$((n + 1))
    [ $n -lt 100 ] || die "GET /metrics did not answer 200 within 20 s"
    for pid in $pids; do kill -0 "$pid" 2>/dev/null || die "process $pid exited early"; done
    sleep 0.2
done
say "nginx on 127.0.0.1:$port answers"

# The programs really run sandboxed: as eventfold, without privileges, and (with
# mount namespaces) on a read-only root where only the unit's ReadWritePaths= is
# writable (eventfold-query: read/ only, the log and the write model read-only).
for entry in $prog_pids; do
    pid=${entry%%:*} rw=${entry#*:}
    [ "$(stat -c %U "/proc/$pid")" = eventfold ] || die "pid $pid does not run as eventfold"
    grep -q '^NoNewPrivs:[[:space:]]*1$' "/proc/$pid/status" || die "pid $pid: no_new_privs not set"
    grep -q '^CapBnd:[[:space:]]*0*$' "/proc/$pid/status" || die "pid $pid: capability bounding set not empty"
    if [ "$sandbox_mode" = ns ]; then
        awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo" | grep -q '^ro' || die "pid $pid: / is not read-only"
        awk -v p="$rw" '$5 == p { print $6 }' "/proc/$pid/mountinfo" | grep -q '^rw' \
            || die "pid $pid: $rw is not writable"
        [ "$rw" = /var/lib/eventfold ] || ! (: >"/proc/$pid/root/var/lib/eventfold/log/.probe") 2>/dev/null \
            || die "pid $pid: /var/lib/eventfold/log is writable, its unit says only $rw"
    fi
done

# --- smoke test: a command, a read-your-writes query, /metrics ----------------
uid="pkg-smoke-$$"
st=$(post /api/users "{\"user_id\": \"$uid\", \"name\": \"Package Smoke\"}")
[ "$st" = 201 ] || die "POST /api/users: $st $(cat "$T/body")"
pos=$(header Log-Position)
case "$pos" in ''|*[!0-9]*) die "POST /api/users: no Log-Position header" ;; esac
grep -q "\"$uid\"" "$T/body" || die "POST /api/users: body $(cat "$T/body")"
say "POST /api/users -> 201, Log-Position: $pos"

st=$(get "/api/users/$uid" "Min-Position: $pos")
[ "$st" = 200 ] || die "GET /api/users/$uid with Min-Position $pos: $st $(cat "$T/body")"
grep -q "\"user_id\": *\"$uid\"" "$T/body" || die "GET /api/users/$uid: body $(cat "$T/body")"
rpos=$(header Log-Position)
case "$rpos" in ''|*[!0-9]*) die "GET /api/users/$uid: no Log-Position header" ;; esac
[ "$rpos" -ge "$pos" ] || die "GET /api/users/$uid: Log-Position $rpos < Min-Position $pos"
say "GET /api/users/$uid (Min-Position: $pos) -> 200, Log-Position: $rpos"

st=$(get /metrics)
[ "$st" = 200 ] || die "GET /metrics: $st"
grep -q '^# TYPE ' "$T/body" || die "GET /metrics: no Prometheus # TYPE line"
say "GET /metrics -> 200 ($(grep -c '^# TYPE ' "$T/body") metric families)"

# eventfoldctl, as the operator runs it on the installed data directory.
setpriv --reuid=eventfold --regid=eventfold --init-groups -- \
    eventfoldctl --data /var/lib/eventfold verify >"$T/verify.log" 2>&1 \
    || die "eventfoldctl verify failed"

# --- stop as systemd would (SIGTERM), then purge ------------------------------
for pid in $pids; do kill -TERM "$pid" 2>/dev/null || :; done
for pid in $pids; do
    st=0
    timeout 30 sh -c "while kill -0 $pid 2>/dev/null; do sleep 0.1; done" || die "pid $pid ignored SIGTERM for 30 s"
    wait "$pid" || st=$?
    [ $st -eq 0 ] || die "pid $pid exited $st after SIGTERM (want 0)"
done
pids=""
say "every process stopped cleanly on SIGTERM"

DEBIAN_FRONTEND=noninteractive timeout 300 apt-get purge -y -q eventfold >"$T/apt-purge.log" 2>&1 \
    || die "apt-get purge failed"
installed=no
! pkg_present || die "eventfold still known to dpkg after purge"
# Every file of the package must be gone; of its directories, those that are
# still there must belong to another package or hold someone else's files.
left=""
while read -r f; do
    if [ -d "$f" ]; then     # also /lib and friends, symlinks on a merged-/usr system
        dpkg -S "$f" >/dev/null 2>&1 || [ -n "$(ls -A "$f/")" ] || left="$left $f"
    elif [ -e "$f" ] || [ -L "$f" ]; then
        left="$left $f"
    fi
done < "$T/contents"
# Beyond the package's own files: the enablement symlinks and state that
# deb-systemd-helper made in postinst must be gone too.
for f in /etc/eventfold /etc/nginx/snippets/eventfold.conf /etc/nginx/conf.d/eventfold-upstream.conf \
         /etc/systemd/system/*/eventfold-* /var/lib/systemd/deb-systemd-helper-enabled/eventfold-* \
         /var/lib/systemd/deb-systemd-helper-enabled/*/eventfold-*; do
    [ -e "$f" ] || [ -L "$f" ] && left="$left $f"
done
[ -z "$left" ] || die "left after purge:$left"
[ -d /var/lib/eventfold ] || die "purge removed the data directory /var/lib/eventfold (it must be kept)"
say "purged: nothing left but the data directory /var/lib/eventfold"
say "PASS"
