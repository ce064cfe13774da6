#!/usr/bin/env python3
"""Cursor pagination and time travel:
 - 250 orders of one user are paged through with a small limit while new orders of the same
   user keep arriving: every one of the 250 appears exactly once, the list is newest first,
   and no order appears twice;
 - ?as_of=P: an order's state at each position of its history (and between its events, and
   before it existed: 404) matches its lifecycle."""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, parallel, run, uid  # noqa: E402

N = 250


def main():
    with Cluster("pages", workers=2) as c:
        cl = c.client()
        u, item = uid("u"), uid("item")
        expect(cl.post("/api/users", {"user_id": u, "name": "Pager"}), 201)
        expect(cl.post("/api/items", {"item_id": item, "name": "Nail", "category": "hw", "price_cents": 2}), 201)
        expect(cl.post("/api/items/%s/restock" % item, {"quantity": 100000}), 200)

        def create_many(t, n):
            k = c.client()
            out = []
            for _ in range(n):
                r = expect(k.post("/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": 1}]}), 201)
                out.append((r.position, r.json["order_id"]))
            return out

        created = sorted(sum(parallel(create_many, [(t, N // 5) for t in range(5)]), []))
        check(len(created) == N, "created %d" % len(created))
        first = {oid for _, oid in created}
        c.wait_caught_up(created[-1][0])

        log("paging while new orders arrive")
        stop = threading.Event()
        extra = []

        def arrive():
            k = c.client()
            while not stop.is_set():
                r = k.post("/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": 1}]})
                if r.status == 201:
                    extra.append(r.json["order_id"])

        th = threading.Thread(target=arrive, daemon=True)
        th.start()
        try:
            for limit in (7, 20, 100):
                seen, cursor, pages = [], None, 0
                while True:
                    q = "/api/users/%s/orders?limit=%d" % (u, limit) + ("&cursor=%s" % cursor if cursor else "")
                    j = expect(cl.get(q), 200, what=q).json
                    check(len(j["orders"]) <= limit, "page of %d > limit %d" % (len(j["orders"]), limit))
                    seen += [o["order_id"] for o in j["orders"]]
                    pages += 1
                    cursor = j["next_cursor"]
                    if cursor is None:
                        break
                    check(pages < 1000, "pagination does not end")
                dup = {o for o in seen if seen.count(o) > 1}
                check(not dup, "limit %d: orders seen twice: %r" % (limit, list(dup)[:5]))
                check(first <= set(seen), "limit %d: %d of the 250 orders missing" % (limit, len(first - set(seen))))
                pos = {oid: p for p, oid in created}
                order = [pos[o] for o in seen if o in pos]
                check(order == sorted(order, reverse=True), "limit %d: not newest first" % limit)
                # Orders created while paging sit on top (newer), so they come before the 250.
                idx = [i for i, o in enumerate(seen) if o in first]
                check(idx == list(range(len(seen) - N, len(seen))), "limit %d: a new order inside the old ones" % limit)
                log("limit %d: %d pages, %d orders (%d arrived meanwhile)" % (limit, pages, len(seen), len(extra)))
        finally:
            stop.set()
            th.join(timeout=30)
        check(extra, "no order arrived while paging")

        log("as_of along an order's history")
        u2 = uid("u2")
        expect(cl.post("/api/users", {"user_id": u2, "name": "Trav"}), 201)
        hist = []  # (position, status, version)

        def noise():
            expect(cl.post("/api/users/%s/deposits" % u2, {"amount_cents": 1000}), 200)

        noise()
        before = c.head()
        r = expect(cl.post("/api/orders", {"user_id": u2, "items": [{"item_id": item, "quantity": 3}]}), 201)
        o = r.json["order_id"]
        hist.append((r.position, "created", 1))
        noise()
        for step, st in (("pay", "paid"), ("ship", "shipped"), ("deliver", "delivered")):
            r = expect(cl.post("/api/orders/%s/%s" % (o, step), {}), 200)
            hist.append((r.position, st, r.json["version"]))
            noise()
        r = expect(cl.post("/api/orders", {"user_id": u2, "items": [{"item_id": item, "quantity": 1}]}), 201)
        o2 = r.json["order_id"]
        hist2 = [(r.position, "created", 1)]
        for step, st in (("pay", "paid"), ("cancel", "cancelled")):
            noise()
            r = expect(cl.post("/api/orders/%s/%s" % (o2, step), {}), 200)
            hist2.append((r.position, st, r.json["version"]))
        head = c.head()
        c.wait_caught_up(head)
        for oid, h in ((o, hist), (o2, hist2)):
            expect(cl.get("/api/orders/%s?as_of=%d" % (oid, h[0][0] - 1)), 404, "not_found",
                   what="as_of before the order existed")
            for i, (p, st, ver) in enumerate(h):
                nxt = h[i + 1][0] if i + 1 < len(h) else head + 1
                for q in sorted({p, nxt - 1}):  # at the event, and just before the next one
                    j = expect(cl.get("/api/orders/%s?as_of=%d" % (oid, q)), 200, what="as_of=%d" % q).json
                    check(j["status"] == st and j["version"] == ver,
                          "%s as_of=%d: status %s version %r, expected %s %d" % (oid, q, j["status"], j["version"], st, ver))
                    check(j["order_id"] == oid and j["user_id"] == u2, "as_of answer %r" % j)
            cur = expect(cl.get("/api/orders/%s" % oid), 200).json
            last = expect(cl.get("/api/orders/%s?as_of=%d" % (oid, head)), 200).json
            check(cur == last, "as_of=head differs from the current view:\n %r\n %r" % (last, cur))
        check(before < hist[0][0], "positions")
        ev = expect(cl.get("/api/orders/%s/events" % o), 200).json["events"]
        check([(e["position"], e["version"]) for e in ev] == [(p, v) for p, _, v in hist],
              "order events %r" % [(e["position"], e["version"]) for e in ev])
        check([e["type"] for e in ev] == ["OrderCreated", "PaymentProcessed", "OrderShipped", "OrderDelivered"],
              "event types %r" % [e["type"] for e in ev])


if __name__ == "__main__":
    run(main, budget=200)
