#!/usr/bin/env python3
"""A read model the tailer must replace before anyone reads it (src/readmodel/rmodel_env.h): one
left with unsynced commits by a machine crash (its "unsynced" marker names another boot), as
after a power loss; a model of another layout after an upgrade takes the same path.

The query workers start anyway (they used to fail to start again and again until the tailer
had replaced the model) and answer 503 not_caught_up with Retry-After once the request's wait
is over, while no tailer runs. Once the tailer has started and replaced the model, the same
queries are answered from the replacement, a request waiting meanwhile included."""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, run, uid  # noqa: E402

FOREIGN_BOOT = "00000000-0000-0000-0000-000000000000\n"


def main():
    with Cluster("replaced", workers=2) as c:
        cl = c.client()
        user = uid("u")
        expect(cl.post("/api/users", {"user_id": user, "name": "Ada"}), 201)
        pos = int(expect(cl.post("/api/users/%s/deposits" % user, {"amount_cents": 500}), 200).position)
        expect(cl.get("/api/users/%s" % user, headers={"Min-Position": str(pos)}), 200)

        # The machine "went down" with the model dirty: its marker names another boot.
        c.kill("tailer", signal.SIGTERM)
        c.kill("query", signal.SIGTERM)
        with open(os.path.join(c.data, "read", "current", "unsynced"), "w") as f:
            f.write(FOREIGN_BOOT)

        c.start("query")  # answers (503) rather than exiting: start() waits for an answer
        check(c.running("query"), "the query program exited with a model it cannot open")
        t0 = time.monotonic()
        r = cl.get("/api/users/%s" % user, headers={"Prefer": "wait=1"})
        waited = time.monotonic() - t0
        expect(r, 503, "not_caught_up", "GET while the model awaits its replacement")
        check(r.header("Retry-After") == "1", "Retry-After: %r" % r.header("Retry-After"))
        check("replaces" in r.json.get("detail", ""), "detail: %r" % r.json.get("detail"))
        check(0.9 <= waited < 5, "answered after %.2f s, the request's wait being 1 s" % waited)
        t0 = time.monotonic()
        r = cl.get("/api/events?after=0", headers={"Prefer": "wait=1"})
        waited_events = time.monotonic() - t0
        expect(r, 503, "not_caught_up", "GET /api/events while the model awaits its replacement")
        check(0.9 <= waited_events < 5, "/api/events answered after %.2f s" % waited_events)
        log("without a tailer: 503 not_caught_up after %.2f s and %.2f s (wait=1)" % (waited, waited_events))

        # A request that waits while the tailer starts is answered from the replacement.
        res = {}

        def waiting_get():
            k = c.client()
            res["r"] = k.get("/api/users/%s" % user, headers={"Min-Position": str(pos), "Prefer": "wait=10"})

        th = threading.Thread(target=waiting_get)
        th.start()
        time.sleep(0.3)
        c.start("tailer")
        th.join(30)
        check(not th.is_alive(), "the waiting GET was not answered")
        r = expect(res["r"], 200, what="GET waiting across the replacement")
        check(r.json["wallet_balance_cents"] == 500, "balance %r" % r.json)
        check(r.position >= pos, "Log-Position %d < %d" % (r.position, pos))
        check("replac" in c.log_text("tailer"), "the tailer did not say it replaced the model")
        # Every worker opened the replacement (not only the one that took the waiting GET).
        for _ in range(8):
            expect(cl.get("/api/users/%s" % user), 200)
        expect(cl.get("/api/events?after=0"), 200)
        c.wait_ready()


if __name__ == "__main__":
    run(main, budget=120)
