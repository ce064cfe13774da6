#!/bin/sh
# make bench: runs every benchmark section in one run, then writes bench/report.md (table)
# and bench/report.png (throughput and latency against connections, drawn by gnuplot).
#
# Sections (each writes bench/out/SECTION.txt, its human-readable output, and
# bench/out/SECTION.kv, its results as key=value lines; bench/report.py assembles them):
#   log     bench/bench_log: log_append single writer and 16-process group commit, beside
#           the raw pwrite+fdatasync ceilings without and with grouping (16 records/fdatasync)
#   fold    bench/bench_fold: folding rate, snapshot time/size, rebuild from scratch and from
#           snapshot, beside a log scan (also with parsing) and a raw sequential write of the
#           snapshot's size
#   fold_orders  bench/bench_fold with EF_BENCH_FOLD_MIX=orders: rebuild from scratch of a
#           log of OrderCreated events only, beside its scan and parse ceilings
#   wsnap   bench/bench_wsnap: the write model's start: full replay of the log beside
#           restoring a write-model snapshot taken at 90% and replaying the rest
#   tailer  bench/tailer_rss.py: the real eventfold-tailer's peak RSS at two log sizes
#   kafka   bench/bench_kafka: eventfold-relay --sink kafka from a log into librdkafka's mock
#           cluster, beside a plain producer loop of the same messages
#   http    bench/http_bench.py: wrk through a private nginx at 1/16/64 connections against
#           CreateOrder and the GET queries, beside nginx static file and bench/fcgi_trivial;
#           read-your-writes delay under load; peak RSS of workers and tailer at the end
#   mirror  bench/mirror_bench.py: eventfold-mirror's catch-up from a 3-node JetStream cluster
#           beside a plain consumer (bench/bench_consume) and the log's group commit;
#           replication lag (leader answer -> replica read model) at about 2000 commands/s,
#           with 3 NATS nodes and with the stream's leader node killed
#   pg      bench/pg_bench.py: PostgreSQL's own create-order transaction (bench/pg_create_order.sql)
#           with pgbench at 64 clients, against a private cluster the section starts in a
#           temporary directory (unix socket only; as root, the server runs as nobody) and
#           stops by its PID; skipped with a message where PostgreSQL is not installed
#   ryw     bench/ryw_bench.py: read-your-writes delay (command answered -> Min-Position query
#           answered) at about 500 commands/s, without and with 16 connections of GET load;
#           p50/p99/max, 503s, and a plain GET by the same client as the floor
#   snapshot  bench/snapshot_pause.py: read-your-writes while the tailer snapshots a read
#           model of about 1 GB (a log of EF_BENCH_SNAPSHOT_EVENTS OrderCreated events), against
#           the samples between snapshots
#   parked  bench/parked_bench.py: plain-query p50/p99 at 64 connections with no request
#           waiting and with EF_BENCH_PARKED parked Min-Position waits, memory per parked
#           wait, time from a publish to the answers of parked requests
# Any section failing, or any figure missing from its output, fails `make bench` (exit 1).
# EF_BENCH_SECTIONS="pg ryw" runs only the sections named (no report is written then).
#
# Knobs (environment or `make bench VAR=value`):
#   EF_BENCH_QUICK=1        a quick look (about 1 min): shorter runs, smaller logs.
#                           EF_BENCH_SIZE=small means the same. The knobs below override it.
#   EF_BENCH_HTTP_SECONDS   length of each wrk run (default 5; quick 2)
#   EF_BENCH_WORKERS        workers per program, also for the trivial responder (default 4)
#   EF_BENCH_RYW_SAMPLES    read-your-writes samples (default 1000; quick 200)
#   EF_BENCH_FOLD_EVENTS    events in the folding benchmark's log (default 1000000; quick 100000)
#   EF_BENCH_FOLD_ORDERS_EVENTS  events in the all-OrderCreated log (default 450000; quick 100000)
#   EF_BENCH_FOLD_REBUILDS  rebuilds from scratch in each fold section, the median judged (default 3)
#   EF_BENCH_WSNAP_EVENTS   events in the write-model start benchmark (default 200000; quick 50000)
#   EF_BENCH_KAFKA_EVENTS   events relayed to Kafka (default 1000000; quick 100000)
#   EF_BENCH_TAILER_SIZES   the two log sizes for the tailer's RSS ("100000 1000000";
#                           quick "20000 100000")
#   EF_BENCH_N              single-writer appends of the log benchmark (default 2000; quick 500)
#   EF_BENCH_ROUNDS         log benchmark repetitions, medians reported (default 3; quick 1)
#   EF_BENCH_LOG_SECONDS    cap per log measurement (default 3)
#   EF_BENCH_DIR            file system for the log and tailer benchmarks (default /tmp)
#   EF_BENCH_MIRROR_EVENTS  events of the mirror's catch-up (default 100000; quick 20000)
#   EF_BENCH_MIRROR_RATE    commands/s of the replication-lag load (default 2000)
#   EF_BENCH_MIRROR_SAMPLES replication-lag samples per case (default 500; quick 150)
#   EF_BENCH_PARKED         parked waits in the parked section (default 5000; quick 2000)
#   EF_BENCH_RELAY_EVENTS   events the relay benchmark publishes (default 1000000; quick 100000)
#   EF_BENCH_PG_CLIENTS     pgbench clients of the PostgreSQL peer (default 64)
#   EF_BENCH_PG_USER        the user PostgreSQL runs as when the bench runs as root (nobody)
#   EF_BENCH_RYW_RATE       commands/s of the read-your-writes section (default 500)
#   EF_BENCH_RYW_GET_CONNS  connections of its GET load (default 16)
#   EF_BENCH_RYW_ROUNDS     its rounds, each case once per round (default 2)
#   EF_BENCH_SNAPSHOT_EVENTS  events behind the snapshot section's read model (default 3800000,
#                           about 1 GB of model; quick 200000)
# Set by the Makefile: EF_BUILDDIR, EF_SRCDIR, EF_NGINX, PYTHON3, GNUPLOT.
set -eu
: "${EF_BUILDDIR:=.}"
: "${EF_SRCDIR:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${PYTHON3:=python3}"
: "${GNUPLOT:=gnuplot}"
export EF_BUILDDIR EF_SRCDIR

quick=0
case "${EF_BENCH_QUICK:-0}/${EF_BENCH_SIZE:-}" in
    1/* | yes/* | */small) quick=1 ;;
esac
if [ "$quick" = 1 ]; then
    : "${EF_BENCH_HTTP_SECONDS:=2}" "${EF_BENCH_RYW_SAMPLES:=200}" "${EF_BENCH_FOLD_EVENTS:=100000}"
    : "${EF_BENCH_TAILER_SIZES:=20000 100000}" "${EF_BENCH_N:=500}" "${EF_BENCH_ROUNDS:=1}"
    : "${EF_BENCH_WSNAP_EVENTS:=50000}" "${EF_BENCH_KAFKA_EVENTS:=100000}" "${EF_BENCH_PARKED:=2000}" "${EF_BENCH_FOLD_ORDERS_EVENTS:=100000}"
    : "${EF_BENCH_SNAPSHOT_EVENTS:=200000}"
fi
: "${EF_BENCH_SNAPSHOT_EVENTS:=3800000}"
: "${EF_BENCH_PARKED:=5000}"
: "${EF_BENCH_HTTP_SECONDS:=5}" "${EF_BENCH_RYW_SAMPLES:=1000}" "${EF_BENCH_FOLD_EVENTS:=1000000}"
: "${EF_BENCH_TAILER_SIZES:=100000 1000000}" "${EF_BENCH_N:=2000}" "${EF_BENCH_ROUNDS:=3}"
: "${EF_BENCH_WSNAP_EVENTS:=200000}" "${EF_BENCH_KAFKA_EVENTS:=1000000}" "${EF_BENCH_FOLD_ORDERS_EVENTS:=450000}"
: "${EF_BENCH_LOG_SECONDS:=3}" "${EF_BENCH_WORKERS:=4}"
export EF_BENCH_RYW_SAMPLES EF_BENCH_FOLD_EVENTS EF_BENCH_TAILER_SIZES EF_BENCH_N EF_BENCH_ROUNDS
export EF_BENCH_WORKERS EF_BENCH_WSNAP_EVENTS EF_BENCH_KAFKA_EVENTS

out="$EF_BUILDDIR/bench/out"
rm -rf "$out"
mkdir -p "$out"
rm -f "$EF_BUILDDIR/bench/report.md" "$EF_BUILDDIR/bench/report.png"

fail() {
    printf '\nmake bench: FAILED: %s\n' "$*" >&2
    exit 1
}

# run_section NAME COMMAND...: runs the command with its output shown and kept in
# out/NAME.txt; its key=value lines (words of the form key=value) go to out/NAME.kv.
run_section() {
    name=$1
    shift
    if [ -n "${EF_BENCH_SECTIONS:-}" ]; then
        case " $EF_BENCH_SECTIONS " in
            *" $name "*) ;;
            *) return 0 ;;
        esac
    fi
    printf '\n== %s ==\n' "$name"
    start=$(date +%s)
    rc_file="$out/$name.rc"
    # (set -e would end the group at a failing command, before its status is saved.)
    { st=0; "$@" 2>&1 || st=$?; echo "$st" >"$rc_file"; } | tee "$out/$name.txt"
    rc=$(cat "$rc_file" 2>/dev/null || echo "unknown")
    [ "$rc" = 0 ] || fail "section '$name' exited with status $rc (output in $out/$name.txt)"
    if [ ! -s "$out/$name.kv" ]; then
        tr ' ' '\n' <"$out/$name.txt" | grep -E '^[a-z][a-z0-9_]*=[^=]*$' >"$out/$name.kv" ||
            fail "section '$name' printed no results"
    fi
    echo "section_${name}_seconds=$(($(date +%s) - start))" >>"$out/meta.kv"
}

t0=$(date +%s)
{
    echo "host=$(uname -n)"
    echo "cpus=$(nproc)"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "quick=$quick"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
    echo "commit=$(git -C "$EF_SRCDIR" rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$out/meta.kv"
printf 'eventfold benchmarks on %s (%s CPUs), %s%s\n' "$(uname -n)" "$(nproc)" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$([ "$quick" = 1 ] && echo ', quick sizes')"

run_section log env EF_BENCH_SECONDS="$EF_BENCH_LOG_SECONDS" "$EF_BUILDDIR/bench/bench_log"
run_section fold "$EF_BUILDDIR/bench/bench_fold"
run_section fold_orders env EF_BENCH_FOLD_MIX=orders EF_BENCH_FOLD_EVENTS="$EF_BENCH_FOLD_ORDERS_EVENTS" \
    "$EF_BUILDDIR/bench/bench_fold"
run_section wsnap "$EF_BUILDDIR/bench/bench_wsnap"
run_section kafka "$EF_BUILDDIR/bench/bench_kafka"
run_section tailer "$PYTHON3" "$EF_SRCDIR/bench/tailer_rss.py"
run_section http env EF_BENCH_SECONDS="$EF_BENCH_HTTP_SECONDS" EF_BENCH_OUT="$out/http.kv" \
    "$PYTHON3" "$EF_SRCDIR/bench/http_bench.py"
# The PostgreSQL peer right after the HTTP section, whose CreateOrder figure it stands beside.
run_section pg env EF_BENCH_SECONDS="$EF_BENCH_HTTP_SECONDS" EF_BENCH_OUT="$out/pg.kv" \
    "$PYTHON3" "$EF_SRCDIR/bench/pg_bench.py"
run_section ryw env EF_BENCH_OUT="$out/ryw.kv" "$PYTHON3" "$EF_SRCDIR/bench/ryw_bench.py"
run_section mirror env EF_BENCH_QUICK="$quick" EF_BENCH_OUT="$out/mirror.kv" \
    "$PYTHON3" "$EF_SRCDIR/bench/mirror_bench.py"
run_section parked env EF_BENCH_SECONDS="$EF_BENCH_HTTP_SECONDS" EF_BENCH_OUT="$out/parked.kv" \
    EF_BENCH_PARKED="$EF_BENCH_PARKED" "$PYTHON3" "$EF_SRCDIR/bench/parked_bench.py"
run_section relay "$PYTHON3" "$EF_SRCDIR/bench/relay_bench.py"
run_section snapshot env EF_BENCH_SNAPSHOT_EVENTS="$EF_BENCH_SNAPSHOT_EVENTS" \
    "$PYTHON3" "$EF_SRCDIR/bench/snapshot_pause.py"

{
    echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
    echo "wall_seconds=$(($(date +%s) - t0))"
} >>"$out/meta.kv"

if [ -n "${EF_BENCH_SECTIONS:-}" ]; then
    printf '\nEF_BENCH_SECTIONS="%s": no report (it needs every section); results in %s\n' \
        "$EF_BENCH_SECTIONS" "$out"
    exit 0
fi
printf '\n== report ==\n'
"$PYTHON3" "$EF_SRCDIR/bench/report.py" --out "$out" --md "$EF_BUILDDIR/bench/report.md" \
    --png "$EF_BUILDDIR/bench/report.png" --gnuplot "$GNUPLOT" || fail "bench/report.py"
printf '\nwrote %s and %s in %d s\n' "$EF_BUILDDIR/bench/report.md" "$EF_BUILDDIR/bench/report.png" \
    "$(($(date +%s) - t0))"
