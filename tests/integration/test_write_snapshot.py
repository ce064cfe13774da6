#!/usr/bin/env python3
"""Write-model snapshots (the command side also starts fast): with several
command workers and snapshot_every = 100, the workers take write-model snapshots in
DIR/write/snapshots while they serve commands (never ahead of the log, at most
snapshot_keep of them); `eventfoldctl snapshot` takes one too and reports it; and a
command side whose write model is unreadable at start restores the newest snapshot and
replays only the log after it (one info line), then answers as before."""

import glob
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, run, uid  # noqa: E402

EVERY = 100


def snapshots(c):
    out = []
    for d in glob.glob(os.path.join(c.data, "write", "snapshots", "snap-*")):
        try:
            with open(os.path.join(d, "manifest")) as f:
                m = dict(line.split(None, 1) for line in f.read().splitlines() if " " in line)
        except FileNotFoundError:
            continue  # pruned by a worker between the listing and the open
        out.append(int(m["position"]))
    return sorted(out)


def main():
    with Cluster("wsnap", workers=3, config={"snapshot_every": EVERY, "snapshot_keep": 2}) as c:
        cl = c.client()
        u = uid("u")
        expect(cl.post("/api/users", {"user_id": u, "name": "Snap"}), 201)
        last = None
        for i in range(4 * EVERY + 20):
            last = expect(cl.post("/api/users/%s/deposits" % u, {"amount_cents": 1}), 200)
        head = last.position
        # Workers take snapshots in threads of their own, so one may still be writing its
        # temporary directory, or not yet have pruned, when the newest one appears: wait for
        # the settled state (bounded), then check each property with its own message.
        tmp_glob = os.path.join(c.data, "write", "snapshots", "tmp-*")
        deadline = time.monotonic() + 20
        while True:
            snaps = snapshots(c)
            settled = (snaps and snaps[-1] + EVERY > head and len(snaps) <= 2
                       and not glob.glob(tmp_glob))
            if settled or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        log("write snapshots %r at head %d" % (snaps, head))
        check(snaps and snaps[-1] + EVERY > head, "write snapshots after %d events: %r" % (head, snaps))
        check(len(snaps) <= 2, "snapshot_keep = 2 but %r" % snaps)
        check(all(p <= head for p in snaps), "a snapshot ahead of the log: %r > %d" % (snaps, head))
        check(not glob.glob(tmp_glob), "temporary dirs left: %r" % glob.glob(tmp_glob))

        j = c.ctl_json("snapshot")
        check(j.get("write_position") == head and j.get("write_bytes", 0) > 0, "eventfoldctl snapshot: %r" % j)
        check(snapshots(c)[-1] == head, "after eventfoldctl snapshot: %r" % snapshots(c))

        # More events after the newest snapshot, then a write model that cannot be read.
        for i in range(7):
            last = expect(cl.post("/api/users/%s/deposits" % u, {"amount_cents": 1}), 200)
        check(c.stop_gracefully("command") == 0, "command did not stop cleanly")
        with open(os.path.join(c.data, "write", "data.mdb"), "r+b") as f:
            f.write(b"x" * 8192)
        c.start("command")
        w = expect(cl.post("/api/users/%s/deposits" % u, {"amount_cents": 1}), 200, what="after restore")
        check(w.position == last.position + 1, "position after restore %r, expected %d" % (w.position, last.position + 1))
        version = 1 + (4 * EVERY + 20) + 7 + 1  # created, then every deposit
        check(w.header("ETag") == '"%d"' % version, "ETag after restore %r, expected %d" % (w.header("ETag"), version))
        text = c._read_log("command")
        m = re.search(r"write model restored from snapshot snapshot=\S+ position=(\d+) replayed=(\d+)", text)
        check(m and int(m.group(1)) == head and int(m.group(2)) == 7, "no restore line as expected: %r" % text[-1500:])
        c.verify()


if __name__ == "__main__":
    run(main, budget=120)
