#!/usr/bin/env python3
"""Read-your-writes (API.md section 6):
 - 1 000 times a write, then a read with Min-Position (header or ?min_position=) set to the
   write's Log-Position: never stale (the answer shows the write, its Log-Position >= P), never
   404 for a just-created order;
 - a read with a Min-Position beyond the head waits about `Prefer: wait` (and the default 2 s)
   then answers 503 not_caught_up with Retry-After;
 - a waiting read is answered as soon as the position arrives;
 - more waiting requests than query worker processes, while plain queries are still answered
   promptly."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, parallel, run, uid  # noqa: E402

PAIRS = 1000
THREADS = 4


def main():
    with Cluster("ryw", workers=2) as c:
        cl = c.client()
        item = uid("item")
        expect(cl.post("/api/items", {"item_id": item, "name": "Cup", "category": "kitchen", "price_cents": 100}), 201)
        expect(cl.post("/api/items/%s/restock" % item, {"quantity": 100000}), 200)

        def worker(t):
            k = c.client()
            u = "ryw-%d-%s" % (t, uid("u"))
            r = expect(k.post("/api/users", {"user_id": u, "name": "R%d" % t}), 201)
            delays = []
            for i in range(PAIRS // THREADS):
                via_param = i % 2 == 0
                if i % 3 == 0:
                    w = expect(k.post("/api/users/%s/deposits" % u, {"amount_cents": 1000}), 200, what="deposit")
                    path, want = "/api/users/%s" % u, ("wallet_balance_cents", w.json["balance_cents"])
                else:
                    w = expect(k.post("/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": 1}]}),
                               201, what="create")
                    path, want = "/api/orders/%s" % w.json["order_id"], ("status", "created")
                p = w.position
                check(p == w.json["position"], "Log-Position %r != position %r" % (p, w.json["position"]))
                t0 = time.monotonic()
                if via_param:
                    r = k.get(path + "?min_position=%d" % p)
                else:
                    r = k.get(path, headers={"Min-Position": str(p)})
                delays.append(time.monotonic() - t0)
                expect(r, 200, what="read own write %s at %d" % (path, p))
                check(r.position is not None and r.position >= p, "stale: Log-Position %r < %d" % (r.position, p))
                check(r.json.get(want[0]) == want[1], "stale read of %s: %s = %r, wrote %r"
                      % (path, want[0], r.json.get(want[0]), want[1]))
            k.close()
            return delays

        t0 = time.monotonic()
        delays = sorted(sum(parallel(worker, [(t,) for t in range(THREADS)]), []))
        check(len(delays) == PAIRS, "ran %d pairs" % len(delays))
        log("%d write/read pairs in %.1f s; read with Min-Position p50 %.1f ms, p99 %.1f ms"
            % (PAIRS, time.monotonic() - t0, delays[len(delays) // 2] * 1000, delays[int(len(delays) * 0.99)] * 1000))

        log("Min-Position beyond the head")
        head = c.head()
        for wait, lo, hi in (("1", 0.8, 4.0), (None, 1.6, 6.0)):
            hdrs = {"Min-Position": str(head + 1000)}
            if wait:
                hdrs["Prefer"] = "wait=" + wait
            t0 = time.monotonic()
            r = cl.get("/api/items/%s" % item, headers=hdrs)
            el = time.monotonic() - t0
            expect(r, 503, "not_caught_up", what="Min-Position beyond the head, wait %s" % wait)
            check(r.header("Retry-After") == "1", "Retry-After %r" % r.header("Retry-After"))
            check(lo <= el <= hi, "waited %.2f s for Prefer: wait=%s (expected %.1f..%.1f)" % (el, wait, lo, hi))
            log("wait=%s answered 503 after %.2f s" % (wait, el))

        log("a waiting read is answered when its position arrives")
        head = c.head()
        box = {}

        def waiter():
            k = c.client()
            t = time.monotonic()
            box["r"] = k.get("/api/items/%s" % item, headers={"Min-Position": str(head + 1), "Prefer": "wait=8"})
            box["t"] = time.monotonic() - t

        th = threading.Thread(target=waiter, daemon=True)
        th.start()
        time.sleep(0.5)
        w = expect(cl.post("/api/items/%s/restock" % item, {"quantity": 1}), 200)
        th.join(timeout=15)
        expect(box["r"], 200, what="waiting read")
        check(box["r"].json["available"] == w.json["available"], "waiting read is stale: %r" % box["r"].json)
        check(box["t"] < 5, "waiting read answered after %.2f s" % box["t"])

        log("more waiting requests than worker processes; plain queries still answered")
        n_wait = 2 * 2 + 1  # more than the 2 worker processes (and than 2 per process)
        head = c.head()
        results = []

        def long_waiter():
            k = c.client()
            results.append(k.get("/api/items/%s" % item, headers={"Min-Position": str(head + 10 ** 6), "Prefer": "wait=4"}))

        ws = [threading.Thread(target=long_waiter, daemon=True) for _ in range(n_wait)]
        for th in ws:
            th.start()
        time.sleep(0.7)  # the waiters are parked in the query workers now
        lat = []
        for _ in range(10):
            t0 = time.monotonic()
            expect(cl.get("/api/items/%s" % item), 200, what="plain query while others wait")
            lat.append(time.monotonic() - t0)
        for th in ws:
            th.join(timeout=20)
        check(len(results) == n_wait and all(r.status == 503 for r in results),
              "waiters: %r" % [r.status for r in results])
        log("plain queries while %d requests wait: max %.1f ms" % (n_wait, max(lat) * 1000))
        check(max(lat) < 1.0, "a plain query took %.2f s while %d requests waited" % (max(lat), n_wait))


if __name__ == "__main__":
    run(main, budget=240)
