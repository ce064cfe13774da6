#!/usr/bin/env python3
"""Crash safety of the command side (API.md sections 2 and 7): under a load of
CreateOrder from several connections, the command master and all its workers are killed with
SIGKILL five times, then stopped once with SIGTERM (which must exit 0). After each restart:
every order that got a 2xx is in the log (eventfoldctl dump) with its quantity, positions are
dense, `eventfoldctl verify` is clean, and the write model agrees with the log: logged order
ids are taken (409 already_exists), and the item's available stock in a restock answer equals
what the log implies."""

import http.client
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, run, uid  # noqa: E402

CYCLES = 5
THREADS = 8
STOCK = 1000000


def main():
    with Cluster("crash", workers=4) as c:
        cl = c.client()
        u, item = uid("u"), uid("item")
        expect(cl.post("/api/users", {"user_id": u, "name": "Crash"}), 201)
        expect(cl.post("/api/items", {"item_id": item, "name": "Bolt", "category": "hw", "price_cents": 3}), 201)
        expect(cl.post("/api/items/%s/restock" % item, {"quantity": STOCK}), 200)
        restocked = STOCK
        acked = {}  # order id -> quantity, for 201 answers
        lock = threading.Lock()
        go = threading.Event()
        stop = threading.Event()
        errors = []

        def load(t):
            rnd = random.Random(t)
            k = c.client(timeout=20)
            n = 0
            while not stop.is_set():
                if not go.wait(0.05):
                    continue
                n += 1
                oid = "crash-%d-%d" % (t, n)
                q = rnd.randint(1, 3)
                try:
                    r = k.post("/api/orders", {"user_id": u, "order_id": oid, "items": [{"item_id": item, "quantity": q}]})
                except (OSError, http.client.HTTPException):
                    # The connection broke under the kill: the order may or may not be in the
                    # log, it was not acknowledged, so it is not counted.
                    k.close()
                    continue
                if r.status == 201:
                    with lock:
                        acked[oid] = q
                elif r.status not in (502, 503, 504):
                    errors.append((oid, r))

        threads = [threading.Thread(target=load, args=(t,), daemon=True) for t in range(THREADS)]
        for t in threads:
            t.start()
        try:
            for cycle in range(1, CYCLES + 2):
                go.set()
                time.sleep(1.5)
                before = len(acked)
                if cycle <= CYCLES:
                    c.kill("command", signal.SIGKILL)  # master and every worker, at once, mid-load
                else:
                    # Last cycle: a clean stop under load (API.md section 2): exit 0, and what
                    # was acknowledged is kept like after a crash.
                    rc = c.stop_gracefully("command")
                    check(rc == 0, "eventfold-command exited %r on SIGTERM" % rc)
                go.clear()
                time.sleep(0.3)  # let in-flight client calls see the failure
                c.start("command")
                with lock:
                    snapshot = dict(acked)
                check(not errors, "unexpected answers under load: %r" % errors[:3])
                log("cycle %d: %d orders acknowledged (%d before the kill)" % (cycle, len(snapshot), before))
                check(len(snapshot) > 0, "no order was acknowledged under load")
                c.verify()
                events = c.dump()
                check([e["position"] for e in events] == list(range(1, len(events) + 1)),
                      "positions are not dense after a crash")
                logged = {e["data"]["order_id"]: e for e in events if e["type"] == "OrderCreated"}
                missing = [o for o in snapshot if o not in logged]
                check(not missing, "acknowledged orders missing from the log after kill -9: %r" % missing[:10])
                for o, q in snapshot.items():
                    lq = logged[o]["data"]["lines"][0]["quantity"]
                    check(lq == q, "order %s logged with quantity %d, acknowledged %d" % (o, lq, q))
                # The write model agrees with the log: reserved stock and taken ids.
                reserved = sum(e["data"]["lines"][0]["quantity"] for e in logged.values())
                r = expect(cl.post("/api/items/%s/restock" % item, {"quantity": 1}), 200, what="restock")
                restocked += 1
                check(r.json["available"] == restocked - reserved,
                      "write model says available %d, the log implies %d" % (r.json["available"], restocked - reserved))
                check(r.json["version"] == sum(1 for e in events if e["stream"] == "item-" + item) + 1,
                      "item version %d vs log" % r.json["version"])
                unacked = [o for o in logged if o not in snapshot]
                for o in list(unacked)[:20] + list(snapshot)[:20]:
                    r = cl.post("/api/orders", {"user_id": u, "order_id": o, "items": [{"item_id": item, "quantity": 1}]})
                    expect(r, 409, "already_exists", what="re-create logged order %s" % o)
        finally:
            stop.set()
            go.set()
            for t in threads:
                t.join(timeout=30)
        c.verify()


if __name__ == "__main__":
    run(main, budget=240)
