#!/usr/bin/env python3
"""eventfold-relay --sink nats under faults (API.md section 9): a three-node JetStream
cluster, a steady command load on the leader, and the relay killed with SIGKILL at random
moments several times, the stream's leader node killed with SIGKILL (and brought back),
and the whole NATS cluster killed and restarted once. At the end the stream holds exactly
positions 1..head, once each, in order, each message's subject, headers and body agreeing
with `eventfoldctl dump` and with the record's CRC32C read from the segment files; while
the relay runs, /api/status lists it and /metrics has its gauges."""

import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, run  # noqa: E402
from natslib import NatsCluster  # noqa: E402
from relaylib import check_stream_matches_log, start_relay, wait_stream_at  # noqa: E402

STREAM = "EVENTFOLD"


def load(c, t, stop, counts):
    """Registers users, deposits, orders and pays until stop; idempotency keys on some so
    that records carry a meta too."""
    k = c.client()
    item = "rn-item-%d" % t
    expect(k.post("/api/items", {"item_id": item, "name": "I", "category": "c", "price_cents": 5}), 201)
    expect(k.post("/api/items/%s/restock" % item, {"quantity": 1000000}), 200)
    n = 0
    while not stop.is_set() and n < 4000:
        u = "rn-%d-%d" % (t, n)
        expect(k.post("/api/users", {"user_id": u, "name": "U"},
                      headers={"Idempotency-Key": "k-" + u}), 201)
        expect(k.post("/api/users/%s/deposits" % u, {"amount_cents": 1000}), 200)
        o = expect(k.post("/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": 2}]}),
                   201).json["order_id"]
        expect(k.post("/api/orders/%s/pay" % o, {}), 200)
        n += 1
        time.sleep(0.005)  # a steady load, not a flood: the machine is shared
    counts[t] = n


def relay_seen(c):
    st = c.status()
    relays = st.get("relays") or []
    return [r for r in relays if r.get("sink") == "nats"]


def main():
    rnd = random.Random(int(os.environ.get("EF_SEED", "0")) or None)
    with NatsCluster("relay") as nc:
        with Cluster("relaynats", workers=3, config={"nats_url": nc.urls, "nats_stream": STREAM}) as c:
            stop = threading.Event()
            counts = {}
            threads = [threading.Thread(target=load, args=(c, t, stop, counts), daemon=True) for t in range(2)]
            for th in threads:
                th.start()
            start_relay(c)

            # The relay shows up in the status and the metrics once it confirmed something.
            deadline = time.monotonic() + 30
            while not relay_seen(c) or relay_seen(c)[0]["position"] == 0:
                check(time.monotonic() < deadline, "relay not in /api/status: %s" % c.status())
                time.sleep(0.1)
            r = relay_seen(c)[0]
            check("lag_events" in r, "relay entry without lag_events: %s" % r)
            m = c.client().get("/metrics").body.decode()
            check('eventfold_relay_position{sink="nats"}' in m and
                  'eventfold_relay_lag_events{sink="nats"}' in m, "relay gauges missing from /metrics")

            for i in range(4):
                time.sleep(rnd.uniform(0.2, 1.5))
                log("kill -9 relay (%d), stream at %s" % (i + 1, nc.stream_info(STREAM)["state"]["last_seq"]))
                c.kill("relay")
                check(not relay_seen(c), "a killed relay is still listed: %s" % c.status())
                start_relay(c)

            time.sleep(1)
            leader = nc.stream_leader(STREAM)
            log("kill -9 stream leader %s" % leader.name)
            nc.kill(leader.name)
            time.sleep(rnd.uniform(1, 3))
            nc.start(leader.name)

            time.sleep(1)
            log("kill -9 the whole NATS cluster, stream at %s" % nc.stream_info(STREAM)["state"]["last_seq"])
            nc.kill_all()
            time.sleep(rnd.uniform(0.5, 2))
            nc.start_all()
            time.sleep(rnd.uniform(0.5, 2))
            log("kill -9 relay once more")
            c.kill("relay")
            start_relay(c)

            time.sleep(2)
            stop.set()
            for th in threads:
                th.join(timeout=60)
            check(len(counts) == 2, "load threads failed")
            head = c.head()
            log("load done: %d rounds, head %d" % (sum(counts.values()), head))
            check(head > 1000, "too little load to mean anything: head %d" % head)
            check(c.running("relay"), "relay exited with %s: %s" % (c.procs["relay"].poll(), c.log_text("relay")[-2000:]))
            wait_stream_at(nc, STREAM, head, pid=c.pid("relay"), proc=c.procs["relay"])
            deadline = time.monotonic() + 30
            while not relay_seen(c) or relay_seen(c)[0]["position"] != head:
                check(time.monotonic() < deadline, "relay status not at head %d: %s" % (head, c.status()))
                time.sleep(0.1)
            check(relay_seen(c)[0]["lag_events"] == 0, "lag at head: %s" % relay_seen(c))
            check_stream_matches_log(c, nc, STREAM)

            # SIGTERM stops it cleanly.
            os.kill(c.pid("relay"), signal.SIGTERM)
            rc = c.procs["relay"].wait(timeout=20)
            check(rc == 0, "relay exit %s after SIGTERM: %s" % (rc, c.log_text("relay")[-2000:]))
            text = c.log_text("relay")
            check("error" not in text.lower().replace("errors", ""), "relay logged an error:\n%s" % text[-3000:])


run(main, 600)
