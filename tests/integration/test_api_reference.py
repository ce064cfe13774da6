#!/usr/bin/env python3
"""doc/api.md's claims, one by one, through nginx: every route, and every status and problem
code that can be provoked without breaking the machine (full disks and 10000 waiting clients
are other tests' business), answer as the reference says. The harness checks each answer
against doc/openapi.yaml on top (status declared for the operation, headers, body schema), so
this test also makes sure that every operation and most declared answers are met at least once
in `make check`; it fails if one of them was not."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, check, expect, log, run, uid  # noqa: E402


def main():
    with Cluster("apiref", workers=2) as c:
        cl = c.client()
        seen = set()  # (operation label, status) met

        def req(method, path, status, code=None, body=None, headers=None, ctype="application/json", what=""):
            r = cl.request(method, path, body=body, headers=headers, ctype=ctype)
            expect(r, status, code, what=what or "%s %s" % (method, path))
            _, label = harness.answer_checker().responses_for(method, path.split("?")[0])
            seen.add((label.split(" (")[1].rstrip(")") if " (" in label else label, status))
            return r

        u, u2, item, o = uid("ref-u"), uid("ref-u2"), uid("ref-i"), uid("ref-o")
        log("users")
        r = req("POST", "/api/users", 201, body={"user_id": u, "name": "Ref", "email": None})
        check(r.header("ETag") == '"1"' and r.json == {"user_id": u, "version": 1, "position": r.position},
              "register: %r" % r)
        req("POST", "/api/users", 409, "already_exists", body={"user_id": u, "name": "Again"})
        req("POST", "/api/users", 412, "version_mismatch", body={"user_id": u, "name": "Again"},
            headers={"If-Match": '"0"'}, what="If-Match 0 on a taken id")
        req("POST", "/api/users", 201, body={"user_id": u2, "name": "Two", "email": ""}, headers={"If-Match": "0"},
            what="If-Match 0 (unquoted) on a free id")
        req("POST", "/api/users", 400, "validation_failed", body={"user_id": "x", "name": "n"},
            headers={"If-Match": "three"})
        req("POST", "/api/users", 400, "validation_failed", body={"user_id": "x", "name": "n"},
            headers={"Idempotency-Key": "k" * 129})
        r = req("POST", "/api/users", 400, "validation_failed", body={"user_id": "-x", "name": "", "zip": 1})
        check({e["field"] for e in r.json["errors"]} == {"user_id", "name", "zip"}, "errors %r" % r.json)
        req("POST", "/api/users", 400, "invalid_json", body=b"")
        req("POST", "/api/users", 415, "unsupported_media_type", body=b"{}", ctype="text/plain")
        req("POST", "/api/users/%s/deposits" % u, 200, body={"amount_cents": 5000}, headers={"If-Match": '"1"'})
        req("POST", "/api/users/%s/deposits" % u, 412, "version_mismatch", body={"amount_cents": 1},
            headers={"If-Match": 'W/"2"'}, what="a weak tag never matches")
        req("POST", "/api/users/%s/deposits" % u, 400, "validation_failed", body={"amount_cents": 0})
        req("POST", "/api/users/%s/deposits" % u, 400, "validation_failed",
            body={"amount_cents": 9223372036854775807}, what="a deposit that would overflow the balance")
        req("POST", "/api/users/nobody-%s/deposits" % u, 404, "not_found", body={"amount_cents": 1})
        req("POST", "/api/users/%20x/deposits", 400, "validation_failed", body={"amount_cents": 1})

        log("items")
        req("POST", "/api/items", 201, body={"item_id": item, "name": "Mug", "category": "kitchen", "price_cents": 500})
        req("POST", "/api/items", 409, "already_exists",
            body={"item_id": item, "name": "Mug", "category": "kitchen", "price_cents": 500})
        req("POST", "/api/items/%s/restock" % item, 200, body={"quantity": 10})
        req("POST", "/api/items/%s/restock" % item, 400, "validation_failed", body={"quantity": 1000001})
        req("POST", "/api/items/nothing-%s/restock" % item, 404, "not_found", body={"quantity": 1})

        log("orders")
        line = [{"item_id": item, "quantity": 2}]
        r = req("POST", "/api/orders", 201, body={"order_id": o, "user_id": u, "items": line})
        check(r.json["amount_cents"] == 1000 and r.json["status"] == "created", "order %r" % r.json)
        req("POST", "/api/orders", 201, body={"user_id": u, "items": [{"item_id": item, "quantity": 1}]},
            what="an order without an id")
        req("POST", "/api/orders", 409, "already_exists", body={"order_id": o, "user_id": u, "items": line})
        req("POST", "/api/orders", 409, "insufficient_stock",
            body={"user_id": u, "items": [{"item_id": item, "quantity": 1000}]})
        req("POST", "/api/orders", 404, "not_found", body={"user_id": "ghost-" + u, "items": line})
        req("POST", "/api/orders", 400, "validation_failed", body={"user_id": u, "items": line + line},
            what="the same item twice")
        req("POST", "/api/orders", 400, "validation_failed",
            body={"user_id": u, "items": [{"item_id": "i%d" % i, "quantity": 1} for i in range(101)]},
            what="101 lines")
        req("POST", "/api/orders/%s/ship" % o, 409, "invalid_transition", body={})
        big = uid("ref-big")
        req("POST", "/api/orders", 201, body={"order_id": big, "user_id": u2, "items": line})
        req("POST", "/api/orders/%s/pay" % big, 409, "insufficient_funds", body={})
        req("POST", "/api/orders/%s/pay" % o, 400, "validation_failed", body={"extra": 1})
        req("POST", "/api/orders/%s/pay" % o, 200, body={})
        req("POST", "/api/orders/%s/ship" % o, 200, body={})
        req("POST", "/api/orders/%s/cancel" % o, 409, "invalid_transition", body={})
        w = req("POST", "/api/orders/%s/deliver" % o, 200, body={})
        req("POST", "/api/orders/%s/cancel" % big, 200, body={"reason": "too dear"})
        req("POST", "/api/orders/%s/deliver" % ("ghost-" + o), 404, "not_found", body={})
        k = "ref-key-" + u
        first = req("POST", "/api/users/%s/deposits" % u, 200, body={"amount_cents": 3}, headers={"Idempotency-Key": k})
        again = req("POST", "/api/users/%s/deposits" % u, 200, body={"amount_cents": 3}, headers={"Idempotency-Key": k})
        check((again.body, again.position, again.header("ETag")) == (first.body, first.position, first.header("ETag")),
              "idempotent repeat %r vs %r" % (again, first))
        req("POST", "/api/users/%s/deposits" % u, 422, "idempotency_key_reused", body={"amount_cents": 4},
            headers={"Idempotency-Key": k})

        log("queries")
        mp = {"Min-Position": str(again.position)}
        r = req("GET", "/api/orders/%s" % o, 200, headers=mp)
        check(r.header("ETag") == '"4"' and r.json["status"] == "delivered", "order %r" % r)
        r = req("GET", "/api/orders/%s?as_of=%d" % (o, w.position - 1), 200)
        check(r.json["status"] == "shipped" and r.header("ETag") == '"3"', "as_of %r" % r)
        req("GET", "/api/orders/%s?as_of=1" % o, 404, "not_found")
        req("GET", "/api/orders/%s?as_of=x" % o, 400, "validation_failed")
        r = req("GET", "/api/orders/%s/events" % o, 200)
        check([e["type"] for e in r.json["events"]] == ["OrderCreated", "PaymentProcessed", "OrderShipped",
                                                       "OrderDelivered"], "events %r" % r.json)
        req("GET", "/api/orders/ghost-%s/events" % o, 404, "not_found")
        r = req("GET", "/api/users/%s" % u, 200, headers=mp)
        check(r.json["order_count"] == 2 and r.json["total_spent_cents"] == 1000 and r.json["vip"] is False,
              "user %r" % r.json)
        req("GET", "/api/users/nobody-%s" % u, 404, "not_found")
        req("GET", "/api/users/%s" % u, 400, "validation_failed", headers={"Min-Position": "-1"})
        req("GET", "/api/users/%s?min_position=1" % u, 400, "validation_failed", headers={"Prefer": "wait=x"})
        r = req("GET", "/api/users/%s" % u, 503, "not_caught_up",
                headers={"Min-Position": str(again.position + 1000), "Prefer": "wait=0"})
        check(r.header("Retry-After") == "1", "Retry-After %r" % r.header("Retry-After"))
        r = req("GET", "/api/users/%s/orders?limit=1" % u, 200)
        check(len(r.json["orders"]) == 1 and r.json["next_cursor"], "page 1 %r" % r.json)
        r = req("GET", "/api/users/%s/orders?limit=1&cursor=%s" % (u, r.json["next_cursor"]), 200)
        check(len(r.json["orders"]) == 1 and r.json["next_cursor"] is None, "page 2 %r" % r.json)
        req("GET", "/api/users/%s/orders?cursor=0" % u, 400, "validation_failed")
        req("GET", "/api/users/nobody-%s/orders" % u, 404, "not_found")
        r = req("GET", "/api/items/%s" % item, 200)
        check((r.json["available"], r.json["reserved"], r.json["sold"]) == (7, 1, 2), "item %r" % r.json)
        req("GET", "/api/items/%s" % ("i" * 65), 400, "validation_failed")
        req("GET", "/api/items/nothing-%s" % item, 404, "not_found")
        r = req("GET", "/api/stats/daily", 200)
        check(r.json["days"] and r.json["days"][-1]["orders_created"] >= 3, "daily %r" % r.json)
        req("GET", "/api/stats/daily?from=2026-02-30", 400, "validation_failed")
        req("GET", "/api/stats/daily?from=2026-02-02&to=2026-02-01", 400, "validation_failed")
        r = req("GET", "/api/events?after=0&limit=2", 200)
        check(len(r.json["events"]) == 2 and r.json["last_position"] == 2, "events %r" % r.json)
        r = req("GET", "/api/events?after=%d" % (again.position + 5), 200, headers={"Prefer": "wait=0"})
        check(r.json == {"events": [], "last_position": again.position + 5}, "empty page %r" % r.json)
        req("GET", "/api/events?limit=1001", 400, "validation_failed")
        req("GET", "/api/status", 200)
        req("GET", "/api/status", 503, "not_caught_up", headers={"Min-Position": str(again.position + 1000),
                                                               "Prefer": "wait=0"})
        m = req("GET", "/metrics", 200)
        check(m.body.startswith(b"# HELP"), "metrics %r" % m.body[:100])
        h = req("HEAD", "/api/items/%s" % item, 200)
        check(h.body == b"", "HEAD body %r" % h.body)

        log("requests no route takes")
        r = req("DELETE", "/api/orders/%s" % o, 405, "method_not_allowed")
        check(r.header("Allow") == "POST", "Allow %r" % r.header("Allow"))
        req("POST", "/api/orders/%s" % o, 404, "not_found", body={})
        req("GET", "/api/orders/%s/pay" % o, 404, "not_found")
        req("GET", "/api/nowhere", 404, "not_found")
        r = req("POST", "/metrics", 405, "method_not_allowed", body={})
        check(r.header("Allow") == "GET, HEAD", "Allow %r" % r.header("Allow"))
        req("POST", "/api/users", 413, "payload_too_large", body=b'{"name":"' + b"x" * 70000 + b'"}')
        # Directly on the programs' sockets (API.md section 8): the wrong program says 405.
        r = harness.fcgi_request(c.cmd_sock, harness.fcgi_params("GET", "/api/users/" + u))
        check(r.status == 405 and r.header("Allow") == "POST", "GET on the command socket: %r" % r)
        r = harness.fcgi_request(c.query_sock, harness.fcgi_params("POST", "/api/users", ctype="application/json",
                                                                   length=2), b"{}")
        check(r.status == 405 and r.header("Allow") == "GET, HEAD", "POST on the query socket: %r" % r)

        log("every operation of doc/openapi.yaml was met")
        doc = harness.answer_checker().doc
        ops = {op["operationId"] for item_ in doc["paths"].values() for op in item_.values() if isinstance(op, dict)
               and "operationId" in op}
        met = {label for label, _ in seen}
        check(ops <= met, "operations never called: %r" % sorted(ops - met))
        log("%d operations, %d (operation, status) pairs met" % (len(ops), len(seen)))


if __name__ == "__main__":
    run(main, budget=180)
