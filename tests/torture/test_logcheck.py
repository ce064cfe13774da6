#!/usr/bin/env python3
"""Self-test of logcheck.Fold, the oracle of the torture and fault tests: a clean history
gives no violation and the expected read model, and each kind of damage the torture looks
for (gap in positions, version skip, negative wallet, oversold item, illegal transition,
wrong amount, wrong refund, wrong balance) is reported. Runs in milliseconds, no programs."""

import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from logcheck import Fold  # noqa: E402


def ev(pos, stream, version, typ, **data):
    return {"position": pos, "stream": stream, "version": version, "type": typ,
            "schema_version": 1, "at": "2026-11-26T23:00:00.000Z", "data": data}


LINES = [{"item_id": "i1", "name": "Pen", "category": "office", "quantity": 2, "price_cents": 100}]
CLEAN = [
    ev(1, "user-u1", 1, "UserRegistered", user_id="u1", name="A", email=None),
    ev(2, "user-u1", 2, "FundsDeposited", user_id="u1", amount_cents=500, balance_cents=500),
    ev(3, "item-i1", 1, "ItemAdded", item_id="i1", name="Pen", category="office", price_cents=100),
    ev(4, "item-i1", 2, "ItemRestocked", item_id="i1", quantity=3, available=3),
    ev(5, "order-o1", 1, "OrderCreated", order_id="o1", user_id="u1", lines=LINES, amount_cents=200),
    ev(6, "order-o1", 2, "PaymentProcessed", order_id="o1", user_id="u1", amount_cents=200, balance_cents=300),
    ev(7, "order-o1", 3, "OrderShipped", order_id="o1"),
    ev(8, "order-o2", 1, "OrderCreated", order_id="o2", user_id="u1",
       lines=[dict(LINES[0], quantity=1)], amount_cents=100),
    ev(9, "order-o2", 2, "PaymentProcessed", order_id="o2", user_id="u1", amount_cents=100, balance_cents=200),
    ev(10, "order-o2", 3, "OrderCancelled", order_id="o2", user_id="u1", reason=None, refunded_cents=100,
       previous_status="paid"),
]


def fold(events):
    f = Fold()
    for e in events:
        f.apply(e)
    return f


def damaged(fn):
    events = copy.deepcopy(CLEAN)
    fn(events)
    return fold(events).violations


def main():
    failures = []
    f = fold(CLEAN)
    if f.violations:
        failures.append("clean history reported: %r" % f.violations)
    want_user = {"wallet_balance_cents": 300, "order_count": 1, "total_spent_cents": 200,
                 "avg_order_value_cents": 200, "vip": False}
    if f.expected_user("u1") != want_user:
        failures.append("expected_user %r" % f.expected_user("u1"))
    if f.expected_item("i1") != {"price_cents": 100, "available": 1, "reserved": 0, "sold": 2}:
        failures.append("expected_item %r" % f.expected_item("i1"))
    if f.expected_order("o2")["status"] != "cancelled":
        failures.append("expected_order %r" % f.expected_order("o2"))

    cases = {
        "position gap": lambda e: e.__delitem__(3),
        "version skip": lambda e: e[1].__setitem__("version", 3),
        "negative wallet": lambda e: e[1]["data"].update(amount_cents=100, balance_cents=100),
        "oversold item": lambda e: e[3]["data"].update(quantity=1, available=1),
        "illegal transition": lambda e: e[6].__setitem__("type", "OrderDelivered"),
        "wrong amount": lambda e: e[4]["data"].__setitem__("amount_cents", 199),
        "wrong refund": lambda e: e[9]["data"].__setitem__("refunded_cents", 0),
        "wrong balance": lambda e: e[5]["data"].__setitem__("balance_cents", 301),
        "unknown type": lambda e: e[6].__setitem__("type", "OrderTeleported"),
    }
    for name, fn in cases.items():
        if not damaged(fn):
            failures.append("%s not reported" % name)
    for msg in failures:
        print("FAIL:", msg)
    print("%s: %d checks" % ("FAIL" if failures else "PASS", len(cases) + 4))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
