#!/usr/bin/env python3
"""vm_stall_watch: tells when this machine's CPUs stopped running altogether.

On a virtual machine the host may stop the guest's virtual CPUs for a while (another
guest's turn, a CPU quota of the host). Inside the guest, time jumps: every process on
such a CPU, ours included, stops for as long, and no change to eventfold can avoid it.
The read-your-writes benchmark reports the samples that overlapped one apart, so that a
stop of the machine is not taken for a stall of the read side.

One watcher per CPU, bound to it, at real-time priority (SCHED_FIFO): it sleeps PERIOD and
notes each wake-up that came more than THRESHOLD late. A real-time task that is due runs at
once on its CPU, ahead of every ordinary one, however busy the CPU is, so only a CPU that
ran nothing of the guest's (or ran with interrupts off for that long) makes it late.
Without the privilege for SCHED_FIFO the watcher says so and exits: at ordinary priority a
busy CPU would make it late too, and its reports would mean nothing.

Usage: vm_stall_watch.py CPU; prints "ready" and then one line "STALL START END" (seconds
of CLOCK_MONOTONIC, time.monotonic() in Python) per late wake-up, until killed (SIGTERM).
"""

import os
import sys
import time

PERIOD = 0.005      # 200 wake-ups a second: under 1% of a CPU (measured: 10 to 20 ms of CPU in 4 s)
THRESHOLD = 0.025   # late by more than this: a stop of the CPU, not scheduling


def main():
    cpu = int(sys.argv[1])
    try:
        os.sched_setaffinity(0, {cpu})
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (OSError, AttributeError) as e:
        print("unavailable %s" % e, flush=True)
        return
    print("ready", flush=True)
    last = time.monotonic()
    while True:
        time.sleep(PERIOD)
        now = time.monotonic()
        if now - last > PERIOD + THRESHOLD:
            print("STALL %.6f %.6f" % (last + PERIOD, now), flush=True)
        last = now


if __name__ == "__main__":
    try:
        main()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
