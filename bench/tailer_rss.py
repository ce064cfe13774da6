#!/usr/bin/env python3
"""tailer_rss: the real eventfold-tailer's peak RSS at two log sizes (is it flat?).

For each size N in EF_BENCH_TAILER_SIZES (default "100000 1000000"), builds a log of N events
with bench/bench_fold (EF_BENCH_FOLD_BUILD_ONLY: the same mix of users, items and orders as the
folding benchmark) in a fresh data directory, starts the real eventfold-tailer on it from an
empty read model, waits until `eventfoldctl status` says the read model reached the log head,
then reads VmHWM (peak RSS) and RssAnon from /proc/PID/status while it still runs, and stops it
with SIGTERM (it must exit 0). Writes key=value lines to stdout:
  tailer_events_<i>=N tailer_vmhwm_kib_<i>=K tailer_rss_anon_kib_<i>=K tailer_fold_seconds_<i>=S
for i = 1, 2, and tailer_rss_growth = VmHWM(large) / VmHWM(small).
Environment: EF_BUILDDIR (build tree), EF_BENCH_DIR (parent of the temporary directory, /tmp).
Exits non-zero, naming the cause, if anything fails.
"""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
import eftest  # noqa: E402

SIZES = [int(x) for x in os.environ.get("EF_BENCH_TAILER_SIZES", "100000 1000000").split()]
TIMEOUT = 300  # per size, for the fold


def die(msg):
    print("tailer_rss: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def program(name):
    try:
        return eftest.binary(name)
    except eftest.TestFailure as e:
        die(str(e))


def proc_status(pid):
    """VmHWM and RssAnon of pid in KiB, from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "RssAnon"):
                out[k] = int(v.split()[0])
    return out


def read_model_status(data):
    p = subprocess.run([program("eventfoldctl"), "--data", data, "status"], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        return None
    try:
        st = json.loads(p.stdout)
        return int(st["read_model"]["position"]), int(st["log"]["head_position"])
    except (ValueError, KeyError, TypeError):
        die("eventfoldctl status: unexpected output %r" % p.stdout[:300])


def measure(parent, n):
    data = os.path.join(parent, "data-%d" % n)
    env = dict(os.environ, EF_BENCH_FOLD_EVENTS=str(n), EF_BENCH_FOLD_BUILD_ONLY=data)
    p = subprocess.run([program("bench_fold")], env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        die("building a log of %d events failed: %s" % (n, p.stderr.strip()[-500:]))
    logpath = os.path.join(parent, "tailer-%d.log" % n)
    t0 = time.monotonic()
    tailer = eftest.spawn([program("eventfold-tailer"), "--data", data], logpath)
    try:
        while True:
            if tailer.poll() is not None:
                die("eventfold-tailer exited with %s while folding %d events (log %s)"
                    % (tailer.returncode, n, logpath))
            st = read_model_status(data)
            if st and st[1] >= n and st[0] >= st[1]:
                break
            if time.monotonic() - t0 > TIMEOUT:
                die("eventfold-tailer did not catch up with %d events in %d s (at %s)" % (n, TIMEOUT, st))
            time.sleep(0.1)
        secs = time.monotonic() - t0
        mem = proc_status(tailer.pid)
    finally:
        if tailer.poll() is None and eftest.stop(tailer, signal.SIGTERM, timeout=30) == -signal.SIGKILL:
            die("eventfold-tailer did not stop within 30 s of SIGTERM")
    if tailer.returncode != 0:
        die("eventfold-tailer exited %d after SIGTERM" % tailer.returncode)
    eftest.rmtree(data)
    return mem, secs


def main():
    if len(SIZES) != 2 or SIZES[0] >= SIZES[1]:
        die("EF_BENCH_TAILER_SIZES must be two sizes, smaller first: %r" % SIZES)
    parent = eftest.tmpdir("bench-tailer", os.environ.get("EF_BENCH_DIR"))
    hwm = []
    for i, n in enumerate(SIZES, 1):
        mem, secs = measure(parent, n)
        hwm.append(mem["VmHWM"])
        print("tailer_events_%d=%d" % (i, n))
        print("tailer_vmhwm_kib_%d=%d" % (i, mem["VmHWM"]))
        print("tailer_rss_anon_kib_%d=%d" % (i, mem.get("RssAnon", 0)))
        print("tailer_fold_seconds_%d=%.2f" % (i, secs), flush=True)
    print("tailer_rss_growth=%.3f" % (hwm[1] / hwm[0]))


if __name__ == "__main__":
    main()
