#!/usr/bin/env python3
"""Model check of the whole system: a seeded random sequence of at least 2 000
commands of every kind, failures included, is sent through nginx; the test predicts each
answer from its own model of the domain (model.py) and checks it, then, once the read model
has caught up, compares every user, item, order, user order list and daily stat the queries
answer with what it computed from the commands that succeeded. Event times come from the log
(GET /api/events), everything else from the test's own bookkeeping.
Seed: $EF_SEED (printed), so a failure can be replayed."""

import collections
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, run  # noqa: E402
from model import Shop, generate  # noqa: E402

N_COMMANDS = 2100


def fetch_all_events(cl, head):
    events, after = [], 0
    while after < head:
        r = expect(cl.get("/api/events?after=%d&limit=1000" % after), 200, what="GET /api/events")
        batch = r.json["events"]
        check(batch, "GET /api/events?after=%d returned nothing before the head %d" % (after, head))
        events += batch
        after = batch[-1]["position"]
        check(r.json["last_position"] == after, "last_position %r, last event %d" % (r.json["last_position"], after))
    return events


def main():
    seed = int(os.environ.get("EF_SEED", "20261126"))
    log("seed", seed)
    rnd = random.Random(seed)
    shop = Shop()
    outcomes = collections.Counter()
    with Cluster("model", workers=2) as c:
        cl = c.client()
        for i in range(N_COMMANDS):
            cmd = generate(rnd, shop)
            pred = shop.predict(cmd)
            r = cl.post(cmd["path"], cmd["body"])
            what = "command #%d %s %s %r" % (i, cmd["kind"], cmd["path"], cmd["body"])
            if pred[0] == "ok":
                expect(r, pred[1], what=what)
                bad = shop.commit(cmd, r.json, r.position)
                check(not bad, "%s: %s" % (what, "; ".join(bad)))
                check(r.position == shop.head, "%s: Log-Position %r" % (what, r.position))
                outcomes[(cmd["kind"], "ok")] += 1
            else:
                code = r.json.get("code") if r.ctype == "application/problem+json" else None
                check((r.status, code) in pred[1], "%s: got %d %s, expected one of %r"
                      % (what, r.status, code, sorted(pred[1])))
                outcomes[(cmd["kind"], code)] += 1
        log("outcomes:", dict(sorted(outcomes.items())))
        for kind in ("register", "deposit", "add_item", "restock", "create", "pay", "ship", "deliver", "cancel"):
            check(outcomes[(kind, "ok")] > 0, "no successful %s in the sequence" % kind)
        codes = {k[1] for k in outcomes}
        for code in ("not_found", "already_exists", "insufficient_stock", "insufficient_funds",
                     "invalid_transition", "validation_failed"):
            check(code in codes, "no %s failure in the sequence" % code)
        check(c.head() == shop.head, "log head %d, the model has %d events" % (c.head(), shop.head))

        log("waiting for the read model to reach", shop.head)
        c.wait_caught_up(shop.head, timeout=60)
        events = fetch_all_events(cl, shop.head)
        check([e["position"] for e in events] == list(range(1, shop.head + 1)), "event positions not dense")
        at = {e["position"]: e["at"] for e in events}
        check(all(isinstance(v, str) and v.endswith("Z") for v in at.values()),
              "event `at` is not an RFC 3339 UTC time: %r" % events[0]["at"])

        mism = []

        def compare(what, got, want):
            if got != want:
                mism.append("%s:\n   got  %r\n   want %r" % (what, got, want))

        for uid in shop.users:
            r = expect(cl.get("/api/users/%s" % uid), 200, what="GET user %s" % uid)
            check(r.position is not None and r.position >= shop.head, "GET user: Log-Position %r" % r.position)
            compare("user %s" % uid, r.json, shop.expected_user(uid, at))
            lst, cursor = [], None
            for _ in range(1000):
                q = "/api/users/%s/orders?limit=7" % uid + ("&cursor=%s" % cursor if cursor else "")
                j = expect(cl.get(q), 200, what="GET " + q).json
                lst += j["orders"]
                cursor = j["next_cursor"]
                if cursor is None:
                    break
            compare("orders of user %s" % uid, lst, shop.expected_user_orders(uid, at))
        for iid in shop.items:
            r = expect(cl.get("/api/items/%s" % iid), 200, what="GET item %s" % iid)
            compare("item %s" % iid, r.json, shop.expected_item(iid))
        for oid in shop.orders:
            r = expect(cl.get("/api/orders/%s" % oid), 200, what="GET order %s" % oid)
            compare("order %s" % oid, r.json, shop.expected_order(oid, at))
            if r.header("ETag") != '"%d"' % shop.orders[oid].version:
                mism.append("order %s: ETag %r, version %d" % (oid, r.header("ETag"), shop.orders[oid].version))
        for oid in list(shop.orders)[:: max(1, len(shop.orders) // 50)]:
            j = expect(cl.get("/api/orders/%s/events" % oid), 200, what="order events").json
            compare("events of order %s" % oid, [e["position"] for e in j["events"]], shop.orders[oid].positions)
        days = shop.expected_daily(at)
        if days:
            q = "/api/stats/daily?from=%s&to=%s" % (days[0]["date"], days[-1]["date"])
            compare("daily stats", expect(cl.get(q), 200, what=q).json["days"], days)
        expect(cl.get("/api/orders/never-created-order"), 404, "not_found")
        expect(cl.get("/api/users/never-created-user"), 404, "not_found")
        log("compared %d users, %d items, %d orders, %d days" % (len(shop.users), len(shop.items),
                                                                 len(shop.orders), len(days)))
        check(not mism, "%d read-model answers differ from the model:\n%s" % (len(mism), "\n".join(mism[:15])))


if __name__ == "__main__":
    run(main, budget=280)
