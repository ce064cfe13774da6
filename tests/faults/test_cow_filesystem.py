#!/usr/bin/env python3
"""A data directory on a copy-on-write filesystem (btrfs, on a loop device). There an
overwrite needs new blocks whatever fallocate reserved, so a store into a writable LMDB map
could still meet a full disk as SIGBUS (util/lmdb_map.h): both models must be opened
without MDB_WRITEMAP, with a warning that says why, and everything must work as usual:
commands, a query with Min-Position, and a clean `eventfoldctl verify`.
Needs root, loop devices and mkfs.btrfs (btrfs-progs); exits 77 (skip) otherwise."""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from faultlib import Cluster, check, no_sanitizer_reports, read, segments  # noqa: E402
from harness import expect, log, new_order, run  # noqa: E402

FALLBACK = "cannot be reserved on disk (the filesystem has no fallocate, or copies on write)"


def main():
    with Cluster("cow", fs_size=256, fs_type="btrfs", workers=2) as c:
        cl = c.client()
        u, _, order = new_order(cl, "cow", deposit=1000, price=300, stock=5, quantity=2)
        r = expect(cl.post("/api/orders/%s/pay" % order, {}), 200)
        user = expect(cl.get("/api/users/" + u, headers={"Min-Position": str(r.position)}), 200).json
        check(user["wallet_balance_cents"] == 400, "wallet after paying 600 of 1000: %r" % user)
        # Read once a command was answered and the tailer folded it: both have opened their
        # model by then (a loaded machine may start the tailer after the cluster answers).
        for name, model in (("command", "write model"), ("tailer", "read model")):
            text = c.log_text(name)
            check(model + ": its map " + FALLBACK in text,
                  "%s should open the %s without a writable map on btrfs:\n%s" % (name, model, text[-1500:]))
        # No zeros written ahead of the log's head there (log/append.c): overwriting them
        # would need new blocks and a metadata commit as much as an append does.
        seg = os.path.join(c.data, "log", segments(os.path.join(c.data, "log"))[-1])
        buf = read(seg)
        end = 0
        while end + 56 <= len(buf):
            magic, length = struct.unpack_from("<II", buf, end)
            if magic != 0x31524645 or length < 56:
                break
            end += length
        check(end > 0 and end == len(buf),
              "the newest segment should end with its last record on btrfs: records end at %d, file %d bytes"
              % (end, len(buf)))
        c.verify()
        no_sanitizer_reports(c)
        log("btrfs: both models without MDB_WRITEMAP, with the warning; no zeros ahead of the log's head; "
            "commands, queries and verify work")


if __name__ == "__main__":
    run(main, 120)
