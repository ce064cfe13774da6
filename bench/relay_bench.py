#!/usr/bin/env python3
"""Relay benchmark: how fast eventfold-relay --sink nats empties a log of
EF_BENCH_RELAY_EVENTS events (default 1 000 000; 100 000 with EF_BENCH_QUICK=1) into an R3
JetStream stream of a private three-node nats-server cluster (tests/integration/natslib.py),
against the engine's ceiling measured in the same run: a plain asynchronous publish loop
(bench_relay ceiling) of the same message size and headers, same window, into an R3
stream on the same cluster. Prints key=value results (relay_events_per_s,
ceiling_events_per_s, relay_ratio)."""

import os
import subprocess
import sys
import time

SRCDIR = os.environ.get("EF_SRCDIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDDIR = os.environ.get("EF_BUILDDIR") or os.getcwd()
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))
import harness  # noqa: E402
import eftest  # noqa: E402  (tests/lib, on the path once harness is imported)
from harness import check, log  # noqa: E402
from natslib import NatsCluster  # noqa: E402

QUICK = os.environ.get("EF_BENCH_QUICK") == "1" or os.environ.get("EF_BENCH_SIZE") == "small"
EVENTS = int(os.environ.get("EF_BENCH_RELAY_EVENTS") or (100000 if QUICK else 1000000))


def stream_config(name):
    return {"name": name, "subjects": ["eventfold.>"], "storage": "file", "num_replicas": 3,
            "retention": "limits", "discard": "old"}


def main():
    tmp = eftest.tmpdir("bench-relay", os.environ.get("EF_BENCH_DIR"))
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    t = time.monotonic()
    out = subprocess.run([os.path.join(BUILDDIR, "bench", "bench_relay"), "gen", data, str(EVENTS)],
                         capture_output=True, text=True, check=True).stdout
    body = int(out.split("body_bytes_avg=")[1].split()[0])
    log("log of %d events written in %.1f s (body about %d bytes)" % (EVENTS, time.monotonic() - t, body))
    with NatsCluster("bench", tmp=tmp) as nc:
        nc.api_retry(lambda c: c.create_stream(stream_config("CEILING")))
        out = subprocess.run([os.path.join(BUILDDIR, "bench", "bench_relay"), "ceiling", nc.urls, "CEILING",
                              str(EVENTS), str(body)], capture_output=True, text=True, timeout=1800)
        check(out.returncode == 0, "bench_relay ceiling: %s" % out.stderr)
        ceiling = float(out.stdout.split("ceiling_events_per_s=")[1].split()[0])
        check(nc.stream_info("CEILING")["state"]["messages"] == EVENTS, "the ceiling loop lost messages")
        log("ceiling: %s" % out.stdout.strip())
        nc.api_retry(lambda c: c.delete_stream("CEILING"))

        conf = os.path.join(tmp, "eventfold.conf")
        with open(conf, "w") as f:
            f.write("nats_url = %s\nnats_stream = EVENTFOLD\n" % nc.urls)
        t0 = time.monotonic()
        p = eftest.spawn([os.path.join(BUILDDIR, "eventfold-relay"), "--data", data, "--config", conf,
                          "--sink", "nats"], os.path.join(tmp, "relay.log"))
        try:
            while True:
                info = nc.stream_info("EVENTFOLD", timeout=60)
                if info and info["state"]["last_seq"] >= EVENTS:
                    break
                check(p.poll() is None, "the relay exited with %s" % p.poll())
                time.sleep(0.05)
            secs = time.monotonic() - t0
        finally:
            eftest.stop(p, timeout=30)
        rate = EVENTS / secs
        print("relay_events=%d relay_seconds=%.2f relay_events_per_s=%.0f ceiling_events_per_s=%.0f "
              "relay_body_bytes=%d relay_ratio=%.3f" % (EVENTS, secs, rate, ceiling, body, rate / ceiling))


harness.run(main, 3600)
