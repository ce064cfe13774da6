#!/usr/bin/env python3
"""Every command's success path and every error a command can produce (API.md sections 3, 4):
status, problem `code` and content type, Log-Position, ETag, and that a failed command appends
nothing (the log head, read with eventfoldctl status, is unchanged). Also 405 with Allow, 413
(from nginx and from the program itself), 415, 412 with a stale If-Match, and requests that
reach the wrong program directly over FastCGI (section 8)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Cluster, check, expect, fcgi_params, fcgi_request, log, run, soft_check, uid)  # noqa: E402


def main():
    with Cluster("commands", workers=2) as c:
        cl = c.client()
        state = {"head": c.head(), "appended": 0}
        check(state["head"] == 0, "a fresh log has head 0, got %d" % state["head"])

        def ok(method, path, body, status, headers=None, what=None):
            """A command that must succeed and append exactly one event."""
            what = what or "%s %s" % (method, path)
            r = cl.request(method, path, body=body, headers=headers)
            expect(r, status, what=what)
            check(r.ctype == "application/json", "%s: Content-Type %r" % (what, r.header("Content-Type")))
            j = r.json
            state["head"] += 1
            check(j.get("position") == state["head"],
                  "%s: position %r, expected %d (one event per command)" % (what, j.get("position"), state["head"]))
            check(r.position == state["head"], "%s: Log-Position %r != %d" % (what, r.position, state["head"]))
            check(r.header("ETag") == '"%d"' % j["version"],
                  "%s: ETag %r for version %r" % (what, r.header("ETag"), j.get("version")))
            return j

        def fail(method, path, body, status, code, headers=None, ctype="application/json", field=None):
            """A command that must fail with (status, code) and append nothing."""
            what = "%s %s %r" % (method, path, body if not isinstance(body, bytes) or len(body) < 80 else "<%d bytes>" % len(body))
            r = cl.request(method, path, body=body, headers=headers, ctype=ctype)
            expect(r, status, code, what=what)
            soft_check(r.header("Log-Position") is not None or status == 413,
                  "%s: no Log-Position header on an /api/ answer" % what)
            if field is not None:
                errs = r.json.get("errors")
                check(isinstance(errs, list) and errs, "%s: validation_failed without errors list: %r" % (what, r.json))
                fields = [e.get("field") for e in errs]
                check(any(f is not None and field in f for f in fields),
                      "%s: errors %r do not name field %r" % (what, errs, field))
                for e in errs:
                    check(isinstance(e.get("message"), str), "%s: error without message: %r" % (what, e))
            head = c.head()
            check(head == state["head"], "%s: log head moved from %d to %d on a failed command"
                  % (what, state["head"], head))
            return r

        u, u2, item, item2 = uid("u"), uid("u2"), uid("item"), uid("item2")

        log("success paths")
        j = ok("POST", "/api/users", {"user_id": u, "name": "Ann", "email": "ann@example.com"}, 201)
        check(j["user_id"] == u and j["version"] == 1, "register: %r" % j)
        ok("POST", "/api/users", {"user_id": u2, "name": "Bob"}, 201, what="register without email")
        j = ok("POST", "/api/users/%s/deposits" % u, {"amount_cents": 5000}, 200)
        check(j == {"user_id": u, "balance_cents": 5000, "version": 2, "position": state["head"]},
              "deposit answer %r" % j)
        j = ok("POST", "/api/items", {"item_id": item, "name": "Mug", "category": "kitchen", "price_cents": 250}, 201)
        check(j["item_id"] == item and j["version"] == 1, "add item: %r" % j)
        ok("POST", "/api/items", {"item_id": item2, "name": "Pen", "category": "office", "price_cents": 1500}, 201)
        j = ok("POST", "/api/items/%s/restock" % item, {"quantity": 10}, 200)
        check(j["available"] == 10 and j["version"] == 2, "restock: %r" % j)
        ok("POST", "/api/items/%s/restock" % item2, {"quantity": 3}, 200)

        j = ok("POST", "/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": 2}]}, 201)
        check(j["status"] == "created" and j["amount_cents"] == 500 and j["version"] == 1, "create: %r" % j)
        o1 = j["order_id"]
        check(isinstance(o1, str) and o1, "generated order id %r" % o1)
        o2 = uid("order")
        j = ok("POST", "/api/orders", {"user_id": u, "order_id": o2,
                                       "items": [{"item_id": item, "quantity": 1}, {"item_id": item2, "quantity": 1}]}, 201)
        check(j["order_id"] == o2 and j["amount_cents"] == 1750, "create with id: %r" % j)
        j = ok("POST", "/api/items/%s/restock" % item, {"quantity": 1}, 200)
        check(j["available"] == 10 - 3 + 1, "restock after reservations: available %r" % j)

        j = ok("POST", "/api/orders/%s/pay" % o1, {}, 200)
        check(j["status"] == "paid" and j["version"] == 2 and j["order_id"] == o1, "pay: %r" % j)
        j = ok("POST", "/api/orders/%s/ship" % o1, {}, 200)
        check(j["status"] == "shipped" and j["version"] == 3, "ship: %r" % j)
        j = ok("POST", "/api/orders/%s/deliver" % o1, {}, 200)
        check(j["status"] == "delivered" and j["version"] == 4, "deliver: %r" % j)
        ok("POST", "/api/orders/%s/pay" % o2, {}, 200)
        j = ok("POST", "/api/orders/%s/cancel" % o2, {"reason": "changed mind"}, 200)
        check(j["status"] == "cancelled" and j["version"] == 3, "cancel paid: %r" % j)
        j = ok("POST", "/api/users/%s/deposits" % u, {"amount_cents": 1}, 200)
        check(j["balance_cents"] == 5000 - 500 + 1, "wallet after pay, pay+refund: %r" % j)
        j = ok("POST", "/api/items/%s/restock" % item, {"quantity": 1}, 200)
        check(j["available"] == 10 - 2 + 1 + 1, "cancel released 1, shipped 2 sold: %r" % j)
        j = ok("POST", "/api/orders", {"user_id": u2, "items": [{"item_id": item2, "quantity": 1}]}, 201)
        o3 = j["order_id"]
        j = ok("POST", "/api/orders/%s/cancel" % o3, {}, 200, what="cancel created without reason")
        check(j["status"] == "cancelled" and j["version"] == 2, "cancel created: %r" % j)
        j = ok("POST", "/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": 1}]}, 201)
        o4 = j["order_id"]

        log("optimistic concurrency")
        j = ok("POST", "/api/users/%s/deposits" % u2, {"amount_cents": 100}, 200, headers={"If-Match": '"1"'})
        check(j["version"] == 2, "deposit with matching If-Match: %r" % j)
        fail("POST", "/api/users/%s/deposits" % u2, {"amount_cents": 100}, 412, "version_mismatch",
             headers={"If-Match": '"1"'})
        fail("POST", "/api/orders/%s/pay" % o4, {}, 412, "version_mismatch", headers={"If-Match": '"7"'})
        ok("POST", "/api/orders/%s/pay" % o4, {}, 200, headers={"If-Match": '"1"'})

        log("400 invalid_json")
        for body in (b"{", b"", b"nul", b'{"user_id": "x",}', b"[1, 2", b'{"a" 1}'):
            fail("POST", "/api/users", body, 400, "invalid_json")

        log("400 validation_failed")
        V = "validation_failed"
        fail("POST", "/api/users", {"name": "x"}, 400, V, field="user_id")
        fail("POST", "/api/users", {"user_id": uid("v")}, 400, V, field="name")
        fail("POST", "/api/users", {"user_id": 7, "name": "x"}, 400, V, field="user_id")
        fail("POST", "/api/users", {"user_id": uid("v"), "name": "x", "extra": 1}, 400, V, field="extra")
        fail("POST", "/api/users", {"user_id": "-bad", "name": "x"}, 400, V, field="user_id")
        fail("POST", "/api/users", {"user_id": "a" * 65, "name": "x"}, 400, V, field="user_id")
        fail("POST", "/api/users", {"user_id": "sp ace", "name": "x"}, 400, V, field="user_id")
        fail("POST", "/api/users", {"user_id": uid("v"), "name": "n" * 257}, 400, V, field="name")
        fail("POST", "/api/users", {"user_id": uid("v"), "name": "x", "email": 5}, 400, V, field="email")
        fail("POST", "/api/users", [1], 400, V)
        for amt in (0, -5, "10", 1.5, None):
            fail("POST", "/api/users/%s/deposits" % u, {"amount_cents": amt}, 400, V, field="amount_cents")
        fail("POST", "/api/users/%s/deposits" % u, {}, 400, V, field="amount_cents")
        fail("POST", "/api/items", {"item_id": uid("i"), "name": "x", "category": "c", "price_cents": 0}, 400, V,
             field="price_cents")
        fail("POST", "/api/items", {"item_id": uid("i"), "name": "x", "price_cents": 5}, 400, V, field="category")
        for q in (0, 1000001, -1):
            fail("POST", "/api/items/%s/restock" % item, {"quantity": q}, 400, V, field="quantity")
        for q in (0, 1001):
            fail("POST", "/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": q}]}, 400, V,
                 field="quantity")
        fail("POST", "/api/orders", {"user_id": u}, 400, V, field="items")
        fail("POST", "/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": 1}] * 2}, 400, V)
        many = [{"item_id": "i%d" % k, "quantity": 1} for k in range(101)]
        fail("POST", "/api/orders", {"user_id": u, "items": many}, 400, V, field="items")
        fail("POST", "/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": 1, "x": 1}]}, 400, V)
        fail("POST", "/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": 1}], "order_id": "!"},
             400, V, field="order_id")
        fail("POST", "/api/orders/%s/cancel" % o4, {"reason": 5}, 400, V, field="reason")
        fail("POST", "/api/orders/%s/pay" % o4, {"x": 1}, 400, V, field="x")
        # Nesting past 32 levels is a 400; the contract does not say which of the two codes.
        deep = "[" * 33 + "]" * 33
        r = cl.post("/api/users", ('{"user_id": "dd", "name": %s}' % deep).encode())
        check(r.status == 400 and r.ctype == "application/problem+json"
              and r.json.get("code") in ("invalid_json", "validation_failed"), "33-deep nesting: %r" % r)
        check(c.head() == state["head"], "33-deep nesting appended")

        log("404 not_found")
        nu, ni, no = uid("nouser"), uid("noitem"), uid("noorder")
        for path, body in (("/api/users/%s/deposits" % nu, {"amount_cents": 5}),
                           ("/api/items/%s/restock" % ni, {"quantity": 1}),
                           ("/api/orders", {"user_id": nu, "items": [{"item_id": item, "quantity": 1}]}),
                           ("/api/orders", {"user_id": u, "items": [{"item_id": ni, "quantity": 1}]}),
                           ("/api/orders/%s/pay" % no, {}), ("/api/orders/%s/ship" % no, {}),
                           ("/api/orders/%s/deliver" % no, {}), ("/api/orders/%s/cancel" % no, {})):
            r = fail("POST", path, body, 404, "not_found")
            check(nu in r.json["detail"] or ni in r.json["detail"] or no in r.json["detail"],
                  "404 detail should say which resource: %r" % r.json)

        log("409 already_exists / insufficient_* / invalid_transition")
        fail("POST", "/api/users", {"user_id": u, "name": "again"}, 409, "already_exists")
        fail("POST", "/api/items", {"item_id": item, "name": "again", "category": "c", "price_cents": 1}, 409,
             "already_exists")
        fail("POST", "/api/orders", {"user_id": u, "order_id": o1, "items": [{"item_id": item, "quantity": 1}]},
             409, "already_exists")
        fail("POST", "/api/orders", {"user_id": u, "items": [{"item_id": item2, "quantity": 1000}]}, 409,
             "insufficient_stock")
        j = ok("POST", "/api/orders", {"user_id": u2, "items": [{"item_id": item2, "quantity": 1}]}, 201)
        poor = j["order_id"]
        fail("POST", "/api/orders/%s/pay" % poor, {}, 409, "insufficient_funds")  # 100 < 1500
        fail("POST", "/api/orders/%s/ship" % poor, {}, 409, "invalid_transition")     # created
        fail("POST", "/api/orders/%s/deliver" % poor, {}, 409, "invalid_transition")  # created
        fail("POST", "/api/orders/%s/pay" % o3, {}, 409, "invalid_transition")        # cancelled
        fail("POST", "/api/orders/%s/cancel" % o3, {}, 409, "invalid_transition")     # cancelled
        fail("POST", "/api/orders/%s/pay" % o1, {}, 409, "invalid_transition")        # delivered
        fail("POST", "/api/orders/%s/cancel" % o1, {}, 409, "invalid_transition")     # delivered
        fail("POST", "/api/orders/%s/deliver" % o4, {}, 409, "invalid_transition")    # paid
        ok("POST", "/api/orders/%s/ship" % o4, {}, 200)
        fail("POST", "/api/orders/%s/cancel" % o4, {}, 409, "invalid_transition")     # shipped
        fail("POST", "/api/orders/%s/pay" % o4, {}, 409, "invalid_transition")        # shipped

        log("415, 413, 405, 422")
        body = {"user_id": uid("ct"), "name": "x"}
        fail("POST", "/api/users", body, 415, "unsupported_media_type", ctype="text/plain")
        fail("POST", "/api/users", body, 415, "unsupported_media_type", ctype=None)
        fail("POST", "/api/users", body, 415, "unsupported_media_type", ctype="application/x-www-form-urlencoded")
        ok("POST", "/api/users", body, 201, headers={"Content-Type": "application/json; charset=utf-8"},
           what="JSON with a charset parameter")
        big = b'{"user_id": "big", "name": "' + b"x" * (1 << 20) + b'"}'
        fail("POST", "/api/users", big, 413, "payload_too_large")
        for method, path in (("PUT", "/api/users"), ("DELETE", "/api/orders/%s" % o1), ("PATCH", "/api/items/%s" % item)):
            r = fail(method, path, {} if method != "DELETE" else None, 405, "method_not_allowed")
            check(r.header("Allow"), "%s %s: 405 without Allow" % (method, path))
        key = uid("key")
        j = ok("POST", "/api/users", {"user_id": uid("idem"), "name": "K"}, 201, headers={"Idempotency-Key": key})
        fail("POST", "/api/users", {"user_id": uid("idem2"), "name": "K"}, 422, "idempotency_key_reused",
             headers={"Idempotency-Key": key})

        log("requests that reach the wrong program, and the programs' own body limit (FastCGI)")
        r = fcgi_request(c.cmd_sock, fcgi_params("GET", "/api/orders/%s" % o1))
        expect(r, 405, "method_not_allowed", what="GET on the command socket")
        check("POST" in (r.header("Allow") or ""), "command 405 Allow %r" % r.header("Allow"))
        r = fcgi_request(c.query_sock, fcgi_params("POST", "/api/users", ctype="application/json", length=2), b"{}")
        expect(r, 405, "method_not_allowed", what="POST on the query socket")
        check("GET" in (r.header("Allow") or ""), "query 405 Allow %r" % r.header("Allow"))
        big = b'{"user_id": "big", "name": "' + b"x" * 70000 + b'"}'
        r = fcgi_request(c.cmd_sock, fcgi_params("POST", "/api/users", ctype="application/json", length=len(big)), big)
        expect(r, 413, "payload_too_large", what="70 kB body straight to the command socket")
        check(c.head() == state["head"], "log head moved on the wrong-socket requests")

        log("the log holds exactly the successful commands")
        events = c.dump()
        check(len(events) == state["head"], "dump has %d events, expected %d" % (len(events), state["head"]))
        check([e["position"] for e in events] == list(range(1, state["head"] + 1)), "positions are not dense")
        c.verify()


if __name__ == "__main__":
    run(main, budget=120)
