#!/usr/bin/env python3
"""The benchmark's watch for stops of the machine (bench/vm_stall_watch.py, and how
bench/ryw_bench.py uses it), which decides which read-your-writes samples the report judges:
  - a watcher stopped for 150 ms (SIGSTOP, as a host stopping its CPU would) reports one
    stop that covers that time, and none of less than its threshold;
  - the stops of several CPUs are counted once where they overlap, and a sample overlaps a
    stop only if their times intersect.
Skipped where real-time priority is not allowed (the watcher then says "unavailable")."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SRCDIR, SkipTest, check, log, run  # noqa: E402

sys.path.insert(0, os.path.join(SRCDIR, "bench"))
import ryw_bench  # noqa: E402
import vm_stall_watch  # noqa: E402

WATCH = os.path.join(SRCDIR, "bench", "vm_stall_watch.py")


def stopped_watcher():
    cpu = min(os.sched_getaffinity(0))
    p = subprocess.Popen([sys.executable, WATCH, str(cpu)], stdout=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline().strip()
        if first.startswith("unavailable"):
            raise SkipTest("no real-time priority here: %s" % first)
        check(first == "ready", "watcher said %r" % first)
        time.sleep(0.1)
        # [t_stop, t_cont] lies inside the stop whatever delays this (ordinary) process: the
        # watcher cannot run once kill() returned, and not before the SIGCONT is sent.
        os.kill(p.pid, signal.SIGSTOP)  # our own child, by its PID
        t_stop = time.monotonic()
        time.sleep(0.15)
        t_cont = time.monotonic()
        os.kill(p.pid, signal.SIGCONT)
        time.sleep(0.1)
    finally:
        if p.poll() is None:
            p.terminate()
        out = p.communicate(timeout=10)[0]
    stalls = [tuple(float(x) for x in line.split()[1:]) for line in out.splitlines() if line.startswith("STALL")]
    log("stopped %.3f-%.3f; reported: %s" % (t_stop, t_cont, stalls))
    for s, e in stalls:
        check(e - s > vm_stall_watch.THRESHOLD, "a stop shorter than the threshold: %r" % ((s, e),))
    # The watcher's last wake-up may follow kill() by the microseconds a signal to a running
    # task takes to land: 5 ms of slack on that side.
    cover = [(s, e) for s, e in stalls if s <= t_stop + vm_stall_watch.PERIOD + 0.005 and e >= t_cont]
    check(len(cover) == 1, "no single stop covers the 150 ms SIGSTOP: %r" % stalls)


def merging():
    w = ryw_bench.StallWatch()
    w.stalls = [(10.0, 10.1), (10.05, 10.12), (12.0, 12.1), (9.0, 9.03)]  # two CPUs
    check(w.merged() == [(9.0, 9.03), (10.0, 10.12), (12.0, 12.1)], "merged: %r" % w.merged())
    check(w.overlaps(10.11, 10.2), "a sample ending in a stop overlaps it")
    check(w.overlaps(9.5, 13.0), "a sample spanning stops overlaps them")
    check(not w.overlaps(10.12, 11.99), "a sample between stops overlaps none")
    check(not w.overlaps(8.0, 9.0), "a sample ending as a stop starts overlaps none")


def main():
    merging()
    stopped_watcher()
    log("ok")


if __name__ == "__main__":
    run(main, budget=60)
