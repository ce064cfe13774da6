#!/usr/bin/env python3
"""Read model full (issue 7): the tailer's LMDB map is the smallest the configuration
allows (1 MiB) and orders of 100 lines are written until the read model stops following
the log. Then:
  - the tailer did not crash (no signal, no sanitizer report) and said why it stopped
    (an error line naming the map / the full database), and nothing was skipped;
  - the command side is unaffected (commands keep succeeding) and queries still answer;
after a restart of the tailer with a large map (the read model is derived from the log):
  - the query workers that were already running keep answering (LMDB: a reader whose map
    is smaller than the grown file gets MDB_MAP_RESIZED and must adopt the new size);
  - the tailer catches up to the head and every user, item and order equals what the log
    implies (tests/torture/logcheck.py), so no event was lost or folded twice."""

import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "torture"))
from faultlib import SANITIZER_MARKS, Cluster, Findings, check  # noqa: E402
from harness import expect, log, run, uid  # noqa: E402
from logcheck import Fold, compare  # noqa: E402

LINES = 100
MAX_ORDERS = 600
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
        stuck = False
        n = 0
        while n < MAX_ORDERS and not stuck:
            for _ in range(BATCH):
                n += 1
                expect(cl.post("/api/orders", {"user_id": user, "items": lines, "order_id": "%s-o%d" % (base, n)}),
                       201, what="order %d (the command side must not care about the read model)" % n)
            deadline = time.monotonic() + 5
            while lag(c) > 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            stuck = lag(c) > 0
        check(stuck, "a 1 MiB read model still followed the log after %d orders of %d lines" % (n, LINES))
        log("read model stuck after %d orders, lag %d events" % (n, lag(c)))

        p = c.procs["tailer"]
        text = c.log_text("tailer")
        check(p.poll() is None or p.returncode >= 0, "tailer killed by signal %s:\n%s" % (p.returncode, text[-2000:]))
        check(not any(m in text for m in SANITIZER_MARKS), "tailer sanitizer report:\n%s" % text[-3000:])
        low = text.lower()
        check(any(w in low for w in ("map_full", "map full", "mapsize", "map size", "read_map_bytes", "full")),
              "the tailer fell behind without saying why (expected an error naming the full map):\n%s"
              % text[-1500:])
        log("tailer %s; its last line: %s" % ("running" if p.poll() is None else "exited %d" % p.returncode,
                                              text.strip().splitlines()[-1][:300] if text.strip() else ""))
        expect(c.client().get("/api/status"), 200, what="queries with a full read model")
        expect(cl.post("/api/users/%s/deposits" % user, {"amount_cents": 5}), 200, what="command with a full read model")
        cl.close()

        with open(c.config_path, "w") as f:
            f.write("read_map_bytes = 512m\n")
        c.kill("tailer", signal.SIGKILL)
        c.start("tailer")
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
            q.close()
        findings.case("queries after the tailer grew the map", queries_survive)
        # Fresh query workers for the rest, whatever the above found.
        c.restart("query", signal.SIGKILL)
        fold = Fold()
        for e in c.dump():
            fold.apply(e)
        check(not fold.violations, "log invariants: %r" % fold.violations[:5])
        c.wait_caught_up(fold.head, timeout=120)
        k = c.client()
        diffs = []
        for kind, ids, want in (("users", fold.users, fold.expected_user), ("items", fold.items, fold.expected_item),
                                ("orders", fold.orders, fold.expected_order)):
            for i in sorted(ids):
                r = k.get("/api/%s/%s" % (kind, i))
                if r.status != 200:
                    diffs.append("GET /api/%s/%s: %d" % (kind, i, r.status))
                else:
                    diffs += compare(kind, i, want(i), r.json)
        k.close()
        check(not diffs, "read model after the restart differs from the log:\n  %s" % "\n  ".join(diffs[:20]))
        log("after a restart with a large map: caught up to %d, read model equals the log" % fold.head)
        findings.finish()


if __name__ == "__main__":
    run(main, 400)
