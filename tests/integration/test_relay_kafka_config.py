#!/usr/bin/env python3
"""eventfold-relay --sink kafka with a bad configuration or cluster: an unknown kafka.*
property and one that would break the guarantees (acks=1) end it at once with exit 1 and one
line naming the property; a topic of several partitions ends it with one line naming the
topic (documented: the sink needs exactly one partition); unreachable brokers keep it
running, retrying with backoff, with one line when failing starts (not one per attempt),
and SIGTERM ends the retrying relay cleanly. (Brokers coming back are in test_relay_kafka.)"""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, binary, check, free_port, log, run  # noqa: E402
import eftest  # noqa: E402  (tests/lib, on the path once harness is imported)
from kafkalib import MockKafka  # noqa: E402


def relay_once(c, extra, timeout=60):
    """Runs the relay with extra config lines appended; returns (exit status, stderr)."""
    path = os.path.join(c.tmp, "relay.conf")
    with open(c.config_path) as f:
        base = f.read()
    with open(path, "w") as f:
        f.write(base + "".join("%s = %s\n" % kv for kv in extra.items()))
    p = subprocess.run([binary("eventfold-relay"), "--data", c.data, "--sink", "kafka",
                        "--config", path], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stderr


def last_line(err):
    lines = [l for l in err.splitlines() if l.strip()]
    return lines[-1] if lines else ""


def main():
    with MockKafka("eventfold.events") as mk, MockKafka("wide", partitions=3) as wide:
        with Cluster("relaykafkacfg", workers=1, start_tailer=False,
                     config={"kafka_brokers": mk.bootstrap}) as c:
            c.client().post("/api/users", {"user_id": "u1", "name": "U"})

            rc, err = relay_once(c, {"kafka.no.such.property": "1"})
            check(rc == 1 and last_line(err) ==
                  "eventfold-relay: kafka.no.such.property: unknown librdkafka property",
                  "unknown property: exit %d, %r" % (rc, err))
            rc, err = relay_once(c, {"kafka.acks": "1"})
            check(rc == 1 and "kafka.acks = 1: the Kafka sink needs all" in last_line(err),
                  "acks=1: exit %d, %r" % (rc, err))
            rc, err = relay_once(c, {"kafka.linger.ms": "soon"})
            check(rc == 1 and last_line(err).startswith("eventfold-relay: kafka.linger.ms = soon: "),
                  "bad value: exit %d, %r" % (rc, err))
            log("bad properties: one line each, exit 1")

            rc, err = relay_once(c, {"kafka_brokers": wide.bootstrap, "kafka_topic": "wide"})
            check(rc == 1 and "topic wide has 3 partitions; the Kafka sink needs a topic of exactly 1"
                  in last_line(err), "3 partitions: exit %d, %r" % (rc, err))
            log("a topic of 3 partitions: %s" % last_line(err))

            # Unreachable brokers: running, retrying, few lines.
            path = os.path.join(c.tmp, "relay.conf")
            with open(path, "w") as f:
                f.write("kafka_brokers = 127.0.0.1:%d\n" % free_port())
            logpath = os.path.join(c.tmp, "relay-unreachable.log")
            p = eftest.spawn([binary("eventfold-relay"), "--data", c.data, "--sink", "kafka",
                              "--config", path], logpath)
            try:
                time.sleep(25)  # the metadata timeout (10 s) and a few backoff rounds
                check(p.poll() is None, "relay exited on unreachable brokers: %s"
                      % open(logpath).read()[-2000:])
                text = open(logpath).read()
                failing = [l for l in text.splitlines() if "relay to kafka failing" in l]
                check(len(failing) == 1, "expected one 'failing' line: %s" % text[-3000:])
                check("no metadata for topic eventfold.events" in failing[0], failing[0])
                check(len(text.splitlines()) < 12, "too many lines while retrying:\n%s" % text)
                log("unreachable brokers: %d lines in 25 s: %s" % (len(text.splitlines()), failing[0]))
            finally:
                rc = eftest.stop(p, signal.SIGTERM, timeout=30)
            check(rc == 0, "relay exit %d after SIGTERM while retrying" % rc)


run(main, 300)
