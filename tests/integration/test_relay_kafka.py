#!/usr/bin/env python3
"""eventfold-relay --sink kafka under faults (API.md section 9), against librdkafka's mock
cluster (three brokers on loopback ports, tests/kafka/ef-kafka-mock): a steady command load
on the leader while the relay is killed with SIGKILL at random moments, brokers go down and
come back (one, then all), brokers answer late while it is killed (requests in flight between
send and delivery report), the partition's leader moves, and produce requests fail with
NOT_ENOUGH_REPLICAS and REQUEST_TIMED_OUT. At the end kcat (an ordinary Kafka consumer)
reads partition 0: after the consumer's rule of the README (skip positions <= the last one
seen) it holds exactly positions 1..head, in order, each message's key, headers and body
agreeing with `eventfoldctl dump` and the record's CRC32C; the duplicates the rule skipped
are counted (the README says when one can happen). /api/status lists the relay."""

import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, run  # noqa: E402
from kafkalib import MockKafka, check_topic_matches_log, kcat_messages  # noqa: E402
from relaylib import start_relay as start_relay_sink  # noqa: E402


TOPIC = "eventfold.events"


def start_relay(c):
    return start_relay_sink(c, sink="kafka")


def load(c, t, stop, counts):
    """Registers users, deposits, orders and pays until stop (or 500 rounds); idempotency
    keys on some so that records carry a meta too."""
    k = c.client()
    item = "rk-item-%d" % t
    expect(k.post("/api/items", {"item_id": item, "name": "I", "category": "c", "price_cents": 5}), 201)
    expect(k.post("/api/items/%s/restock" % item, {"quantity": 1000000}), 200)
    n = 0
    # Bounded: the mock keeps the last 5 MB of a partition (rdkafka_mock.c), and the whole
    # partition must be readable at the end. 2 x 500 rounds are about 4000 events, 2.5 MB.
    while not stop.is_set() and n < 500:
        u = "rk-%d-%d" % (t, n)
        expect(k.post("/api/users", {"user_id": u, "name": "U"},
                      headers={"Idempotency-Key": "k-" + u}), 201)
        expect(k.post("/api/users/%s/deposits" % u, {"amount_cents": 1000}), 200)
        o = expect(k.post("/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": 2}]}),
                   201).json["order_id"]
        expect(k.post("/api/orders/%s/pay" % o, {}), 200)
        n += 1
        time.sleep(0.005)  # a steady load, not a flood: the machine is shared
    counts[t] = n


def relay_entry(c):
    return [r for r in (c.status().get("relays") or []) if r.get("sink") == "kafka"]


def fault(c, mk, rnd, i):
    """One fault, chosen at random; each kind is also forced once by the caller's order."""
    kinds = ["kill", "slow-kill", "broker", "leader", "errors", "all-down"]
    kind = kinds[i] if i < len(kinds) else rnd.choice(kinds)
    if kind == "kill":
        log("kill -9 relay")
        c.kill("relay")
        start_relay(c)
    elif kind == "slow-kill":
        # Brokers answer 800 ms late (the mock appends at once, the answer waits): a kill
        # now lands between sends and their delivery reports, with requests in flight.
        log("brokers answer 800 ms late; kill -9 relay with requests in flight")
        for b in (1, 2, 3):
            mk.cmd("rtt %d 800" % b)
        time.sleep(rnd.uniform(0.3, 1.5))
        c.kill("relay")
        start_relay(c)
        time.sleep(rnd.uniform(0.5, 1.5))
        for b in (1, 2, 3):
            mk.cmd("rtt %d 0" % b)
    elif kind == "broker":
        b = rnd.randint(1, 3)
        log("broker %d down" % b)
        mk.cmd("down %d" % b)
        time.sleep(rnd.uniform(0.5, 2))
        if rnd.random() < 0.5:
            log("kill -9 relay while broker %d is down" % b)
            c.kill("relay")
            start_relay(c)
            time.sleep(rnd.uniform(0.2, 1))
        mk.cmd("up %d" % b)
    elif kind == "leader":
        b = rnd.randint(1, 3)
        log("partition leader -> broker %d" % b)
        mk.cmd("leader 0 %d" % b)
    elif kind == "errors":
        err = rnd.choice(["NOT_ENOUGH_REPLICAS", "REQUEST_TIMED_OUT"])
        n = rnd.randint(1, 5)
        log("next %d produce requests fail with %s" % (n, err))
        mk.cmd("errors produce %s %d" % (err, n))
        if rnd.random() < 0.5:
            time.sleep(rnd.uniform(0, 0.3))
            log("kill -9 relay right after")
            c.kill("relay")
            start_relay(c)
    else:
        log("all brokers down")
        for b in (1, 2, 3):
            mk.cmd("down %d" % b)
        time.sleep(rnd.uniform(1, 3))
        for b in (1, 2, 3):
            mk.cmd("up %d" % b)


def main():
    seed = int(os.environ.get("EF_SEED", "0")) or random.randrange(1 << 30)
    log("seed %d (EF_SEED=%d reproduces the fault order)" % (seed, seed))
    rnd = random.Random(seed)
    with MockKafka(TOPIC) as mk:
        # One request in flight: the mock checks producer sequence numbers only for
        # transactional producers, so with several in flight a batch failed by an injected
        # error could be passed by the next one, which a real broker refuses
        # (OUT_OF_ORDER_SEQUENCE_NUMBER) and the mock appends (README, Kafka sink).
        config = {"kafka_brokers": mk.bootstrap, "kafka_topic": TOPIC,
                  "kafka.max.in.flight.requests.per.connection": "1"}
        with Cluster("relaykafka", workers=3, config=config) as c:
            stop = threading.Event()
            counts = {}
            threads = [threading.Thread(target=load, args=(c, t, stop, counts), daemon=True)
                       for t in range(2)]
            for th in threads:
                th.start()
            start_relay(c)
            deadline = time.monotonic() + 30
            while not relay_entry(c) or relay_entry(c)[0]["position"] == 0:
                check(time.monotonic() < deadline, "relay not in /api/status: %s" % c.status())
                check(c.running("relay"), "relay exited: %s" % c.log_text("relay")[-2000:])
                time.sleep(0.1)

            for i in range(12):
                time.sleep(rnd.uniform(0.1, 1.2))
                fault(c, mk, rnd, i)
                check(c.running("relay"), "relay exited: %s" % c.log_text("relay")[-3000:])

            time.sleep(1)
            stop.set()
            for th in threads:
                th.join(timeout=60)
            check(len(counts) == 2, "load threads failed")
            head = c.head()
            log("load done: %d rounds, head %d" % (sum(counts.values()), head))
            check(head > 800, "too little load to mean anything: head %d" % head)
            deadline = time.monotonic() + 120
            while not relay_entry(c) or relay_entry(c)[0]["position"] != head:
                check(time.monotonic() < deadline, "relay not at head %d: %s" % (head, c.status()))
                check(c.running("relay"), "relay exited: %s" % c.log_text("relay")[-3000:])
                time.sleep(0.2)

            msgs = kcat_messages(mk.bootstrap, TOPIC)
            dups = check_topic_matches_log(c, msgs)
            log("duplicates in the partition: %d of %d messages" % (dups, len(msgs)))

            # kcat's plain format shows the same: key, headers, body per line.
            p = subprocess.run(["kcat", "-C", "-b", mk.bootstrap, "-t", TOPIC, "-p", "0", "-o", "-1",
                                "-e", "-q", "-f", "%k %h %s\\n"], capture_output=True, text=True,
                               timeout=60)
            last = c.dump(start=head)[-1]
            check(p.returncode == 0 and p.stdout.startswith(last["stream"] + " Eventfold-Position=%d,"
                                                            % head),
                  "kcat -f: %r (exit %d %s)" % (p.stdout[:300], p.returncode, p.stderr[-300:]))

            # SIGTERM stops it cleanly.
            os.kill(c.pid("relay"), signal.SIGTERM)
            rc = c.procs["relay"].wait(timeout=30)
            check(rc == 0, "relay exit %s after SIGTERM: %s" % (rc, c.log_text("relay")[-2000:]))


run(main, 600)
