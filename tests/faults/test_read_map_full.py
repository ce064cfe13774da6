#!/usr/bin/env python3
"""Read model map full: the tailer's LMDB map starts at the smallest size the
configuration allows (1 MiB) and orders of 100 lines are written until the model has outgrown
it several times over. Then:
  - the tailer never fell behind for long: it grew the map itself (a warning naming the new
    size and read_map_bytes) instead of stopping;
  - it did not crash (no signal, no sanitizer report), and the command side was unaffected;
  - the query workers that were running all along adopted the grown map (LMDB: a reader
    whose map is smaller than the file gets MDB_MAP_RESIZED and must adopt the new size)
    and keep answering;
  - every user, item and order equals what the log implies (tests/torture/logcheck.py), so
    no event was lost or folded twice."""

import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "torture"))
from faultlib import SANITIZER_MARKS, Cluster, Findings, check  # noqa: E402
from harness import expect, log, run, uid  # noqa: E402
from logcheck import Fold, model_diffs  # noqa: E402

LINES = 100
ORDERS = 400
BATCH = 20


def lag(c):
    st = c.status()
    return c.head() - int(st["read_model"]["position"])


def main():
    with Cluster("readfull", workers=2, config={"read_map_bytes": "1m"}) as c:
        base = uid("rf")
        cl = c.client()
        user = base + "-user"
        expect(cl.post("/api/users", {"user_id": user, "name": "Reader"}), 201, what="setup user")
        items = ["%s-i%d" % (base, i) for i in range(LINES)]
        for it in items:
            expect(cl.post("/api/items", {"item_id": it, "name": "Item " + it, "category": "c%d" % (len(it) % 3),
                                          "price_cents": 7}), 201, what="setup item")
            expect(cl.post("/api/items/%s/restock" % it, {"quantity": 1000000}), 200, what="setup restock")
        lines = [{"item_id": it, "quantity": 1} for it in items]
        n = 0
        while n < ORDERS:
            for _ in range(BATCH):
                n += 1
                expect(cl.post("/api/orders", {"user_id": user, "items": lines, "order_id": "%s-o%d" % (base, n)}),
                       201, what="order %d (the command side must not care about the read model)" % n)
            deadline = time.monotonic() + 20
            while lag(c) > 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            check(lag(c) == 0, "the read model stopped following the log after %d orders of %d lines "
                  "(lag %d):\n%s" % (n, LINES, lag(c), c.log_text("tailer")[-1500:]))
        log("%d orders of %d lines folded with read_map_bytes = 1m" % (n, LINES))

        p = c.procs["tailer"]
        text = c.log_text("tailer")
        check(p.poll() is None, "tailer exited %s:\n%s" % (p.returncode, text[-2000:]))
        check(not any(m in text for m in SANITIZER_MARKS), "tailer sanitizer report:\n%s" % text[-3000:])
        grown = [l for l in text.splitlines() if "grown to map_bytes=" in l]
        check(len(grown) >= 2, "expected the tailer to grow its 1 MiB map (at least twice) and say so:\n%s"
              % text[-1500:])
        log("tailer grew the map %d times; last: %s" % (len(grown), grown[-1][:200]))
        expect(cl.post("/api/users/%s/deposits" % user, {"amount_cents": 5}), 200, what="command after the growth")
        cl.close()
        findings = Findings()

        def queries_survive():
            q = c.client()
            deadline = time.monotonic() + 10
            while True:
                r = q.get("/api/status")
                if r.status == 200 and int(r.json["read_model"]["position"]) >= c.head():
                    break
                check(time.monotonic() < deadline,
                      "running query workers after the read model grew: %d %r" % (r.status, r.body[:300]))
                time.sleep(0.1)
            for i in (1, n // 2, n):
                expect(q.get("/api/orders/%s-o%d" % (base, i)), 200, what="order %d from a running worker" % i)
            q.close()
        findings.case("queries from workers started before the map grew", queries_survive)
        text = c.log_text("query")
        check(not any(m in text for m in SANITIZER_MARKS), "query sanitizer report:\n%s" % text[-3000:])
        # Fresh query workers for the rest, whatever the above found.
        c.restart("query", signal.SIGKILL)
        fold = Fold()
        for e in c.dump():
            fold.apply(e)
        check(not fold.violations, "log invariants: %r" % fold.violations[:5])
        c.wait_caught_up(fold.head, timeout=120)
        k = c.client()
        diffs = model_diffs(k, fold)
        k.close()
        check(not diffs, "read model after the restart differs from the log:\n  %s" % "\n  ".join(diffs[:20]))
        log("caught up to %d, read model equals the log" % fold.head)
        findings.finish()


if __name__ == "__main__":
    run(main, 400)
