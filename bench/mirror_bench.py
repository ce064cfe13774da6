#!/usr/bin/env python3
"""mirror_bench: eventfold-mirror's figures for `make bench` (section "mirror").

1. Catch-up: a JetStream stream (3 replicas, private three-node cluster on loopback) is
   filled with EF_BENCH_MIRROR_EVENTS events (tests/integration/mirrorlib.py renders them as
   the relay does); then an empty replica's eventfold-mirror copies them into its log
   (checked, appended, fdatasync'd in batches): events/s from its start to its state file
   saying it holds them all. Ceiling: bench/bench_consume, a plain ordered consumer of the
   same stream that does nothing with the messages. (The local append ceiling is the log
   section's group commit.)
2. Replication lag: a leader stack with eventfold-relay and a replica stack with the mirror
   (tests/integration/harness.py), under a steady CreateOrder load from wrk paced to about
   EF_BENCH_MIRROR_RATE (2000) commands/s: a sampler deposits on the leader and reads the
   user from the replica with Min-Position = the answer's Log-Position; lag = leader answer
   -> replica answer (p50, p99), EF_BENCH_MIRROR_SAMPLES samples. Then the node leading the
   stream is killed (kill -9) and, once a new leader is elected and the replica has caught
   up, the same is measured with two nodes of three.
Prints key=value lines; EF_BENCH_OUT names a file that gets them too.
"""

import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("EF_SRCDIR") or os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))
import harness  # noqa: E402
import eftest  # noqa: E402  (tests/lib, on the path once harness is imported)
import mirrorlib  # noqa: E402
import natslib  # noqa: E402
from harness import Cluster, binary, check, expect  # noqa: E402

QUICK = os.environ.get("EF_BENCH_QUICK", "0") in ("1", "yes")
EVENTS = int(os.environ.get("EF_BENCH_MIRROR_EVENTS", "20000" if QUICK else "100000"))
RATE = int(os.environ.get("EF_BENCH_MIRROR_RATE", "2000"))
SAMPLES = int(os.environ.get("EF_BENCH_MIRROR_SAMPLES", "150" if QUICK else "500"))
BENCH_DIR = os.environ.get("EF_BENCH_DIR", "/tmp")
WRK = os.environ.get("WRK") or shutil.which("wrk") or "/usr/bin/wrk"
LOAD_CONNS = 8
RESULTS = []


def emit(key, value):
    RESULTS.append((key, value))
    print("%s=%s" % (key, value), flush=True)


def fill_stream(nats, stream, prefix, n):
    """Publishes n events, pipelined: a window of requests in flight, each acknowledged."""
    mirrorlib.create_stream(nats, stream, prefix)
    events = mirrorlib.shop_events(n)
    with nats.client(timeout=60) as c:
        window = 500
        for i in range(0, n, window):
            chunk = events[i:i + window]
            replies = []
            for ev in chunk:
                c.inbox_n += 1
                reply = "%s.%d" % (c.inbox, c.inbox_n)
                replies.append(reply)
                c.publish(ev.subject(prefix), ev.body(), ev.headers(), reply)
            got = 0
            while got < len(replies):
                m = c._next()
                if isinstance(m, dict) and m["subject"] in replies:
                    check(b'"error"' not in m["data"], "publish: %r" % m["data"][:200])
                    got += 1
    return events


def catch_up(nats):
    t0 = time.monotonic()
    fill_stream(nats, "BENCH", "bench", EVENTS)
    emit("mirror_fill_seconds", "%.1f" % (time.monotonic() - t0))
    p = subprocess.run([binary("bench/bench_consume"), nats.urls, "BENCH", "bench.>"], capture_output=True,
                       text=True, timeout=300)
    check(p.returncode == 0, "bench_consume: %s" % p.stderr.strip())
    print(p.stdout.strip(), flush=True)
    kv = dict(w.split("=", 1) for w in p.stdout.split())
    check(int(kv["consume_events"]) == EVENTS, "bench_consume read %s events" % kv["consume_events"])
    emit("mirror_consume_events_per_second", kv["consume_events_per_second"])

    tmp = eftest.tmpdir("bench-mirror", BENCH_DIR)
    data = os.path.join(tmp, "data")
    conf = os.path.join(tmp, "mirror.conf")
    with open(conf, "w") as f:
        f.write("nats_url = %s\nnats_stream = BENCH\nnats_subject_prefix = bench\n" % nats.urls)
    t0 = time.monotonic()
    m = eftest.spawn([binary("eventfold-mirror"), "--data", data, "--config", conf],
                     os.path.join(tmp, "mirror.log"))
    try:
        while True:
            st = mirrorlib.read_state(data)
            if st and st["position"] >= EVENTS:
                break
            check(m.poll() is None, "mirror exited with %s" % m.returncode)
            check(time.monotonic() - t0 < 600, "mirror catch-up over 600 s")
            time.sleep(0.005)
        t = time.monotonic() - t0
    finally:
        eftest.stop(m, timeout=30)
    emit("mirror_events", EVENTS)
    emit("mirror_catchup_seconds", "%.3f" % t)
    emit("mirror_catchup_events_per_second", "%.0f" % (EVENTS / t))
    eftest.rmtree(tmp)


def seed(leader, n_users=100):
    cl = leader.client()
    item = "bench-item"
    expect(cl.post("/api/items", {"item_id": item, "name": "Bench", "category": "bench", "price_cents": 100}), 201)
    for _ in range(10):
        expect(cl.post("/api/items/%s/restock" % item, {"quantity": 1000000}), 200)
    users = ["bench-u%d" % i for i in range(n_users)]
    for u in users:
        expect(cl.post("/api/users", {"user_id": u, "name": "Bench user " + u}), 201)
    cl.close()
    return item, users


def lag_samples(leader, replica, users, n):
    """Leader answer -> replica answer with Min-Position, in ms, sorted; and the load rate."""
    lc, rc = leader.client(), replica.client()
    d = []
    h0, t_start = leader.head(), time.monotonic()
    for i in range(n):
        u = users[i % len(users)]
        w = expect(lc.post("/api/users/%s/deposits" % u, {"amount_cents": 1}), 200)
        t0 = time.monotonic()
        r = rc.get("/api/users/%s" % u, headers={"Min-Position": str(w.position), "Prefer": "wait=10"})
        expect(r, 200)
        d.append((time.monotonic() - t0) * 1000)
    rate = (leader.head() - h0 - n) / (time.monotonic() - t_start)
    lc.close()
    rc.close()
    d.sort()
    return d, rate


def replication_lag(nats):
    check(os.access(WRK, os.X_OK), "wrk not found (Debian: apt-get install wrk)")
    cfg = {"nats_url": nats.urls, "nats_stream": "EVENTFOLD"}
    with Cluster("bench-leader", workers=2, config=cfg) as leader:
        leader.start("relay")
        with Cluster("bench-replica", workers=2, config=cfg, leader_port=leader.port) as replica:
            item, users = seed(leader)
            ufile = os.path.join(leader.tmp, "users.txt")
            with open(ufile, "w") as f:
                f.write("\n".join(users) + "\n")
            delay = max(0, LOAD_CONNS * 1000 // RATE - 1)
            env = dict(os.environ, EF_BENCH_USERS=ufile, EF_BENCH_ITEM=item, EF_BENCH_LUA_DIR=HERE,
                       EF_BENCH_DELAY_MS=str(delay))
            load = subprocess.Popen([WRK, "-t", "2", "-c", str(LOAD_CONNS), "-d", "600s", "-s",
                                     os.path.join(HERE, "http_create_order_paced.lua"),
                                     "http://127.0.0.1:%d/" % leader.port], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, env=env)
            try:
                time.sleep(1.0)
                if load.poll() is not None:
                    raise harness.TestFailure("wrk exited: %s" % load.communicate()[0][-300:])
                for tag in ("", "_one_node_down"):
                    if tag:
                        node = nats.stream_leader("EVENTFOLD")
                        nats.kill(node.name)
                        nats.stream_leader("EVENTFOLD")  # waits for the election
                        time.sleep(2.0)
                    d, rate = lag_samples(leader, replica, users, SAMPLES)
                    emit("mirror_lag%s_samples" % tag, len(d))
                    emit("mirror_lag%s_load_commands_per_second" % tag, "%.0f" % rate)
                    emit("mirror_lag%s_p50_ms" % tag, "%.2f" % d[len(d) // 2])
                    emit("mirror_lag%s_p99_ms" % tag, "%.2f" % d[int(len(d) * 0.99)])
                    emit("mirror_lag%s_max_ms" % tag, "%.2f" % d[-1])
            finally:
                if load.poll() is None:
                    load.terminate()  # our child, by its PID
                load.wait(timeout=30)
            emit("mirror_lag_target_rate", RATE)


def main():
    print("eventfold-mirror benchmark: catch-up of %d events, replication lag at about %d commands/s"
          % (EVENTS, RATE), flush=True)
    with natslib.NatsCluster("bench-catchup") as nats:
        catch_up(nats)
    with natslib.NatsCluster("bench-lag") as nats:
        replication_lag(nats)
    out = os.environ.get("EF_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            f.write("".join("%s=%s\n" % kv for kv in RESULTS))


if __name__ == "__main__":
    harness.run(main, budget=900)
