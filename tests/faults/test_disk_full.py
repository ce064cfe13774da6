#!/usr/bin/env python3
"""Disk full (API.md sections 3 and 7: 503 log_unavailable, nothing appended, nothing lost).
A small filesystem of its own holds either the log directory (4 MiB) or the whole data
directory (32 MiB, with 1 MiB LMDB maps, whose blocks are reserved up front, so that the
filler does not race a map's reservation). After a few acknowledged commands a filler file
takes the free space. Then:
  - commands (orders with an order_id of the test's choosing) get either their normal
    answer (while a preallocated segment still has room) or 503 log_unavailable as
    problem+json, never another status; the programs stay up and queries are answered;
  - eventfoldctl verify is clean while the disk is full (no partial record left behind),
    also after kill -9 and restart of the command program on the full disk (recovery needs
    no space, and the restarted program keeps refusing cleanly);
once the filler is removed:
  - commands succeed again (at once when only the log was full; within 10 s when the
    models' maps were on the full disk too), and every order refused with 503 can be created
    again under its id (201; a 409 would mean the refused command was appended);
  - after kill -9 and restart of the command program, verify is clean, positions are dense,
    every acknowledged command is in the log at its Log-Position, each order exactly once;
  - the write model agrees with the log: the item's stock is what the logged orders leave
    (a refused order reserved nothing), and the read model catches up.
Three runs: the log on its own filesystem with large segments (the disk fills inside a
segment) and with 4 KiB segments (it fills while the log rolls to a new segment: the file
can be created, its first write cannot), and the whole data directory on one.
Needs root to mount; exits 77 (skip) otherwise."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import Cluster, check, fill, no_sanitizer_reports  # noqa: E402
from harness import expect, log, run, uid  # noqa: E402

MIB = 1 << 20
MAX_TRIES = 4000  # commands sent while full before giving up on seeing a 503
REFUSALS = 20     # refused commands collected before space is freed
STOCK = 1000000

SCENARIOS = [
    # (what, filesystem size, mounted on, config, seconds commands may still fail once freed)
    ("log on 4 MiB, 256 KiB segments", "4m", "log", {"segment_bytes": 256 * 1024}, 0),
    ("log on 4 MiB, 4 KiB segments", "4m", "log", {"segment_bytes": 4096}, 0),
    ("data directory on 32 MiB, 1 MiB maps", 32 * MIB, "",
     {"segment_bytes": MIB, "write_map_bytes": MIB, "read_map_bytes": MIB, "snapshot_every": 0}, 10),
]


def order(cl, user, item, oid):
    return cl.post("/api/orders", {"user_id": user, "order_id": oid,
                                   "items": [{"item_id": item, "quantity": 1}]})


def order_until_created(cl, user, item, oid, settle, what):
    """Sends the order until 201; 503 log_unavailable is allowed for `settle` seconds."""
    deadline = time.monotonic() + settle
    while True:
        r = order(cl, user, item, oid)
        if r.status == 201 or time.monotonic() >= deadline:
            return expect(r, 201, what=what)
        expect(r, 503, "log_unavailable", what=what + " (while space is being freed)")
        time.sleep(0.2)


def scenario(what, size, sub, config, settle):
    log("--- %s" % what)
    with Cluster("diskfull", workers=2, config=config, fs_size=size, fs_sub=sub) as c:
        cl = c.client()
        base = uid("df")
        user, item = base + "-u", base + "-i"
        acked = []  # (position, stream) of every acknowledged command
        r = expect(cl.post("/api/users", {"user_id": user, "name": "Full"}), 201, what="register")
        acked.append((r.position, "user-" + user))
        r = expect(cl.post("/api/items", {"item_id": item, "name": "Brick", "category": "c",
                                          "price_cents": 1}), 201, what="add item")
        acked.append((r.position, "item-" + item))
        r = expect(cl.post("/api/items/%s/restock" % item, {"quantity": STOCK}), 200, what="restock")
        acked.append((r.position, "item-" + item))
        for i in range(10):
            oid = "%s-ok-%d" % (base, i)
            r = expect(order(cl, user, item, oid), 201, what="order before the disk is full")
            acked.append((r.position, "order-" + oid))

        filler = os.path.join(c.mountpoint, "filler")
        log("filled the filesystem with %d bytes" % fill(filler))

        refused = []
        for i in range(MAX_TRIES):
            oid = "%s-full-%d" % (base, i)
            r = order(cl, user, item, oid)
            if 200 <= r.status < 300:
                acked.append((r.position, "order-" + oid))  # room left in a preallocated segment
                continue
            expect(r, 503, "log_unavailable", what="command on a full disk")
            refused.append(oid)
            if len(refused) >= REFUSALS:
                break
        check(refused, "no 503 log_unavailable after %d commands on a full disk" % MAX_TRIES)
        log("disk full: %d acknowledged before the first refusal, %d refused" % (len(acked), len(refused)))
        check(c.running("command"), "the command program died on a full disk")
        expect(c.client().get("/api/status"), 200, what="queries while the disk is full")
        c.verify()

        c.restart("command", signal.SIGKILL)
        c.verify()
        oid = "%s-full-restarted" % base
        r = order(cl, user, item, oid)
        if 200 <= r.status < 300:
            acked.append((r.position, "order-" + oid))
        else:
            expect(r, 503, "log_unavailable", what="command on a full disk after a restart")
            refused.append(oid)

        os.unlink(filler)
        oid = base + "-after"
        r = order_until_created(cl, user, item, oid, settle, "first command after space was freed")
        acked.append((r.position, "order-" + oid))
        for oid in refused:
            r = expect(order(cl, user, item, oid), 201,
                       what="creating %s again, refused with 503 while full (409 means the refused "
                       "command was appended anyway)" % oid)
            acked.append((r.position, "order-" + oid))

        c.restart("command", signal.SIGKILL)
        c.verify()
        events = {e["position"]: e for e in c.dump()}
        check(sorted(events) == list(range(1, len(events) + 1)), "positions not dense")
        lost = [(p, s) for p, s in acked if p not in events or events[p]["stream"] != s]
        check(not lost, "acknowledged commands missing from the log: %r" % lost[:10])
        orders = [e["data"]["order_id"] for e in events.values() if e["type"] == "OrderCreated"]
        check(len(orders) == len(set(orders)), "an order id is in the log twice")
        r = expect(cl.post("/api/items/%s/restock" % item, {"quantity": 1}), 200, what="restock at the end")
        check(r.json["available"] == STOCK + 1 - len(orders),
              "write model: available %d, the log's %d orders leave %d"
              % (r.json["available"], len(orders), STOCK + 1 - len(orders)))
        c.wait_caught_up()
        log("%s: %d acknowledged, all in the log; %d events" % (what, len(acked), len(events)))
        no_sanitizer_reports(c)


def main():
    for s in SCENARIOS:
        scenario(*s)


if __name__ == "__main__":
    run(main, 420)
