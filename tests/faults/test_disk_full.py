#!/usr/bin/env python3
"""Disk full (issue 7, API.md sections 3 and 7): the log lives on a private 4 MiB tmpfs.
After a few acknowledged commands the filesystem is filled up by a file. Then:
  - commands are answered 503 log_unavailable (problem+json), never 2xx without a durable
    event, never a crash (502) or another 5xx; the programs stay up;
  - eventfoldctl verify is clean while the disk is full (no partial record left behind),
    also after kill -9 and restart of the command program on the full disk;
once the file is removed:
  - commands succeed again, and every id refused with 503 can be registered (201): nothing
    was appended for a refused command;
  - after kill -9 and restart of the command program, verify is clean and every
    acknowledged command is in the log at its Log-Position.
Run twice: with large segments, and with 4 KiB ones so that the disk also fills up
while the log rolls to a new segment. Needs root to mount the tmpfs; exits 77 (skip)
otherwise."""

import errno
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import TmpfsCluster, check, no_sanitizer_reports  # noqa: E402
from harness import expect, log, run, uid  # noqa: E402

MAX_TRIES = 4000  # commands sent while full before giving up on seeing a 503


def fill(path):
    """Writes path until the filesystem is full; returns the bytes written."""
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in (1 << 16, 4096, 512, 1):
            buf = b"\xee" * chunk
            while True:
                try:
                    w = os.write(fd, buf)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
                n += w
                if w < chunk:
                    break
    finally:
        os.close(fd)
    return n


def main():
    # Large segments: the disk fills inside a segment. 4 KiB segments: it fills while
    # rolling to a new segment (the new file can be created, its first write cannot).
    for seg in (256 * 1024, 4096):
        log("segment_bytes=%d" % seg)
        scenario(seg)


def scenario(segment_bytes):
    with TmpfsCluster("diskfull", "4m", sub="log", workers=2,
                      config={"segment_bytes": segment_bytes}) as c:
        cl = c.client()
        base = uid("df")
        acked = []  # (position, stream)
        for i in range(10):
            u = "%s-ok-%d" % (base, i)
            r = expect(cl.post("/api/users", {"user_id": u, "name": "Full %d" % i}), 201, what="before full")
            acked.append((r.position, "user-" + u))

        filler = os.path.join(c.mountpoint, "filler")
        n = fill(filler)
        log("filled the log filesystem with %d bytes" % n)

        refused = []
        for i in range(MAX_TRIES):
            u = "%s-full-%d" % (base, i)
            r = cl.post("/api/users", {"user_id": u, "name": "x" * 200})
            if 200 <= r.status < 300:
                acked.append((r.position, "user-" + u))  # room left in a preallocated segment
                continue
            expect(r, 503, "log_unavailable", what="command on a full disk")
            refused.append(u)
            if len(refused) >= 20:
                break
        check(refused, "no 503 log_unavailable after %d commands on a full disk" % MAX_TRIES)
        log("disk full: %d acknowledged before the first refusal, %d refused"
            % (len(acked), len(refused)))
        check(c.running("command"), "the command program died on a full disk")
        expect(c.client().get("/api/status"), 200, what="queries while the disk is full")
        c.verify()

        # A crash while the disk is full: recovery needs no space, and the restarted
        # program keeps refusing cleanly.
        c.restart("command", signal.SIGKILL)
        c.verify()
        u = "%s-full-restarted" % base
        r = cl.post("/api/users", {"user_id": u, "name": "x" * 200})
        if 200 <= r.status < 300:
            acked.append((r.position, "user-" + u))
        else:
            expect(r, 503, "log_unavailable", what="command on a full disk after a restart")
            refused.append(u)

        os.unlink(filler)
        r = expect(cl.post("/api/users", {"user_id": base + "-after", "name": "After"}), 201,
                   what="first command after space was freed")
        acked.append((r.position, "user-%s-after" % base))
        for u in refused:
            r = cl.post("/api/users", {"user_id": u, "name": "Again"})
            expect(r, 201, what="re-registering %s, refused with 503 while full (409 means the "
                   "refused command was appended anyway)" % u)
            acked.append((r.position, "user-" + u))

        c.restart("command", signal.SIGKILL)
        c.verify()
        events = {e["position"]: e for e in c.dump()}
        lost = [(p, s) for p, s in acked if p not in events or events[p]["stream"] != s]
        check(not lost, "acknowledged commands missing from the log: %r" % lost[:10])
        check(sorted(events) == list(range(1, len(events) + 1)), "positions not dense")
        c.wait_caught_up()
        log("disk full: %d acknowledged, all in the log; %d events" % (len(acked), len(events)))
        no_sanitizer_reports(c)


if __name__ == "__main__":
    run(main, 240)
