#!/usr/bin/env python3
"""Hostile input: empty body, 1 MB body, 10 000-deep nesting, invalid UTF-8, NUL
bytes, numbers past 2^63, duplicate keys, each sent to every command: each gets a 4xx
problem+json answer, no worker process dies (same worker PIDs before and after), and nothing
is appended. The query side gets malformed paths and parameters the same way."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, fcgi_params, fcgi_request, log, new_order, run, soft_check  # noqa: E402


def bodies():
    deep = b"[" * 10000 + b"]" * 10000
    deep_obj = b'{"a":' * 10000 + b"1" + b"}" * 10000
    return [
        ("empty", b""),
        ("whitespace", b"   \n"),
        ("1 MB", b'{"name": "' + b"x" * (1 << 20) + b'"}'),
        ("10000-deep array", deep),
        ("10000-deep object", deep_obj),
        ("deep inside a field", b'{"user_id": "d1", "name": ' + deep + b"}"),
        ("invalid UTF-8", b'{"user_id": "utf", "name": "\xff\xfe\xc3"}'),
        ("overlong UTF-8", b'{"user_id": "utf2", "name": "\xc0\xaf"}'),
        ("NUL in string", b'{"user_id": "nul", "name": "a\x00b"}'),
        ("NUL after JSON", b'{}\x00'),
        ("NUL only", b"\x00\x00\x00\x00"),
        ("2^63", b'{"amount_cents": 9223372036854775808, "quantity": 9223372036854775808, "price_cents": 9223372036854775808}'),
        ("-2^63-1", b'{"amount_cents": -9223372036854775809, "quantity": -9223372036854775809}'),
        ("1e30", b'{"amount_cents": 1e30, "quantity": 1e30, "price_cents": 1e30}'),
        ("huge integer", b'{"amount_cents": ' + b"9" * 400 + b"}"),
        ("duplicate keys", b'{"user_id": "dup1", "user_id": "dup2", "name": "a", "amount_cents": 5, "amount_cents": 6}'),
        ("trailing garbage", b'{} {}'),
        ("not an object", b'"just a string"'),
        ("binary", bytes(range(256)) * 4),
    ]


def main():
    with Cluster("badinput", workers=2) as c:
        cl = c.client()
        # Funds, so that a pay with a bad body that slipped through would succeed, not 409.
        u, item, o = new_order(cl, "bad", deposit=100000, price=5, stock=5, quantity=1)
        head = c.head()
        cmd_workers = sorted(c.worker_pids("command"))
        query_workers = sorted(c.worker_pids("query"))
        check(len(cmd_workers) == 2 and len(query_workers) == 2,
              "expected 2 workers each, got %r %r" % (cmd_workers, query_workers))
        paths = ["/api/users", "/api/users/%s/deposits" % u, "/api/items", "/api/items/%s/restock" % item,
                 "/api/orders", "/api/orders/%s/pay" % o, "/api/orders/%s/cancel" % o]
        n = 0
        for name, body in bodies():
            for p in paths:
                r = cl.post(p, body)
                n += 1
                ok = 400 <= r.status < 500 and r.ctype == "application/problem+json"
                soft_check(ok, "%s to %s: %d %s %r" % (name, p, r.status, r.ctype, r.body[:160]))
                if ok:
                    check(r.json.get("status") == r.status and isinstance(r.json.get("code"), str),
                          "%s to %s: problem %r" % (name, p, r.json))
        log("%d bad commands answered 4xx" % n)

        log("the program's own limits, bypassing nginx")
        for name, body in bodies():
            r = fcgi_request(c.cmd_sock, fcgi_params("POST", "/api/users", ctype="application/json",
                                                     length=len(body)), body)
            soft_check(400 <= r.status < 500, "FastCGI %s: status %d %r" % (name, r.status, r.body[:200]))

        log("bad paths and parameters on the query side")
        bad_gets = ["/api/orders/%2e%2e%2fetc", "/api/orders/" + "a" * 5000,
                    "/api/orders/%s?as_of=abc" % o, "/api/orders/%s?as_of=-1" % o,
                    "/api/orders/%s?as_of=99999999999999999999999" % o,
                    "/api/users/%s/orders?limit=0" % u, "/api/users/%s/orders?limit=101" % u,
                    "/api/users/%s/orders?limit=x" % u, "/api/users/%s/orders?cursor=%%ff%%00garbage" % u,
                    "/api/events?after=-1", "/api/events?limit=0", "/api/events?limit=1001",
                    "/api/events?after=18446744073709551616",
                    "/api/stats/daily?from=2024-13-01&to=2024-01-01", "/api/stats/daily?from=x&to=y",
                    "/api/orders/%s?min_position=abc" % o, "/api/nonexistent", "/api/users/%ff%fe"]
        for p in bad_gets:
            r = cl.get(p)
            soft_check(400 <= r.status < 500 and r.ctype == "application/problem+json",
                       "GET %s: %d %s %r" % (p, r.status, r.ctype, r.body[:160]))
        r = cl.get("/api/users/%s" % u, headers={"Min-Position": "x"})
        check(400 <= r.status < 500, "Min-Position x: %r" % r)
        r = cl.get("/api/users/%s" % u, headers={"Prefer": "wait=abc"})
        check(r.status in (200, 400), "Prefer: wait=abc: %r" % r)

        events = c.dump()
        check(len(events) == head, "bad input appended: %r" % [(e["type"], e["data"]) for e in events[head:]][:5])
        check(sorted(c.worker_pids("command")) == cmd_workers,
              "command workers changed (one died?): %r -> %r" % (cmd_workers, sorted(c.worker_pids("command"))))
        check(sorted(c.worker_pids("query")) == query_workers,
              "query workers changed (one died?): %r -> %r" % (query_workers, sorted(c.worker_pids("query"))))
        expect(cl.post("/api/users/%s/deposits" % u, {"amount_cents": 1}), 200, what="a good command after all that")
        c.verify()


if __name__ == "__main__":
    run(main, budget=180)
