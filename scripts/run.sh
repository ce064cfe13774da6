#!/bin/sh
# run.sh: a local eventfold behind a private nginx on 127.0.0.1:8080 (`make run`).
#
# State lives in ./var of the directory it is started from (the build directory under
# `make run`): var/data (log, write model, read model), var/nginx (config, pid, error log),
# var/*.sock and var/*.log (each program's stderr). Ctrl-C (or SIGTERM) stops every process
# this script started, by PID: nginx first, then the command and query masters (which finish
# their in-flight requests), then the tailer. Nothing else is touched.
#
# Environment: EF_BUILDDIR (programs; default: the current directory), EF_SRCDIR (the
# source tree, for conf/nginx; default: this script's parent), EF_NGINX (default
# /usr/sbin/nginx), EF_PORT (default 8080), EF_WORKERS (default 2).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
src=${EF_SRCDIR:-$here}
build=${EF_BUILDDIR:-$(pwd)}
nginx=${EF_NGINX:-/usr/sbin/nginx}
port=${EF_PORT:-8080}
workers=${EF_WORKERS:-2}
var=$(pwd)/var

die() { echo "run.sh: $*" >&2; exit 1; }
. "$src/scripts/stack-lib.sh"

[ -x "$nginx" ] || die "nginx not found at $nginx (Debian: apt-get install nginx-light)"
for p in eventfold-command eventfold-query eventfold-tailer eventfoldctl; do
    if [ ! -x "$build/$p" ]; then
        echo "run.sh: building $p" >&2
        make -C "$build" "$p" >&2 || die "cannot build $p in $build"
    fi
done

mkdir -p "$var/data"
pids=""

# stop STATUS: stops everything and exits with STATUS (0 for Ctrl-C or SIGTERM; a failure
# that exits the script keeps its status through the EXIT trap).
stop() {
    status=${1:-0}
    trap - INT TERM EXIT
    # The loop's sleep is a child too: it must not outlive the script.
    [ -z "${sleeper:-}" ] || kill "$sleeper" 2>/dev/null || true
    echo
    echo "run.sh: stopping"
    # nginx first so no new request arrives, then the programs (SIGTERM: finish in-flight
    # requests, acknowledged data is already durable), waiting for each by PID.
    # shellcheck disable=SC2086
    stop_pids run.sh $pids
    # Reap them (all have exited): a zombie left to init would still hold its PID.
    wait
    rm -f "$var/command.sock" "$var/query.sock"
    echo "run.sh: stopped; the data stays in $var/data"
    exit "$status"
}
trap 'stop 0' INT TERM
trap 'stop $?' EXIT

# nginx: the project's own snippets with the sockets moved into ./var.
nginx_conf "$var" "$port" 2 eventfold.conf || die "cannot write the nginx configuration"

for s in command query; do
    [ -S "$var/$s.sock" ] && rm -f "$var/$s.sock"
done
"$build/eventfold-command" --data "$var/data" --listen "unix:$var/command.sock" --workers "$workers" \
    2>>"$var/command.log" &
pids="$pids $!"
"$build/eventfold-query" --data "$var/data" --listen "unix:$var/query.sock" --workers "$workers" \
    2>>"$var/query.log" &
pids="$pids $!"
"$build/eventfold-tailer" --data "$var/data" 2>>"$var/tailer.log" &
pids="$pids $!"
"$nginx" -p "$var/nginx" -c "$var/nginx/nginx.conf" -g 'daemon off;' 2>>"$var/nginx/error.log" &
pids="$! $pids"

# Ready when GET /api/status answers through nginx (a busy machine may take a while).
deadline=$(($(date +%s) + 60))
until curl -fsS -o /dev/null "http://127.0.0.1:$port/api/status" 2>/dev/null; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
        echo "run.sh: not ready after 60 s; logs in $var/*.log and $var/nginx/error.log" >&2
        tail -n 5 "$var"/*.log "$var/nginx/error.log" >&2 || true
        exit 1
    fi
    sleep 0.1
done

u="u-$$"
o="o-$$"
api="http://127.0.0.1:$port/api"
J="-H 'Content-Type: application/json'"
cat <<EOF

eventfold is running: http://127.0.0.1:$port (data in $var/data, logs in $var/*.log)
Walk through an order's life (every answer carries Log-Position: the event's place in the log):

  # 1. register a user, put money in the wallet
  curl -si $api/users $J -d '{"user_id":"$u","name":"Ada","email":"ada@example.com"}'
  curl -si $api/users/$u/deposits $J -d '{"amount_cents":5000}'
  # 2. add an item to the catalogue and stock it
  curl -si $api/items $J -d '{"item_id":"mug","name":"Mug","category":"kitchen","price_cents":1250}'
  curl -si $api/items/mug/restock $J -d '{"quantity":10}'
  # 3. order two mugs (reserves the stock), pay (debits the wallet), ship, deliver
  curl -si $api/orders $J -d '{"order_id":"$o","user_id":"$u","items":[{"item_id":"mug","quantity":2}]}'
  curl -si $api/orders/$o/pay $J -d '{}'
  curl -si $api/orders/$o/ship $J -d '{}'
  curl -si $api/orders/$o/deliver $J -d '{}'
  # 4. read it back with Min-Position = the Log-Position the deliver answer carried (8 on a
  #    fresh ./var): the read model answers only once it has folded that far, so never stale
  curl -si -H 'Min-Position: 8' $api/orders/$o
  curl -s "$api/orders/$o?as_of=5"        # as it stood after log position 5 (just created)
  curl -s $api/orders/$o/events           # its history
  # 5. the read models: user summary, their orders, the item, daily stats, the log itself
  curl -s $api/users/$u
  curl -s "$api/users/$u/orders?limit=10"
  curl -s $api/items/mug
  curl -s "$api/stats/daily?from=$(date -u +%Y-%m-%d)&to=$(date -u +%Y-%m-%d)"
  curl -s "$api/events?after=0&limit=10"
  curl -s -H 'Prefer: wait=10' "$api/events?after=8"   # long-poll: waits for the next event
  curl -s $api/status
  curl -s http://127.0.0.1:$port/metrics
  # operator tool on the same data
  $build/eventfoldctl --data $var/data verify
  $build/eventfoldctl --data $var/data dump --limit 5

Ctrl-C stops everything.
EOF

# Wait until interrupted, or until one of the processes dies (then stop the rest).
while :; do
    for pid in $pids; do
        if ! alive "$pid"; then
            echo "run.sh: process $pid exited; see $var/*.log" >&2
            stop 1
        fi
    done
    # `wait` returns as soon as a signal arrives, so Ctrl-C is handled at once rather than
    # after the sleep (the shell defers traps until a foreground command finishes).
    sleep 1 &
    sleeper=$!
    wait $sleeper || true
done
