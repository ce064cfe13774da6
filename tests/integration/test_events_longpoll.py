#!/usr/bin/env python3
"""GET /api/events long-poll (API.md section 5): a request with Prefer: wait=S and
nothing after P waits; a new command makes it return with that command's event within a few
milliseconds (measured from the command's answer to the long-poll's answer; the bound is
generous for a loaded 2-core machine: median < 200 ms, every one < 2 s). With no new event it
returns an empty list after about S seconds. Paging with after/limit covers the log exactly."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, run, uid  # noqa: E402

ROUNDS = 20


def main():
    with Cluster("events", workers=2) as c:
        cl = c.client()
        u = uid("u")
        expect(cl.post("/api/users", {"user_id": u, "name": "Poll"}), 201)
        c.wait_caught_up()

        log("long-poll with nothing new returns empty after about S")
        head = c.head()
        t0 = time.monotonic()
        r = expect(cl.get("/api/events?after=%d" % head, headers={"Prefer": "wait=1"}), 200, what="idle long-poll")
        el = time.monotonic() - t0
        check(r.json["events"] == [], "idle long-poll returned %r" % r.json)
        check(0.8 <= el <= 4, "idle long-poll returned after %.2f s, wait=1" % el)

        log("long-poll wake-up latency")
        lat = []
        for i in range(ROUNDS):
            head = c.head()
            box = {}

            def poll():
                k = c.client()
                box["r"] = k.get("/api/events?after=%d" % head, headers={"Prefer": "wait=10"})
                box["t"] = time.monotonic()
                k.close()

            th = threading.Thread(target=poll, daemon=True)
            th.start()
            time.sleep(0.15)  # the poll is parked
            check("r" not in box, "long-poll returned before any new event: %r" % box.get("r"))
            w = expect(cl.post("/api/users/%s/deposits" % u, {"amount_cents": i + 1}), 200)
            t_ack = time.monotonic()
            th.join(timeout=15)
            check("r" in box, "long-poll did not return")
            r = expect(box["r"], 200, what="long-poll")
            ev = r.json["events"]
            check(ev and ev[0]["position"] == w.position and ev[0]["type"] == "FundsDeposited",
                  "long-poll events %r, command at %d" % (ev, w.position))
            check(ev[0]["data"]["amount_cents"] == i + 1, "event data %r" % ev[0]["data"])
            for k in ("position", "stream", "version", "type", "schema_version", "at", "data"):
                check(k in ev[0], "EVENT without %s: %r" % (k, ev[0]))
            check(ev[0]["stream"] == "user-" + u, "stream %r" % ev[0]["stream"])
            lat.append(max(0.0, box["t"] - t_ack))
        lat.sort()
        log("long-poll after a command: p50 %.1f ms, max %.1f ms over %d rounds"
            % (lat[len(lat) // 2] * 1000, lat[-1] * 1000, len(lat)))
        check(lat[len(lat) // 2] < 0.2, "median long-poll wake-up %.1f ms" % (lat[len(lat) // 2] * 1000))
        check(lat[-1] < 2.0, "slowest long-poll wake-up %.1f ms" % (lat[-1] * 1000))

        log("paging the log")
        head = c.head()
        got, after = [], 0
        while True:
            j = expect(cl.get("/api/events?after=%d&limit=3" % after), 200).json
            check(len(j["events"]) <= 3, "limit 3 returned %d" % len(j["events"]))
            if not j["events"]:
                break
            got += [e["position"] for e in j["events"]]
            after = j["last_position"]
        check(got == list(range(1, head + 1)), "paged positions %r, head %d" % (got[:10], head))


if __name__ == "__main__":
    run(main, budget=150)
