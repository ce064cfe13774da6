#!/usr/bin/env python3
"""The answer checker itself (tests/integration/openapi.py), which every integration test runs
on every answer it receives: it must accept answers as the programs send them, and refuse an
undeclared field, an undeclared status, an undeclared problem code, a missing or undeclared
eventfold header and a wrong Content-Type. Also: every problem code the C sources can answer
with is in the document's ProblemCode enum, and every operation names its codes. No programs
are started."""

import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openapi  # noqa: E402
from harness import SRCDIR, check, log, run  # noqa: E402

LP = {"log-position": "15", "content-type": "application/json"}
PROBLEM = {"content-type": "application/problem+json", "log-position": "15"}


def problem(code, status, **extra):
    d = {"type": "/problems/" + code, "title": "t", "status": status, "detail": "d", "code": code}
    d.update(extra)
    return json.dumps(d).encode()


def expect_ok(c, what, *args, **kw):
    errs = c.check(*args, **kw)
    check(errs == [], "%s: expected no mismatch, got %r" % (what, errs))


def expect_refused(c, what, needle, *args, **kw):
    errs = c.check(*args, **kw)
    check(errs, "%s: the checker accepted it" % what)
    check(any(needle in e for e in errs), "%s: expected a mismatch mentioning %r, got %r" % (what, needle, errs))
    log("refused as expected: %s: %s" % (what, errs[0][:160]))


def codes_in_sources():
    """Problem codes the C sources can answer with: the code argument of problem_set() and
    server_respond_problem() calls (string literals)."""
    codes = set()
    call = re.compile(r'(?:problem_set\s*\([^,]+,\s*\d+|server_respond_problem\s*\([^,]+,\s*\d+)\s*,\s*"([a-z_]+)"', re.S)
    for path in glob.glob(os.path.join(SRCDIR, "src", "**", "*.c"), recursive=True):
        with open(path, encoding="utf-8") as f:
            codes |= set(call.findall(f.read()))
    return codes


def main():
    c = openapi.Checker(openapi.default_path())
    user = {"user_id": "ada", "name": "Ada", "wallet_balance_cents": 3200, "order_count": 3,
            "total_spent_cents": 2500, "avg_order_value_cents": 2500,
            "last_order_at": "2026-12-06T11:12:55.011Z", "preferred_category": "kitchen", "vip": False}

    log("answers as the programs send them are accepted")
    expect_ok(c, "user", "GET", "/api/users/ada", 200, LP, json.dumps(user).encode())
    expect_ok(c, "HEAD user", "HEAD", "/api/users/ada", 200, LP, b"")
    expect_ok(c, "deposit", "POST", "/api/users/ada/deposits", 200, dict(LP, etag='"2"'),
              b'{"user_id":"ada","balance_cents":5000,"version":2,"position":2}')
    expect_ok(c, "not caught up", "GET", "/api/users/ada?min_position=9", 503,
              dict(PROBLEM, **{"retry-after": "1"}), problem("not_caught_up", 503))
    expect_ok(c, "validation", "POST", "/api/users", 400, PROBLEM,
              problem("validation_failed", 400, errors=[{"field": "name", "message": "is required"}]))
    expect_ok(c, "unrouted 405", "DELETE", "/api/orders/o-1", 405, dict(PROBLEM, allow="POST"),
              problem("method_not_allowed", 405))
    expect_ok(c, "nginx 413", "POST", "/api/users", 413, {"content-type": "application/problem+json"},
              problem("payload_too_large", 413))
    expect_ok(c, "status with relays and replica", "GET", "/api/status", 200, LP, json.dumps({
        "log": {"head_position": 3, "segments": 1, "bytes": 10}, "read_model": {"position": 3, "lag_events": 0},
        "dead_letters": 0, "snapshots": [], "relays": [{"sink": "nats", "position": 3}],
        "replica": {"stream": "EVENTFOLD", "lag_events": 0}}).encode())
    expect_ok(c, "metrics", "GET", "/metrics", 200, {"content-type": "text/plain; version=0.0.4"},
              b"# HELP x y\n# TYPE x gauge\nx 1\n")

    log("what the document does not declare is refused")
    expect_refused(c, "undeclared field", "vip2", "GET", "/api/users/ada", 200, LP,
                   json.dumps(dict(user, vip2=True)).encode())
    expect_refused(c, "missing field", "preferred_category", "GET", "/api/users/ada", 200, LP,
                   json.dumps({k: v for k, v in user.items() if k != "preferred_category"}).encode())
    expect_refused(c, "wrong type", "last_order_at", "GET", "/api/users/ada", 200, LP,
                   json.dumps(dict(user, last_order_at=12)).encode())
    expect_refused(c, "undeclared status", "status 418 is not declared", "GET", "/api/users/ada", 418, PROBLEM,
                   problem("not_found", 418))
    expect_refused(c, "undeclared status on an operation", "status 409 is not declared", "GET", "/api/users/ada",
                   409, PROBLEM, problem("already_exists", 409))
    expect_refused(c, "undeclared problem code", "code", "POST", "/api/users", 409, PROBLEM,
                   problem("user_is_sad", 409))
    expect_refused(c, "a code the operation does not answer with", "code: ", "POST", "/api/users", 409,
                   PROBLEM, problem("insufficient_funds", 409))
    expect_refused(c, "type and code disagree", "type", "POST", "/api/users", 409, PROBLEM,
                   json.dumps({"type": "/problems/not_found", "title": "t", "status": 409, "detail": "d",
                               "code": "already_exists"}).encode())
    expect_refused(c, "status field and status disagree", "status", "POST", "/api/users", 409, PROBLEM,
                   problem("already_exists", 400))
    expect_refused(c, "validation_failed without errors", "errors", "POST", "/api/users", 400, PROBLEM,
                   problem("validation_failed", 400))
    expect_refused(c, "missing Log-Position", "log-position missing", "GET", "/api/users/ada", 200,
                   {"content-type": "application/json"}, json.dumps(user).encode())
    expect_refused(c, "undeclared ETag", "etag", "GET", "/api/users/ada", 200, dict(LP, etag='"1"'),
                   json.dumps(user).encode())
    expect_refused(c, "503 without Retry-After", "retry-after missing", "GET", "/api/users/ada", 503, PROBLEM,
                   problem("too_many_waiting", 503))
    expect_refused(c, "wrong Content-Type", "Content-Type", "GET", "/api/users/ada", 200,
                   dict(LP, **{"content-type": "text/html"}), json.dumps(user).encode())
    expect_refused(c, "405 without Allow", "allow missing", "PUT", "/api/users", 405, PROBLEM,
                   problem("method_not_allowed", 405))
    expect_refused(c, "status relay with an unknown sink", "sink", "GET", "/api/status", 200, LP, json.dumps({
        "log": {"head_position": 3, "segments": 1, "bytes": 10}, "read_model": {"position": 3, "lag_events": 0},
        "dead_letters": 0, "snapshots": [], "relays": [{"sink": "smtp", "position": 3}]}).encode())
    expect_refused(c, "limit beyond the page size", "orders", "GET", "/api/users/ada/orders", 200, LP,
                   json.dumps({"orders": [{"order_id": "o%d" % i, "status": "paid", "amount_cents": 1,
                                           "item_count": 1, "created_at": "2026-12-06T11:12:55.011Z"}
                                          for i in range(101)], "next_cursor": None}).encode())
    expect_refused(c, "event data of a known type with an undeclared field", "data", "GET", "/api/events", 200, LP,
                   json.dumps({"events": [{"position": 1, "stream": "user-ada", "version": 1,
                                           "type": "UserRegistered", "schema_version": 1,
                                           "at": "2026-12-06T11:12:55.011Z",
                                           "data": {"user_id": "ada", "name": "Ada", "email": None,
                                                    "password": "x"}}],
                               "last_position": 1}).encode())

    log("every problem code the sources can answer with is in the document")
    doc = openapi.load(openapi.default_path())
    enum = set(doc["components"]["schemas"]["ProblemCode"]["enum"])
    src = codes_in_sources()
    check(len(src) >= 10, "found only %r in the sources: the pattern no longer matches the calls" % sorted(src))
    check(src <= enum, "codes the programs answer with but the document does not declare: %r" % sorted(src - enum))
    for code in sorted(enum - src):
        log("declared, not (yet) answered by the sources: %s" % code)
    per_code = {k[len("Problem_"):] for k in doc["components"]["schemas"] if k.startswith("Problem_")}
    check(per_code == enum, "Problem_CODE schemas %r do not match the enum %r" % (sorted(per_code), sorted(enum)))
    log("%d codes declared, %d found in the sources" % (len(enum), len(src)))


if __name__ == "__main__":
    run(main, budget=60)
