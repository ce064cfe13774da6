#!/bin/sh
# run-cluster.sh: a leader and a read replica on this machine, joined by a three-node NATS
# JetStream cluster, all on 127.0.0.1 (`make run-cluster`).
#
#   nats-server x 3    client ports EF_NATS_PORT, +1, +2 (default 14222..14224), routes
#                      +2000.., monitoring +4000..; stores in var-cluster/nats/nK
#   leader             nginx on EF_PORT (default 8080) in front of eventfold-command and
#                      eventfold-query, eventfold-tailer, eventfold-relay --sink nats;
#                      data in var-cluster/leader/data
#   replica            nginx on EF_REPLICA_PORT (default 8081) with eventfold-replica.conf
#                      (GETs to its own eventfold-query, POSTs proxied to the leader's
#                      nginx), eventfold-mirror, eventfold-tailer, eventfold-query;
#                      data in var-cluster/replica/data
#
# State lives in ./var-cluster of the directory it is started from (the build directory
# under `make run-cluster`); each program's stderr is in var-cluster/*/NAME.log. Ctrl-C
# (or SIGTERM) stops every process this script started, by PID: the nginx servers first,
# then the programs, then the NATS servers. Nothing else is touched.
#
# Environment: EF_BUILDDIR, EF_SRCDIR, EF_NGINX (as for run.sh), EF_NATS_SERVER (default
# nats-server on the PATH, else /usr/sbin/nats-server), EF_PORT, EF_REPLICA_PORT,
# EF_NATS_PORT, EF_WORKERS (default 2).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
src=${EF_SRCDIR:-$here}
build=${EF_BUILDDIR:-$(pwd)}
nginx=${EF_NGINX:-/usr/sbin/nginx}
nats=${EF_NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
port=${EF_PORT:-8080}
rport=${EF_REPLICA_PORT:-8081}
nport=${EF_NATS_PORT:-14222}
workers=${EF_WORKERS:-2}
var=$(pwd)/var-cluster

die() { echo "run-cluster.sh: $*" >&2; exit 1; }
. "$src/scripts/stack-lib.sh"

[ -x "$nginx" ] || die "nginx not found at $nginx (Debian: apt-get install nginx-light)"
[ -x "$nats" ] || die "nats-server not found at $nats (Debian: apt-get install nats-server)"
[ -r /etc/nginx/fastcgi_params ] || die "no /etc/nginx/fastcgi_params (it comes with nginx-common)"
for p in eventfold-command eventfold-query eventfold-tailer eventfold-relay eventfold-mirror eventfoldctl; do
    if [ ! -x "$build/$p" ]; then
        echo "run-cluster.sh: building $p" >&2
        make -C "$build" "$p" >&2 || die "cannot build $p in $build"
    fi
done

# Processes in start order; stopped in groups: nginx, then programs, then NATS.
nginx_pids=""
prog_pids=""
nats_pids=""

# stop STATUS: stops everything and exits with STATUS (0 for Ctrl-C or SIGTERM; a failure
# that exits the script keeps its status through the EXIT trap).
stop() {
    status=${1:-0}
    trap - INT TERM EXIT
    # The loop's sleep is a child too: it must not outlive the script.
    [ -z "${sleeper:-}" ] || kill "$sleeper" 2>/dev/null || true
    echo
    echo "run-cluster.sh: stopping"
    for group in "$nginx_pids" "$prog_pids" "$nats_pids"; do
        # shellcheck disable=SC2086
        stop_pids run-cluster.sh $group
    done
    # Reap them (all have exited): a zombie left to init would still hold its PID.
    wait
    echo "run-cluster.sh: stopped; the data stays in $var"
    exit "$status"
}
trap 'stop 0' INT TERM
trap 'stop $?' EXIT

# ---- NATS: three nodes with JetStream, routed to each other -------------------------------
urls=""
routes=""
for i in 1 2 3; do
    urls="$urls${urls:+,}nats://127.0.0.1:$((nport + i - 1))"
    routes="$routes${routes:+, }nats://127.0.0.1:$((nport + 2000 + i - 1))"
done
mkdir -p "$var/nats"
for i in 1 2 3; do
    d="$var/nats/n$i"
    mkdir -p "$d"
    cat > "$d/nats.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:$((nport + i - 1))
http: 127.0.0.1:$((nport + 4000 + i - 1))
jetstream { store_dir: "$d/store", max_memory_store: 64MB, max_file_store: 4GB }
cluster { name: eventfold-run, listen: 127.0.0.1:$((nport + 2000 + i - 1)), routes: [$routes] }
EOF
    "$nats" -c "$d/nats.conf" 2>>"$d/nats.log" >&2 &
    nats_pids="$nats_pids $!"
done

# ---- the two eventfold stacks -----------------------------------------------------------
# stack NAME PORT ROLE: config, nginx config and programs of one machine under var/NAME.
stack() {
    name=$1 sport=$2 role=$3
    d="$var/$name"
    mkdir -p "$d/data"
    cat > "$d/eventfold.conf" <<EOF
nats_url = $urls
nats_stream = EVENTFOLD
EOF
    snippet=eventfold.conf
    [ "$role" = leader ] || snippet=eventfold-replica.conf
    nginx_conf "$d" "$sport" 1 "$snippet" || die "cannot write the nginx configuration of $name"
    [ "$role" = leader ] ||
        echo "upstream eventfold_leader { server 127.0.0.1:$port; keepalive 16; }" >> "$d/nginx/eventfold-upstream.conf"
    rm -f "$d/command.sock" "$d/query.sock"
    c="--data $d/data --config $d/eventfold.conf"
    if [ "$role" = leader ]; then
        # shellcheck disable=SC2086
        "$build/eventfold-command" $c --listen "unix:$d/command.sock" --workers "$workers" 2>>"$d/command.log" &
        prog_pids="$prog_pids $!"
        # shellcheck disable=SC2086
        "$build/eventfold-relay" $c --sink nats 2>>"$d/relay.log" &
        prog_pids="$prog_pids $!"
    else
        # shellcheck disable=SC2086
        "$build/eventfold-mirror" $c 2>>"$d/mirror.log" &
        prog_pids="$prog_pids $!"
    fi
    # shellcheck disable=SC2086
    "$build/eventfold-tailer" $c 2>>"$d/tailer.log" &
    prog_pids="$prog_pids $!"
    # shellcheck disable=SC2086
    "$build/eventfold-query" $c --listen "unix:$d/query.sock" --workers "$workers" 2>>"$d/query.log" &
    prog_pids="$prog_pids $!"
    "$nginx" -p "$d/nginx" -c "$d/nginx/nginx.conf" -g 'daemon off;' 2>>"$d/nginx/error.log" &
    nginx_pids="$nginx_pids $!"
}

stack leader "$port" leader
stack replica "$rport" replica

# Ready when the leader's status lists its NATS relay (connected, its state written) and the
# replica's shows its replica block (the mirror has connected and written its state). A
# loaded machine may take a while: the three NATS nodes must elect a JetStream leader first.
deadline=$(($(date +%s) + 75))
until curl -fsS "http://127.0.0.1:$port/api/status" 2>/dev/null | grep -q '"sink":"nats"' &&
      curl -fsS "http://127.0.0.1:$rport/api/status" 2>/dev/null | grep -q '"replica"'; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
        echo "run-cluster.sh: not ready after 75 s; logs in $var/*/*.log and $var/nats/*/nats.log" >&2
        tail -n 5 "$var"/*/*.log "$var"/nats/*/nats.log >&2 || true
        exit 1
    fi
    sleep 0.1
done

i=1
for pid in $nats_pids; do
    echo "$pid" > "$var/nats/n$i/pid"
    i=$((i + 1))
done

L="http://127.0.0.1:$port"
R="http://127.0.0.1:$rport"
u="u-$$"
cat <<EOF

eventfold leader and read replica are running (state in $var, logs in $var/*/*.log):
  leader   $L   (eventfold-command, -query, -tailer, -relay --sink nats)
  replica  $R   (eventfold-mirror, -tailer, -query; POSTs proxied to the leader)
  NATS     $urls   (stream EVENTFOLD, 3 replicas)

Watch a write on the leader appear on the replica (H='Content-Type: application/json'):

  # 1. a command on the leader: note its Log-Position P
  curl -si $L/api/users -H "\$H" -d '{"user_id":"$u","name":"Ada"}'
  # 2. read it from the replica with Min-Position: P (waits until the replica has folded P)
  curl -si -H 'Min-Position: P' $R/api/users/$u
  # 3. a command sent to the replica's nginx goes to the leader (same Log-Position)
  curl -si $R/api/users/$u/deposits -H "\$H" -d '{"amount_cents":5000}'
  curl -si -H 'Min-Position: P' $R/api/users/$u
  # 4. how far behind the replica is, on both sides
  curl -s $R/api/status       # "replica": {"stream","lag_events"}
  curl -s $L/api/status       # "relays": [{"sink":"nats","position",...}]
  curl -s $R/metrics | grep -E 'eventfold_(mirror|read_model)_'
  # 5. the two logs are the same, line for line
  diff <($build/eventfoldctl --data $var/leader/data dump) <($build/eventfoldctl --data $var/replica/data dump) && echo same
  # 6. a NATS node can go away (the others keep the stream; the mirror reconnects)
  kill \$(cat $var/nats/n1/pid); sleep 3; curl -s $R/api/status   # still following

Ctrl-C stops everything.
EOF

while :; do
    for pid in $nginx_pids $prog_pids; do
        if ! alive "$pid"; then
            echo "run-cluster.sh: process $pid exited; see $var/*/*.log" >&2
            stop 1
        fi
    done
    sleep 1 &
    sleeper=$!
    wait $sleeper || true
done
