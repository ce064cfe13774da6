#!/usr/bin/env python3
"""Serializability under concurrency: 200 concurrent CreateOrder of quantity 1 on an
item with 50 in stock over 4 command workers: exactly 50 x 201 and 150 x 409
insufficient_stock, and the log holds exactly 50 OrderCreated for it; 100 concurrent pays
against a wallet that covers 10: exactly 10 succeed, 90 get 409 insufficient_funds, and the
wallet never goes below zero (every PaymentProcessed's balance after is >= 0, and the final
balance is what the 10 payments imply)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, parallel, run, uid  # noqa: E402


def main():
    with Cluster("races", workers=4) as c:
        cl = c.client()
        u, item = uid("u"), uid("item")
        expect(cl.post("/api/users", {"user_id": u, "name": "Racer"}), 201, what="register")
        expect(cl.post("/api/users/%s/deposits" % u, {"amount_cents": 10 * 700}), 200, what="deposit")
        expect(cl.post("/api/items", {"item_id": item, "name": "Rare", "category": "c", "price_cents": 700}), 201)
        expect(cl.post("/api/items/%s/restock" % item, {"quantity": 50}), 200, what="restock")

        log("200 concurrent CreateOrder on 50 in stock")

        def create(_):
            k = c.client()
            try:
                r = k.post("/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": 1}]})
                return r.status, (r.json.get("code") if r.status != 201 else r.json["order_id"])
            finally:
                k.close()

        res = parallel(create, [(i,) for i in range(200)])
        created = [x for s, x in res if s == 201]
        short = [x for s, x in res if s == 409 and x == "insufficient_stock"]
        other = [(s, x) for s, x in res if not (s == 201 or (s == 409 and x == "insufficient_stock"))]
        check(not other, "unexpected answers: %r" % other[:10])
        check(len(created) == 50 and len(short) == 150,
              "expected 50 x 201 and 150 x 409, got %d and %d" % (len(created), len(short)))
        check(len(set(created)) == 50, "order ids are not distinct")
        events = c.dump()
        oc = [e for e in events if e["type"] == "OrderCreated"
              and any(l["item_id"] == item for l in e["data"]["lines"])]
        check(len(oc) == 50, "log holds %d OrderCreated, expected 50" % len(oc))
        check(sorted(e["data"]["order_id"] for e in oc) == sorted(created), "logged orders != acknowledged orders")
        r = expect(cl.post("/api/items/%s/restock" % item, {"quantity": 1}), 200, what="restock")
        check(r.json["available"] == 1, "available after selling out and restocking 1: %r" % r.json)

        log("100 concurrent pays against a wallet covering 10")
        # 100 orders of one item at 700: the wallet (7000) covers exactly 10.
        expect(cl.post("/api/items/%s/restock" % item, {"quantity": 99}), 200, what="restock")
        orders = created + [expect(cl.post("/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": 1}]}),
                                   201, what="create").json["order_id"] for _ in range(50)]
        check(len(orders) == 100, "100 orders")

        def pay(o):
            k = c.client()
            try:
                r = k.post("/api/orders/%s/pay" % o, {})
                return r.status, (r.json.get("code") if r.status != 200 else r.json["status"])
            finally:
                k.close()

        res = parallel(pay, [(o,) for o in orders])
        paid = [x for s, x in res if s == 200]
        broke = [x for s, x in res if s == 409 and x == "insufficient_funds"]
        check(len(paid) == 10 and len(broke) == 90,
              "expected 10 paid and 90 insufficient_funds, got %d, %d; others %r"
              % (len(paid), len(broke), [r for r in res if r[0] not in (200, 409)][:5]))
        events = c.dump()
        pays = [e for e in events if e["type"] == "PaymentProcessed" and e["data"]["user_id"] == u]
        check(len(pays) == 10, "log holds %d PaymentProcessed, expected 10" % len(pays))
        check(all(e["data"]["balance_cents"] >= 0 for e in pays),
              "a payment left the wallet negative: %r" % [e["data"]["balance_cents"] for e in pays])
        check(sorted(e["data"]["balance_cents"] for e in pays) == [700 * k for k in range(10)],
              "balances after each payment: %r" % sorted(e["data"]["balance_cents"] for e in pays))
        r = expect(cl.post("/api/users/%s/deposits" % u, {"amount_cents": 1}), 200, what="deposit")
        check(r.json["balance_cents"] == 1, "wallet after 10 payments of 700 from 7000, +1: %r" % r.json)
        c.verify()


if __name__ == "__main__":
    run(main, budget=180)
