#!/usr/bin/env python3
"""LMDB map full (STYLE.md: MDB_MAP_FULL is handled and reported, never aborted on).
The write model gets the smallest map the configuration allows (1 MiB) and four clients
create orders of 100 lines each (the write model keeps every order's lines, to release or
sell the reserved stock later), well past 1 MiB of model data. The map is grown instead of
refusing commands (write_map_bytes is the size at start, see eventfold.conf(5)):
  - every order is acknowledged (201): no 5xx, no crash (502 from nginx), no hang; the
    command program logs the growth and stays up;
  - eventfoldctl verify is clean and every acknowledged command is in the log;
after a SIGKILL restart with the same 1 MiB setting (the model reopens smaller than its
data, and grows again):
  - more orders are acknowledged, and the ones acknowledged before are still known (a
    repeat of an order id is 409 already_exists)."""

import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import Cluster, check, no_sanitizer_reports  # noqa: E402
from harness import expect, log, run, uid  # noqa: E402

THREADS = 4
COMMANDS = 600
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
        acked, bad = [], []
        counter = [0]

        def client(t):
            cl = c.client(timeout=30)
            while True:
                with lock:
                    counter[0] += 1
                    n = counter[0]
                if n > COMMANDS or bad:
                    break
                o = "%s-o%d" % (base, n)
                r = cl.post("/api/orders", {"user_id": user, "items": lines, "order_id": o})
                with lock:
                    if r.status == 201:
                        acked.append((r.position, "order-" + o))
                    else:
                        bad.append((o, r.status, r.body[:200]))
            cl.close()

        threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=400)
        check(not any(t.is_alive() for t in threads), "clients did not finish")
        check(not bad, "orders refused although the map can grow: %r" % bad[:5])
        check(len(acked) == COMMANDS, "%d of %d orders acknowledged" % (len(acked), COMMANDS))
        grown = c.log_text("command").count("write model map full, grown")
        check(grown >= 1, "the write model's map never grew: is 1 MiB not full after %d orders?" % COMMANDS)
        log("map full: %d orders acknowledged, map grown %d times" % (len(acked), grown))
        check(c.running("command"), "the command program died")
        c.verify()

        c.restart("command", signal.SIGKILL)
        cl = c.client()
        for n in range(COMMANDS + 1, COMMANDS + 41):
            expect(cl.post("/api/orders", {"user_id": user, "items": lines, "order_id": "%s-o%d" % (base, n)}),
                   201, what="order after the restart")
        r = cl.post("/api/orders", {"user_id": user, "items": lines[:1], "order_id": base + "-o1"})
        check(r.status == 409 and r.json.get("code") == "already_exists",
              "an order acknowledged before the restart is unknown to the write model: %r" % r)
        events = {e["position"]: e for e in c.dump()}
        lost = [(p, s) for p, s in acked if p not in events or events[p]["stream"] != s]
        check(not lost, "acknowledged commands missing from the log: %r" % lost[:10])
        c.verify()
        no_sanitizer_reports(c)


if __name__ == "__main__":
    run(main, 480)
