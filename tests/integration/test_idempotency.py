#!/usr/bin/env python3
"""Idempotency-Key (API.md section 4): the same key sent 20 times at once from different
connections gives one order and 20 identical answers (status, body, Log-Position); after the
command workers are killed and restarted the key still answers the same; the same key with
a different body or path gives 422 idempotency_key_reused; a failed request is not remembered,
so it can be sent again with the same key."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, parallel, run, uid  # noqa: E402


def main():
    with Cluster("idem", workers=4) as c:
        cl = c.client()
        u, item = uid("u"), uid("item")
        expect(cl.post("/api/users", {"user_id": u, "name": "Idem"}), 201)
        expect(cl.post("/api/items", {"item_id": item, "name": "Lamp", "category": "home", "price_cents": 990}), 201)
        expect(cl.post("/api/items/%s/restock" % item, {"quantity": 100}), 200)
        key = uid("key")
        body = {"user_id": u, "items": [{"item_id": item, "quantity": 3}]}  # no order_id: the server picks one

        log("20 concurrent requests with one key")

        def send(_):
            k = c.client()
            try:
                r = k.post("/api/orders", body, headers={"Idempotency-Key": key})
                return r.status, r.body, r.header("Log-Position"), r.header("ETag")
            finally:
                k.close()

        res = parallel(send, [(i,) for i in range(20)])
        check(len(set(res)) == 1, "answers differ: %r" % sorted(set(res))[:4])
        status, rbody, pos, _ = res[0]
        check(status == 201, "first answer %r" % (res[0],))
        events = [e for e in c.dump() if e["type"] == "OrderCreated"]
        check(len(events) == 1, "%d OrderCreated for one key" % len(events))
        check(str(events[0]["position"]) == pos, "Log-Position %s is not the order's position" % pos)

        log("restart the command workers (kill -9), the key still answers the same")
        c.restart("command")
        r = cl.post("/api/orders", body, headers={"Idempotency-Key": key})
        check((r.status, r.body, r.header("Log-Position")) == (status, rbody, pos),
              "after restart: %r, first answer %r" % (r, (status, rbody, pos)))
        check(len([e for e in c.dump() if e["type"] == "OrderCreated"]) == 1, "the repeat appended")

        log("same key, different request: 422")
        head = c.head()
        other = dict(body, items=[{"item_id": item, "quantity": 4}])
        expect(cl.post("/api/orders", other, headers={"Idempotency-Key": key}), 422, "idempotency_key_reused")
        expect(cl.post("/api/users/%s/deposits" % u, {"amount_cents": 5}, headers={"Idempotency-Key": key}),
               422, "idempotency_key_reused", what="same key, other path")
        check(c.head() == head, "a 422 appended")

        log("a failed request is not remembered")
        key2 = uid("key2")
        big = {"user_id": u, "items": [{"item_id": item, "quantity": 500}]}
        expect(cl.post("/api/orders", big, headers={"Idempotency-Key": key2}), 409, "insufficient_stock")
        expect(cl.post("/api/items/%s/restock" % item, {"quantity": 1000}), 200)
        r = expect(cl.post("/api/orders", big, headers={"Idempotency-Key": key2}), 201, what="retry after failure")
        r2 = expect(cl.post("/api/orders", big, headers={"Idempotency-Key": key2}), 201, what="repeat")
        check(r2.body == r.body and r2.position == r.position, "repeat differs: %r vs %r" % (r2, r))
        head = c.head()
        pay = cl.post("/api/orders/%s/pay" % r.json["order_id"], {}, headers={"Idempotency-Key": uid("k3")})
        expect(pay, 409, "insufficient_funds")
        check(c.head() == head, "failed pay appended")
        c.verify()


if __name__ == "__main__":
    run(main, budget=120)
