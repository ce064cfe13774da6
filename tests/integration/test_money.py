#!/usr/bin/env python3
"""Money at the edges of 64 bits (API.md section 6): amounts up to INT64_MAX are accepted
where the rules allow them, every read-model total stays exact, and a command that could push
a derived total out of range (here: the sum of all deposits, which bounds them all; see
doc/events.md, "Money") is refused with 400 validation_failed naming the field. The tailer
folds it all without a dead letter and keeps running (under --enable-sanitizers too)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, run  # noqa: E402

MAX = 2**63 - 1


def field_error(r, field):
    errs = r.json.get("errors") or []
    return any(e.get("field") == field for e in errs)


def main():
    with Cluster("money", workers=2) as c:
        cl = c.client()
        for u in ("rich", "poor"):
            expect(cl.post("/api/users", {"user_id": u, "name": u}), 201, what="register " + u)
        expect(cl.post("/api/users/rich/deposits", {"amount_cents": MAX}), 200, what="deposit INT64_MAX")
        r = expect(cl.post("/api/users/poor/deposits", {"amount_cents": 1}), 400, "validation_failed",
                   what="a deposit past the sum of all deposits")
        check(field_error(r, "amount_cents"), "no errors entry for amount_cents: %r" % r.json)

        expect(cl.post("/api/items", {"item_id": "gold", "name": "Gold", "category": "metal",
                                      "price_cents": MAX}), 201, what="add a maximal item")
        expect(cl.post("/api/items/gold/restock", {"quantity": 1000000}), 200, what="restock")
        r = expect(cl.post("/api/orders", {"user_id": "rich", "items": [{"item_id": "gold", "quantity": 2}]}),
                   400, "validation_failed", what="an order amount past INT64_MAX")
        check(field_error(r, "items"), "no errors entry for items: %r" % r.json)

        log("a maximal order paid, cancelled, then ordered and paid again the same day")
        expect(cl.post("/api/orders", {"user_id": "rich", "order_id": "big1",
                                       "items": [{"item_id": "gold", "quantity": 1}]}), 201, what="order 1")
        expect(cl.post("/api/orders/big1/pay", {}), 200, what="pay 1")
        expect(cl.post("/api/orders/big1/cancel", {}), 200, what="cancel 1 (refund)")
        expect(cl.post("/api/orders", {"user_id": "rich", "order_id": "big2",
                                       "items": [{"item_id": "gold", "quantity": 1}]}), 201, what="order 2")
        r = expect(cl.post("/api/orders/big2/pay", {}), 200, what="pay 2")
        pos = r.position

        hdr = {"Min-Position": str(pos)}
        u = expect(cl.get("/api/users/rich", headers=hdr), 200, what="user").json
        check(u["wallet_balance_cents"] == 0 and u["total_spent_cents"] == MAX and
              u["avg_order_value_cents"] == MAX and u["vip"] is True and u["order_count"] == 1,
              "user totals: %r" % u)
        it = expect(cl.get("/api/items/gold", headers=hdr), 200, what="item").json
        check(it["available"] == 999999 and it["reserved"] == 1 and it["sold"] == 0, "item: %r" % it)
        d = expect(cl.get("/api/stats/daily?from=2000-01-01&to=2100-01-01", headers=hdr), 200,
                   what="daily").json
        # Paid MAX, refunded MAX, paid MAX: MAX in all, on one day unless midnight fell between.
        check(sum(x["revenue_cents"] for x in d["days"]) == MAX and
              sum(x["orders_paid"] for x in d["days"]) == 2 and
              sum(x["orders_cancelled"] for x in d["days"]) == 1, "daily: %r" % d)
        expect(cl.post("/api/users/rich/deposits", {"amount_cents": 1}), 400, "validation_failed",
               what="spending makes no room in the sum of deposits")

        st = c.wait_caught_up(pos)
        check(st["dead_letters"] == 0, "dead letters: %r" % st)
        check(c.running("tailer"), "the tailer died")
        c.verify()


if __name__ == "__main__":
    run(main, budget=120)
