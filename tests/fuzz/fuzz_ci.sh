#!/bin/sh
# fuzz_ci: the short fuzzing run of `make check` (FUZZ_CI_SECONDS per harness, default 3):
# replays every regression input, then fuzzes each harness briefly. Exits 77 (skip) when
# clang with libFuzzer is not installed. See tests/fuzz/run.sh.
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/run.sh" -t "${FUZZ_CI_SECONDS:-3}"
