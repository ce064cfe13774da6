#!/bin/sh
# make bench: runs each benchmark section in turn and prints one small report.
# Knobs: EF_BENCH_N (size of the log benchmark, default 2000 single-writer appends),
#        EF_BENCH_ROUNDS (repetitions, medians reported, default 3),
#        EF_BENCH_SECONDS (cap per measurement, default 3),
#        EF_BENCH_DIR (file system to measure, default /tmp).
# Later sections (HTTP) are appended below as functions called at the end.
set -eu
: "${EF_BUILDDIR:=.}"

section() {
    printf '\n== %s ==\n' "$1"
}

bench_log() {
    section "event log: appends with fdatasync"
    "$EF_BUILDDIR/bench/bench_log"
}

printf 'eventfold benchmarks on %s (%s CPUs), %s\n' "$(uname -n)" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
bench_log
