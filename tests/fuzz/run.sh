#!/bin/sh
# run.sh: builds eventfold's libFuzzer harnesses with clang and runs each for a bounded time.
#
# Usage: tests/fuzz/run.sh [-t SECONDS] [-j JOBS] [NAME...]    (NAME: record recovery command event value)
#
#   -t SECONDS  fuzzing time per harness (default $FUZZ_SECONDS, else 60)
#   -j JOBS     parallel fuzzing processes per harness (libFuzzer -fork style is not used:
#               JOBS independent workers share the working corpus; default 1)
#
# Environment: EF_SRCDIR (source tree; default: two levels above this script), EF_BUILDDIR
# (a configured build tree, for config.h; default: the current directory), FUZZ_CC (clang),
# FUZZ_LIBS (link flags of the external libraries), FUZZ_OUT (work directory, default
# $EF_BUILDDIR/tests/fuzz/out).
#
# Each harness is compiled from the project's sources directly (not from the gcc-built
# convenience libraries) with -fsanitize=fuzzer,address,undefined. Then:
#  1. every file in tests/fuzz/regressions/NAME/ is replayed: all must pass;
#  2. libFuzzer runs for SECONDS on a working corpus seeded from tests/fuzz/corpus/NAME/
#     (new inputs go to the work directory, never into the source tree).
# A crash, leak, sanitizer report or timeout fails the run; the input is left in
# FUZZ_OUT/artifacts/NAME/ and its path printed: keep it in tests/fuzz/regressions/NAME/.
#
# Exit status: 0 all passed, 1 a harness failed, 77 clang (with libFuzzer) is not available
# (so `make check` skips instead of failing on a machine without it).
set -u

here=$(cd "$(dirname "$0")" && pwd)
SRC=${EF_SRCDIR:-$(cd "$here/../.." && pwd)}
BUILD=${EF_BUILDDIR:-$(pwd)}
CC=${FUZZ_CC:-clang}
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=1
OUT=${FUZZ_OUT:-$BUILD/tests/fuzz/out}
LIBS=${FUZZ_LIBS:-"-lyajl -lisal -llmdb -lxxhash -luuid -lm"}

while getopts t:j: opt; do
    case $opt in
    t) SECONDS_EACH=$OPTARG ;;
    j) JOBS=$OPTARG ;;
    *) echo "usage: $0 [-t SECONDS] [-j JOBS] [NAME...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- record recovery command event value

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "SKIP: $CC not found (Debian: apt-get install clang)"
    exit 77
fi
if [ ! -f "$BUILD/config.h" ]; then
    echo "run.sh: $BUILD/config.h not found: run from a configured build tree or set EF_BUILDDIR" >&2
    exit 1
fi
mkdir -p "$OUT/bin" || exit 1

# Probe: clang may be installed without its libFuzzer runtime (libclang-rt-*-dev).
probe=$OUT/bin/probe
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe.c"
if ! "$CC" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" >/dev/null 2>&1; then
    echo "SKIP: $CC cannot build libFuzzer binaries (Debian: libclang-rt-14-dev)"
    exit 77
fi

CFLAGS="-std=gnu17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
 -fno-sanitize-recover=undefined -pthread -Wall -Wextra -Wno-unused-parameter \
 -I$SRC/src -I$BUILD"

# The project sources each harness is built from: the module under test and the shared
# utilities it uses (not util/cli.c and util/config.c, which programs need, not modules).
UTIL="$SRC/src/util/xalloc.c $SRC/src/util/eflog.c $SRC/src/util/clock.c $SRC/src/util/sbuf.c $SRC/src/util/crc32c.c $SRC/src/util/falloc.c $SRC/src/util/fskind.c $SRC/src/util/durable.c $SRC/src/util/ef_error.c $SRC/src/util/path.c"
sources() {
    case $1 in
    record) echo "$SRC"/src/log/record.c "$UTIL" ;;
    recovery) echo "$SRC"/src/log/*.c "$UTIL" ;;
    command) echo "$SRC"/src/domain/command.c "$SRC"/src/domain/problem.c "$UTIL" ;;
    event) echo "$SRC"/src/readmodel/rmodel_event.c "$SRC"/src/domain/event.c "$UTIL" ;;
    value) echo "$SRC"/src/readmodel/rmodel_codec.c "$UTIL" ;;
    *) return 1 ;;
    esac
}

build() {
    name=$1
    srcs=$(sources "$name") || { echo "run.sh: unknown harness '$name'" >&2; return 1; }
    for f in $srcs; do
        [ -f "$f" ] || { echo "run.sh: $name: source $f missing" >&2; return 1; }
    done
    echo "run.sh: building fuzz_$name"
    # shellcheck disable=SC2086
    "$CC" $CFLAGS -o "$OUT/bin/fuzz_$name" "$here/fuzz_$name.c" $srcs $LIBS
}

# Prints the number of executions a libFuzzer log reports (0 when none).
executions() {
    sed -n 's/^Done \([0-9][0-9]*\) runs.*/\1/p' "$1" | awk '{s += $1} END {print s + 0}'
}

# The recovery harness writes and syncs a log directory per input: give it a private tmpfs
# under /tmp when we may mount one (root), which makes it ~50x faster than a disk.
FUZZ_TMP=$(mktemp -d /tmp/ef-fuzz-XXXXXX) || exit 1
mounted=0
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=256m,mode=0700 tmpfs "$FUZZ_TMP" 2>/dev/null; then
    mounted=1
fi
# shellcheck disable=SC2317  # called through the trap
cleanup() {
    [ "$mounted" -eq 0 ] || umount "$FUZZ_TMP" || umount -l "$FUZZ_TMP"
    rm -rf "$FUZZ_TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
export TMPDIR="$FUZZ_TMP"

total_execs=0
failed=0
for name in "$@"; do
    if ! build "$name"; then
        echo "FAIL: fuzz_$name does not build"
        failed=1
        continue
    fi
    bin=$OUT/bin/fuzz_$name
    art=$OUT/artifacts/$name/
    work=$OUT/corpus/$name
    mkdir -p "$art" "$work" || exit 1

    regs=$(find "$here/regressions/$name" -type f ! -name README ! -name '.*' 2>/dev/null | sort)
    if [ -n "$regs" ]; then
        n=$(echo "$regs" | wc -l)
        # shellcheck disable=SC2086
        if ! "$bin" -runs=1 -timeout=20 -rss_limit_mb=2048 $regs >"$OUT/$name-regressions.log" 2>&1; then
            echo "FAIL: fuzz_$name: a regression input fails again (log: $OUT/$name-regressions.log)"
            grep -E 'ERROR|property failed|Running:' "$OUT/$name-regressions.log" | tail -5
            failed=1
            continue
        fi
        echo "run.sh: fuzz_$name: $n regression inputs pass"
    fi

    echo "run.sh: fuzzing fuzz_$name for ${SECONDS_EACH}s ($JOBS job(s))"
    flog=$OUT/$name-fuzz.log
    rm -f "$flog" "$OUT/$name"-job*.log
    # A dictionary of the input's tokens, where the harness has one (tests/fuzz/NAME.dict).
    dict=""
    [ ! -f "$here/$name.dict" ] || dict="-dict=$here/$name.dict"
    pids=""
    j=1
    while [ "$j" -le "$JOBS" ]; do
        # shellcheck disable=SC2086
        "$bin" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=2048 -max_len=65536 \
            -print_final_stats=1 -artifact_prefix="$art" $dict "$work" "$here/corpus/$name" \
            >"$OUT/$name-job$j.log" 2>&1 &
        pids="$pids $!"
        j=$((j + 1))
    done
    rc=0
    for p in $pids; do
        wait "$p" || rc=1
    done
    cat "$OUT/$name"-job*.log >"$flog"
    execs=$(executions "$flog")
    total_execs=$((total_execs + execs))
    crashes=$(find "$art" -type f | wc -l)
    if [ "$rc" -ne 0 ]; then
        echo "FAIL: fuzz_$name: $execs executions, failure found (log: $flog)"
        grep -E 'ERROR:|property failed|SUMMARY|Test unit written' "$flog" | head -10
        failed=1
    else
        echo "run.sh: fuzz_$name: $execs executions, no failure; corpus $(find "$work" -type f | wc -l) inputs"
    fi
    [ "$crashes" -eq 0 ] || echo "run.sh: fuzz_$name: $crashes artifact(s) in $art"
done

echo "fuzz summary: harnesses=$# executions=$total_execs failed=$failed"
exit "$failed"
