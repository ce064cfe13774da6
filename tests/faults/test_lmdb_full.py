#!/usr/bin/env python3
"""LMDB map full (issue 7; STYLE.md: MDB_MAP_FULL is handled and reported, never aborted on).
The write model gets the smallest map the configuration allows (1 MiB) and four clients
create orders of 100 lines each (the write model keeps every order's lines, to release or
sell the reserved stock later) until the command side refuses one. Then:
  - refusals are 5xx problem+json answers from a live worker (500 or 503), not a crash
    (502 from nginx) and not a hang; the command program stays up;
  - eventfoldctl verify is clean and every acknowledged command is in the log;
after a restart with a large map (the write model is derived from the log):
  - every refused order id can be created (201): a refused command appended nothing (a
    409 would mean its event is in the log although the client was told it failed)."""

import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import Cluster, TestFailure, check, no_sanitizer_reports  # noqa: E402
from harness import expect, log, run, uid  # noqa: E402

THREADS = 4
MAX_COMMANDS = 3000
LINES = 100


def main():
    with Cluster("mapfull", workers=2, config={"write_map_bytes": "1m"}) as c:
        base = uid("mf")
        cl = c.client()
        user = base + "-user"
        expect(cl.post("/api/users", {"user_id": user, "name": "Map"}), 201, what="setup user")
        items = ["%s-i%d" % (base, i) for i in range(LINES)]
        for it in items:
            expect(cl.post("/api/items", {"item_id": it, "name": "Item " + it, "category": "c",
                                          "price_cents": 10}), 201, what="setup item")
            expect(cl.post("/api/items/%s/restock" % it, {"quantity": 1000000}), 200, what="setup restock")
        cl.close()
        lines = [{"item_id": it, "quantity": 1} for it in items]
        lock = threading.Lock()
        acked, refused, bad = [], [], []
        stop = threading.Event()
        counter = [0]

        def client(t):
            cl = c.client(timeout=30)
            while not stop.is_set():
                with lock:
                    counter[0] += 1
                    n = counter[0]
                if n > MAX_COMMANDS:
                    break
                o = "%s-o%d" % (base, n)
                r = cl.post("/api/orders", {"user_id": user, "items": lines, "order_id": o})
                with lock:
                    if r.status == 201:
                        acked.append((r.position, "order-" + o))
                    elif r.status in (500, 503) and r.ctype == "application/problem+json":
                        refused.append((o, r.status, r.json.get("code")))
                        if len(refused) >= 10:
                            stop.set()
                    else:
                        bad.append((u, r.status, r.body[:200]))
                        stop.set()
            cl.close()

        threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=400)
        check(not any(t.is_alive() for t in threads), "clients did not finish")
        check(not bad, "answers other than 201 or a 5xx problem (a crash?): %r" % bad[:5])
        check(refused, "1 MiB write model never filled up after %d orders" % len(acked))
        log("map full: %d orders acknowledged, %d refused; first refusal %s"
            % (len(acked), len(refused), refused[0]))
        check(c.running("command"), "the command program died when the write model filled up")
        c.verify()

        with open(c.config_path, "w") as f:
            f.write("write_map_bytes = 256m\n")
        c.restart("command", signal.SIGKILL)
        cl = c.client()
        appended = []
        for o, _, _ in refused:
            r = cl.post("/api/orders", {"user_id": user, "items": lines[:1], "order_id": o})
            if r.status == 409:
                appended.append(o)
            elif r.status != 201:
                raise TestFailure("creating %s again after the restart: %r" % (o, r))
        check(not appended, "refused commands whose events are in the log anyway: %r" % appended)
        events = {e["position"]: e for e in c.dump()}
        lost = [(p, s) for p, s in acked if p not in events or events[p]["stream"] != s]
        check(not lost, "acknowledged commands missing from the log: %r" % lost[:10])
        c.verify()
        no_sanitizer_reports(c)


if __name__ == "__main__":
    run(main, 480)
