#!/usr/bin/env python3
"""Tailer crash (API.md section 7): with a backlog of over 21 000 events, the
tailer is killed with SIGKILL in the middle of folding (at least one kill must land after it
folded some and before it reached the head), several times, then restarted; the
read model it ends with must answer every query exactly like a read model built from scratch
from a copy of the same log (eventfold-tailer --once in a fresh data directory, served by its
own eventfold-query, asked directly over FastCGI). Snapshots are taken often during the run
(snapshot_every = 700) so restarts also cross snapshot boundaries."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Cluster, binary, check, expect, fcgi_params, fcgi_request, log, parallel,  # noqa: E402
                     run, uid)
import eftest  # noqa: E402  (tests/lib, on the path once harness is imported)

USERS = 128
ROUNDS = 8  # per thread: orders, each paid and some shipped/cancelled


def main():
    with Cluster("tailkill", workers=4, config={"snapshot_every": 700}) as c:
        cl = c.client()
        c.kill("tailer")
        items = [uid("it%d" % i) for i in range(8)]
        for n, i in enumerate(items):
            expect(cl.post("/api/items", {"item_id": i, "name": "I%d" % n, "category": "c%d" % (n % 3),
                                          "price_cents": 100 + n}), 201)
            expect(cl.post("/api/items/%s/restock" % i, {"quantity": 100000}), 200)

        def load(t):
            k = c.client()
            rnd = random.Random(t)
            ids = {"users": [], "orders": []}
            for j in range(USERS // 8):
                u = "tk-%d-%d" % (t, j)
                expect(k.post("/api/users", {"user_id": u, "name": "U"}), 201)
                expect(k.post("/api/users/%s/deposits" % u, {"amount_cents": 10 ** 7}), 200)
                ids["users"].append(u)
                for _ in range(ROUNDS * 10):
                    lines = [{"item_id": i, "quantity": rnd.randint(1, 3)} for i in rnd.sample(items, 2)]
                    o = expect(k.post("/api/orders", {"user_id": u, "items": lines}), 201).json["order_id"]
                    ids["orders"].append(o)
                    x = rnd.random()
                    if x < 0.7:
                        expect(k.post("/api/orders/%s/pay" % o, {}), 200)
                    if x < 0.4:
                        expect(k.post("/api/orders/%s/ship" % o, {}), 200)
                    elif x < 0.55:
                        expect(k.post("/api/orders/%s/cancel" % o, {}), 200)
            return ids

        t0 = time.monotonic()
        res = parallel(load, [(t,) for t in range(8)])
        users = sum((r["users"] for r in res), [])
        orders = sum((r["orders"] for r in res), [])
        head = c.head()
        log("backlog of %d events in %.1f s" % (head, time.monotonic() - t0))
        # More than two batches' worth (the tailer commits at least every 10 000 records), so
        # a kill right after the first commit lands while a whole batch is being folded. With
        # barely more than one (an earlier backlog of 12 000), the last 2 000 records folded
        # in less time than the poll below takes to see a commit, and no kill landed mid-fold.
        check(head >= 21000, "backlog too small: %d" % head)

        log("a read model from scratch on a copy of the log (eventfold-tailer --once)")
        fresh = os.path.join(c.tmp, "fresh")
        os.makedirs(fresh)
        shutil.copytree(os.path.join(c.data, "log"), os.path.join(fresh, "log"))
        t0 = time.monotonic()
        p = subprocess.run([binary("eventfold-tailer"), "--data", fresh, "--once"], capture_output=True, timeout=120)
        check(p.returncode == 0, "tailer --once: exit %d: %s" % (p.returncode, p.stderr.decode()[-500:]))
        log("folding %d events from scratch took %.0f ms (process included)" % (head, (time.monotonic() - t0) * 1000))

        log("kill -9 the tailer while it folds")
        # Each round restarts the tailer, waits until it commits a batch (the read-model
        # position moves), and kills it right then: far behind, it is folding the next batch
        # at that moment. Each restart resumes from the last committed batch.
        kills = mid = 0
        pos = 0
        for attempt in range(8):
            c.start("tailer")
            deadline = time.monotonic() + 60
            while True:
                now = int(c.status()["read_model"]["position"])
                if now > pos:
                    break
                check(time.monotonic() < deadline, "the tailer made no progress in 60 s")
                time.sleep(0.002)
            c.kill("tailer", signal.SIGKILL)
            kills += 1
            prev, pos = pos, int(c.status()["read_model"]["position"])
            check(pos >= now, "read model went back from %d to %d after the kill" % (now, pos))
            if pos < head:
                mid += 1  # it had folded something and had more to fold when killed
            log("kill %d: read-model position %d -> %d of %d" % (kills, prev, pos, head))
            if pos >= head or mid >= 3:
                break
        check(mid >= 1, "no kill landed while the tailer was folding (positions above)")
        c.start("tailer")
        c.wait_caught_up(head, timeout=120)

        sock = os.path.join(c.tmp, "fresh-query.sock")
        q = eftest.spawn([binary("eventfold-query"), "--data", fresh, "--listen", "unix:" + sock, "--workers", "1"],
                         os.path.join(c.tmp, "fresh-query.log"))
        c.procs["fresh-query"] = q
        deadline = time.monotonic() + 15
        while not os.path.exists(sock):
            check(q.poll() is None and time.monotonic() < deadline, "fresh eventfold-query did not start")
            time.sleep(0.05)

        def fresh_get(path, query=""):
            for _ in range(100):
                try:
                    return fcgi_request(sock, fcgi_params("GET", path, query))
                except OSError:
                    time.sleep(0.05)
            raise AssertionError("fresh query socket does not answer")

        paths = (["/api/users/%s" % u for u in users] + ["/api/users/%s/orders?limit=100" % u for u in users]
                 + ["/api/items/%s" % i for i in items] + ["/api/orders/%s" % o for o in orders]
                 + ["/api/stats/daily?from=2000-01-01&to=2100-01-01"])
        diffs = 0
        for path in paths:
            a = cl.get(path)
            pth, _, qs = path.partition("?")
            b = fresh_get(pth, qs)
            if (a.status, a.json) != (b.status, b.json):
                diffs += 1
                if diffs <= 5:
                    print("differs: %s\n  after kills: %d %r\n  scratch:     %d %r"
                          % (path, a.status, a.body[:300], b.status, b.body[:300]))
        check(diffs == 0, "%d of %d answers differ from a read model built from scratch" % (diffs, len(paths)))
        st = c.status()
        check(st["dead_letters"] in (0, [], {}), "dead letters after kills: %r" % st["dead_letters"])
        log("%d answers identical after %d kills (%d mid-fold); snapshots: %d"
            % (len(paths), kills, mid, len(st.get("snapshots", []))))


if __name__ == "__main__":
    run(main, budget=280)
