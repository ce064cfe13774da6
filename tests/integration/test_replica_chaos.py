#!/usr/bin/env python3
"""A read replica under chaos (API.md section 9): a three-node NATS JetStream cluster, a
leader stack (nginx, command, query, tailer) with eventfold-relay --sink nats, and a replica
stack (eventfold-mirror, tailer, query) behind its own nginx (eventfold-replica.conf).

Under a steady mixed command load on the leader (the torture's commands), at random
moments: kill -9 of the relay, of the mirror, of the replica's tailer and of the NATS node
that leads the stream, each several times, and one restart of the whole NATS cluster. All
along, a read-your-writes client deposits through the leader's nginx and reads the wallet
from the replica's nginx with Min-Position: P: it must see its write every time (a 503
not_caught_up while the bus is down is allowed and retried; a stale answer never is).

At the end, once the replica has caught up:
  - the replica's `eventfoldctl dump` equals the leader's, line for line, and verifies;
  - every command the leader acknowledged is in it at its Log-Position, and is readable on
    the replica with Min-Position;
  - the replica's read model equals the leader's (every user, item and order, the users'
    order lists and the daily stats, answer for answer) and what the log implies
    (logcheck.model_diffs);
  - neither the relay nor the mirror ever stopped on a gap or a disagreement.

Environment: CHAOS_SEED (random; printed), CHAOS_SECONDS (chaos phase length, 50).
"""

import http.client
import json
import os
import random
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "torture"))

import harness  # noqa: E402
import natslib  # noqa: E402
from harness import Cluster, check, log  # noqa: E402
from logcheck import Fold, model_diffs  # noqa: E402
import torture  # noqa: E402

SEED = int(os.environ.get("CHAOS_SEED", str(random.SystemRandom().randrange(1 << 30))))
CHAOS_SECONDS = float(os.environ.get("CHAOS_SECONDS", "50"))
LOAD_THREADS = 2
STREAM = "EVENTFOLD"


def load_thread(cluster, sh, rnd, stop):
    """The torture's mixed commands against the leader, paced (a steady load, not a flood)."""
    cl = cluster.client(timeout=15)
    while not stop.is_set():
        cmd = torture.pick_command(rnd, sh)
        r = torture.send(cl, sh, cmd)
        if r is not None and 200 <= r.status < 300:
            kind, path, body, stream, _ = cmd
            with sh.lock:
                if kind == "order":
                    sh.orders[body["order_id"]] = "created"
                elif kind in ("pay", "ship", "deliver", "cancel"):
                    sh.orders[stream[len("order-"):]] = {"pay": "paid", "ship": "shipped",
                                                         "deliver": "delivered", "cancel": "cancelled"}[kind]
                elif kind == "register":
                    sh.users.append(stream[len("user-"):])
        stop.wait(0.015 if r is not None and r.status < 500 else 0.05)
    cl.close()


class ReadYourWrites(threading.Thread):
    """Deposits into its own user through the leader, reads the balance from the replica
    with Min-Position; counts rounds, waits (503 not_caught_up) and failures."""

    def __init__(self, leader, replica, sh):
        super().__init__(daemon=True)
        self.leader, self.replica, self.sh = leader, replica, sh
        self.stop = threading.Event()
        self.rounds = self.not_caught_up = 0
        self.failures = []
        self.balance = 0
        self.max_wait = 0.0

    def run(self):
        lc, rc = self.leader.client(timeout=20), self.replica.client(timeout=20)
        n = 0
        while not self.stop.is_set() and len(self.failures) < 5:
            n += 1
            try:
                r = lc.post("/api/users/ryw/deposits", {"amount_cents": 1},
                            headers={"Idempotency-Key": "ryw-%d-%d" % (SEED, n)})
            except (OSError, http.client.HTTPException):
                lc.close()
                continue
            if r.status != 200:
                self.failures.append("deposit: %d %r" % (r.status, r.body[:200]))
                continue
            p, self.balance = r.position, r.json["balance_cents"]
            with self.sh.lock:
                self.sh.acked.append((p, "user-ryw", "FundsDeposited", "ryw deposit %d" % n, None))
            t0 = time.monotonic()
            while not self.stop.is_set():
                try:
                    q = rc.get("/api/users/ryw", headers={"Min-Position": str(p), "Prefer": "wait=5"})
                except (OSError, http.client.HTTPException) as e:
                    self.failures.append("replica read: %r" % e)
                    rc.close()
                    break
                if q.status == 503 and (q.json or {}).get("code") == "not_caught_up":
                    self.not_caught_up += 1
                    if time.monotonic() - t0 > 90:
                        self.failures.append("position %d not on the replica after 90 s" % p)
                        break
                    continue
                if q.status != 200 or (q.position or 0) < p or q.json["wallet_balance_cents"] != self.balance:
                    self.failures.append("read of position %d: %d Log-Position %r balance %r (wanted %d)"
                                         % (p, q.status, q.position, (q.json or {}).get("wallet_balance_cents"),
                                            self.balance))
                self.rounds += 1
                self.max_wait = max(self.max_wait, time.monotonic() - t0)
                break
            self.stop.wait(0.05)
        lc.close()
        rc.close()


def exited_only_by_kill(cluster, name):
    """A program the chaos kills must never have stopped by itself (exit 1 on a gap...)."""
    p = cluster.procs.get(name)
    if p is not None and p.poll() is not None:
        check(p.returncode == -signal.SIGKILL, "%s exited by itself with %s: %s"
              % (name, p.returncode, cluster.log_text(name)[-2000:]))


def kill_restart(cluster, name, rnd):
    exited_only_by_kill(cluster, name)
    cluster.kill(name, signal.SIGKILL)
    time.sleep(rnd.uniform(0, 1.0))
    cluster.start(name)


def chaos(nats, leader, replica, rnd):
    actions = ["relay"] * 3 + ["mirror"] * 3 + ["tailer"] * 3 + ["nats-leader"] * 3
    rnd.shuffle(actions)
    actions.insert(rnd.randrange(3, len(actions) - 2), "nats-all")
    pause = CHAOS_SECONDS / (len(actions) + 1)
    done = {}
    for what in actions:
        time.sleep(rnd.uniform(0.3, 1.7) * pause)
        if what == "relay":
            kill_restart(leader, "relay", rnd)
        elif what in ("mirror", "tailer"):
            kill_restart(replica, what, rnd)
        elif what == "nats-leader":
            node = nats.stream_leader(STREAM)
            nats.kill(node.name)
            time.sleep(rnd.uniform(0.5, 2.0))
            nats.start(node.name)
        else:
            nats.kill_all()
            time.sleep(rnd.uniform(0.5, 1.5))
            nats.start_all()
        done[what] = done.get(what, 0) + 1
        log("chaos: %s (leader head %d)" % (what, leader.head()))
    return done


def wait_replica(leader, replica, timeout=120):
    """Until the replica's log and read model have the leader's head."""
    head = leader.head()
    deadline = time.monotonic() + timeout
    while True:
        for name in ("mirror", "tailer"):
            exited_only_by_kill(replica, name)
        exited_only_by_kill(leader, "relay")
        st = replica.status()
        if st["log"]["head_position"] == head and st["read_model"]["position"] == head:
            return head, st
        check(time.monotonic() < deadline, "replica not caught up with the leader's head %d after %d s: %s"
              % (head, timeout, st))
        time.sleep(0.1)


def compare_models(leader, replica, fold, head):
    hdr = {"Min-Position": str(head), "Prefer": "wait=10"}
    lc, rc = leader.client(timeout=30), replica.client(timeout=30)
    diffs = model_diffs(rc, fold, headers=hdr)
    paths = ["/api/%s/%s" % (kind, i) for kind, ids in (("users", fold.users), ("items", fold.items),
                                                         ("orders", fold.orders)) for i in sorted(ids)]
    paths += ["/api/users/%s/orders?limit=100" % u for u in sorted(fold.users)]
    paths += ["/api/stats/daily?from=2000-01-01&to=2999-12-31"]
    for path in paths:
        a, b = lc.get(path, headers=hdr), rc.get(path, headers=hdr)
        if (a.status, a.body) != (b.status, b.body):
            diffs.append("%s: leader %d %r, replica %d %r" % (path, a.status, a.body[:200], b.status, b.body[:200]))
    lc.close()
    rc.close()
    return diffs, len(paths)


def check_acks(acked, events, replica):
    """Every acknowledged command is in the replica's log at its position and readable there
    with Min-Position (each resource once, at the highest position acknowledged for it)."""
    latest = {}
    for pos, stream, typ, what, _ in acked:
        ev = events[pos - 1] if isinstance(pos, int) and 1 <= pos <= len(events) else None
        check(ev is not None and ev["stream"] == stream and ev["type"] == typ,
              "%s acknowledged at %r, the replica's log has %r" % (what, pos, ev and (ev["stream"], ev["type"])))
        latest[stream] = max(latest.get(stream, 0), pos)
    cl = replica.client(timeout=30)
    for stream, pos in latest.items():
        kind, ident = stream.split("-", 1)
        r = cl.get("/api/%ss/%s" % (kind, ident), headers={"Min-Position": str(pos), "Prefer": "wait=10"})
        check(r.status == 200 and r.position >= pos, "GET %s with Min-Position %d on the replica: %d %r"
              % (stream, pos, r.status, r.body[:200]))
    cl.close()
    return len(latest)


def main():
    t0 = time.monotonic()
    rnd = random.Random(SEED)
    torture.SEED = SEED
    log("replica chaos: seed=%d" % SEED)
    with natslib.NatsCluster("chaos") as nats:
        cfg = {"nats_url": nats.urls, "nats_stream": STREAM, "segment_bytes": 1 << 20}
        with Cluster("chaos-leader", workers=2, config=cfg) as leader:
            leader.start("relay")
            with Cluster("chaos-replica", workers=2, config=cfg, leader_port=leader.port) as replica:
                sh = torture.Shared()
                cl = leader.client()
                for i in range(8):
                    uid = sh.next_id("u")
                    check(cl.post("/api/users", {"user_id": uid, "name": "U%d" % i}).status == 201, "setup user")
                    check(cl.post("/api/users/%s/deposits" % uid, {"amount_cents": 500000}).status == 200, "deposit")
                    sh.users.append(uid)
                for i in range(6):
                    iid = sh.next_id("i")
                    check(cl.post("/api/items", {"item_id": iid, "name": "Item %d" % i, "category": "c%d" % (i % 3),
                                                 "price_cents": rnd.randint(50, 5000)}).status == 201, "setup item")
                    check(cl.post("/api/items/%s/restock" % iid, {"quantity": 100000}).status == 200, "restock")
                    sh.items.append(iid)
                # A command sent to the replica's nginx is proxied to the leader.
                r = replica.client().post("/api/users", {"user_id": "ryw", "name": "Read Your Writes"})
                check(r.status == 201, "POST through the replica's nginx: %r" % r)
                cl.close()

                stop = threading.Event()
                threads = [threading.Thread(target=load_thread, args=(leader, sh, random.Random(rnd.random()), stop),
                                            daemon=True) for _ in range(LOAD_THREADS)]
                ryw = ReadYourWrites(leader, replica, sh)
                for t in threads + [ryw]:
                    t.start()
                done = chaos(nats, leader, replica, rnd)
                time.sleep(2)
                stop.set()
                ryw.stop.set()
                for t in threads + [ryw]:
                    t.join(timeout=120)
                check(not any(t.is_alive() for t in threads + [ryw]), "load threads did not stop")
                torture.drain_pending(leader, sh)

                head, st = wait_replica(leader, replica)
                log("caught up at %d: replica %s" % (head, st.get("replica")))
                rc, lout, err = leader.ctl("dump")
                check(rc == 0, "leader dump: %s" % err)
                rc, rout, err = replica.ctl("dump")
                check(rc == 0, "replica dump: %s" % err)
                llines, rlines = lout.splitlines(), rout.splitlines()
                for i, (a, b) in enumerate(zip(llines, rlines)):
                    check(a == b, "dumps differ at line %d:\n  leader  %s\n  replica %s" % (i + 1, a, b))
                check(len(llines) == len(rlines) == head, "dump lengths: leader %d, replica %d, head %d"
                      % (len(llines), len(rlines), head))
                replica.verify()

                events = [json.loads(ln) for ln in rlines]
                fold = Fold()
                for ev in events:
                    fold.apply(ev)
                check(not fold.violations, "invariants: %s" % fold.violations[:10])
                resources = check_acks(sh.acked, events, replica)
                diffs, compared = compare_models(leader, replica, fold, head)
                check(not diffs, "the replica's read model differs:\n  %s" % "\n  ".join(diffs[:20]))
                check(not ryw.failures, "read-your-writes failures: %s" % ryw.failures)
                check(ryw.rounds >= 20, "only %d read-your-writes rounds" % ryw.rounds)
                for name in ("mirror", "tailer"):
                    check(replica.running(name), "replica %s not running at the end" % name)
                check(leader.running("relay"), "relay not running at the end")
                text = replica.log_text("mirror")
                check("gap in the stream" not in text and "disagrees" not in text, "the mirror saw a gap or a "
                      "disagreement:\n%s" % text[-2000:])
                log("replica chaos: seed=%d %s; %d events, %d acks (%d resources read with Min-Position), "
                    "%d answers compared, read-your-writes %d rounds (%d not_caught_up waits, longest %.1f s), "
                    "%.0f s" % (SEED, done, head, len(sh.acked), resources, compared, ryw.rounds,
                                ryw.not_caught_up, ryw.max_wait, time.monotonic() - t0))


if __name__ == "__main__":
    harness.run(main, budget=300)
