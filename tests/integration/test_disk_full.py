#!/usr/bin/env python3
"""A log that cannot be written (API.md section 3: 503 log_unavailable, nothing appended).
The data directory is a small tmpfs of its own; once the program is running, a filler file
takes the free space. Commands then get either their normal answer (while the log still has
room) or 503 log_unavailable, never anything else, and a 503 appends nothing. When the filler
is removed, commands succeed again, every acknowledged one is in the log and `verify` is
clean. Needs root (mount); skipped otherwise."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, SkipTest, check, expect, log, run, soft_check, uid  # noqa: E402

MIB = 1 << 20


def fill(path):
    """Writes zeros until ENOSPC; returns the bytes written."""
    n = 0
    buf = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                w = os.write(fd, buf)
            except OSError:
                break
            if w <= 0:
                break
            n += w
        # The last partial page too.
        for size in (4096, 512, 1):
            while True:
                try:
                    if os.write(fd, b"\0" * size) <= 0:
                        break
                    n += size
                except OSError:
                    break
    finally:
        os.close(fd)
    return n


def main():
    if os.geteuid() != 0:
        raise SkipTest("needs root to mount a tmpfs")
    # Small maps: their disk blocks are reserved up front (util/lmdb_map.h), and two 16 MiB
    # maps would take the whole disk, or race the filler when one reservation fails.
    config = {"segment_bytes": MIB, "write_map_bytes": MIB, "read_map_bytes": MIB, "snapshot_every": 0}
    with Cluster("diskfull", workers=2, config=config, data_tmpfs_bytes=32 * MIB) as c:
        cl = c.client()
        u, item = uid("u"), uid("item")
        expect(cl.post("/api/users", {"user_id": u, "name": "Full"}), 201)
        expect(cl.post("/api/items", {"item_id": item, "name": "Brick", "category": "c", "price_cents": 1}), 201)
        expect(cl.post("/api/items/%s/restock" % item, {"quantity": 1000000}), 200)
        acked = []
        filler = os.path.join(c.data, "filler")
        n = fill(filler)
        log("filled the data filesystem with %d bytes" % n)

        unavailable = 0
        for i in range(3000):
            r = cl.post("/api/orders", {"user_id": u, "order_id": "full-%d" % i,
                                        "items": [{"item_id": item, "quantity": 1}]})
            if r.status == 201:
                acked.append("full-%d" % i)
                continue
            expect(r, 503, "log_unavailable", what="command on a full disk")
            unavailable += 1
            after = c.dump()
            check(not any(e["type"] == "OrderCreated" and e["data"]["order_id"] == "full-%d" % i for e in after),
                  "the order answered 503 is in the log")
            if unavailable >= 3:
                break
        check(unavailable >= 3, "3000 commands on a full disk never got 503 log_unavailable (%d acknowledged)"
              % len(acked))
        log("%d acknowledged before the disk was full, then 503 log_unavailable" % len(acked))
        r = cl.get("/api/status")
        check(r.status == 200, "queries while the disk is full: %r" % r)

        os.unlink(filler)
        deadline = time.monotonic() + 10
        while True:
            r = cl.post("/api/orders", {"user_id": u, "order_id": "after-full", "items": [{"item_id": item, "quantity": 1}]})
            if r.status == 201:
                break
            check(r.status == 503, "after freeing space: %r" % r)
            check(time.monotonic() < deadline, "commands still fail 10 s after space was freed: %r" % r)
            time.sleep(0.2)
        acked.append("after-full")
        c.verify()
        logged = {e["data"]["order_id"] for e in c.dump() if e["type"] == "OrderCreated"}
        missing = [o for o in acked if o not in logged]
        check(not missing, "acknowledged orders missing from the log: %r" % missing[:5])
        r = expect(cl.post("/api/items/%s/restock" % item, {"quantity": 1}), 200)
        soft_check(r.json["available"] == 1000001 - len(logged),
                   "write model: available %d, the log implies %d" % (r.json["available"], 1000001 - len(logged)))


if __name__ == "__main__":
    run(main, budget=200)
