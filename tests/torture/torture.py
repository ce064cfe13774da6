#!/usr/bin/env python3
"""torture: crash torture of a whole eventfold deployment (API.md sections 1 and 7).

A private stack (tests/integration/harness.py: nginx, eventfold-command, eventfold-query,
eventfold-tailer) takes a mixed command load from TORTURE_THREADS clients. In each of
TORTURE_CYCLES short cycles, at a random moment, one of these gets SIGKILL: the command
master with its workers, only the command workers, the tailer, the query program, or all
three; they are restarted while the load goes on. When the cycle's load has stopped:
  - every command that was answered 2xx is in the log at its Log-Position, on its stream,
    with its event type (eventfoldctl dump, read incrementally);
  - eventfoldctl verify is clean;
  - the invariants hold on the whole log (logcheck.Fold: dense positions and versions, no
    negative wallet, no oversold item, legal order lifecycles only);
  - deposits carry an Idempotency-Key and a unique amount; one whose answer was lost is
    sent again with the same key, and no deposit is ever in the log twice.
Every 10 cycles a sample of the read model is compared with the log, once the tailer has
caught up. At the end the whole read model is compared with what the log implies, and with
a second stack started on a copy of the log (a from-scratch rebuild).

Environment: TORTURE_CYCLES (100), TORTURE_THREADS (8), TORTURE_SEED (random; printed),
TORTURE_BUDGET (seconds, 900), EF_BUILDDIR, EF_SRCDIR, EF_NGINX, EF_KEEP_TMP=1.
Prints one summary line: cycles, acknowledged commands, losses (must be 0), violations.
Exit status 0 only when there were no losses, no violations and every check passed.
"""

import http.client
import os
import random
import shutil
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Cluster, TestFailure, check, log, run  # noqa: E402
import eftest  # noqa: E402  (tests/lib, on the path once harness is imported)
from logcheck import Fold, model_diffs  # noqa: E402

CYCLES = int(os.environ.get("TORTURE_CYCLES", "100"))
THREADS = int(os.environ.get("TORTURE_THREADS", "8"))
SEED = int(os.environ.get("TORTURE_SEED", str(random.SystemRandom().randrange(1 << 30))))
BUDGET = int(os.environ.get("TORTURE_BUDGET", "900"))
USERS = 20
ITEMS = 12
KILLS = ["command", "workers", "tailer", "query", "all"]
CONFIG = {"segment_bytes": 1 << 20, "snapshot_every": 500}

EVENT_OF = {"register": "UserRegistered", "deposit": "FundsDeposited", "add_item": "ItemAdded",
            "restock": "ItemRestocked", "order": "OrderCreated", "pay": "PaymentProcessed",
            "ship": "OrderShipped", "deliver": "OrderDelivered", "cancel": "OrderCancelled"}
# Which order statuses make a transition worth trying (other statuses are tried too, rarely).
WANT_STATUS = {"pay": "created", "ship": "paid", "deliver": "shipped", "cancel": "created"}


class Shared:
    """What the load threads learn: known ids, orders' last answered status, the acks."""

    def __init__(self):
        self.lock = threading.Lock()
        self.users = []
        self.items = []
        self.orders = {}   # order id -> last status answered 2xx
        self.acked = []    # (position, stream, event type, description, expected data fields)
        self.unknown = 0   # requests without an answer (connection reset, 502 ...)
        self.pending = []  # deposits without an answer, resent with the same Idempotency-Key
        self.deposits = set()  # amount_cents of every deposit sent (each amount is unique)
        self.retried = 0
        self.answers = {}  # status code -> count
        self.seq = 0

    def next_id(self, prefix):
        with self.lock:
            self.seq += 1
            return "%s-%d-%d" % (prefix, SEED % 100000, self.seq)


def pick_command(rnd, sh):
    """One random command: (kind, path, body, stream, headers).

    Deposits carry an Idempotency-Key and a unique amount, which identifies their event in
    the log: a deposit whose answer was lost is sent again with the same key (API.md 4:
    "also across worker processes and restarts"), and must then be in the log once."""
    r = rnd.random()
    with sh.lock:
        users, items = list(sh.users), list(sh.items)
        orders = list(sh.orders.items())
        if sh.pending and r < 0.3:
            sh.retried += 1
            return sh.pending.pop(0)
    if r < 0.04:
        uid = sh.next_id("u")
        return "register", "/api/users", {"user_id": uid, "name": "T " + uid}, "user-" + uid, None
    if r < 0.14:
        uid = rnd.choice(users)
        key = sh.next_id("dep")
        amount = 100 + int(key.rsplit("-", 1)[1])
        with sh.lock:
            sh.deposits.add(amount)
        return ("deposit", "/api/users/%s/deposits" % uid, {"amount_cents": amount},
                "user-" + uid, {"Idempotency-Key": key})
    if r < 0.19:
        iid = rnd.choice(items)
        return "restock", "/api/items/%s/restock" % iid, {"quantity": rnd.randint(1, 50)}, "item-" + iid, None
    if r < 0.55 or not orders:
        oid = sh.next_id("o")
        lines = [{"item_id": i, "quantity": rnd.randint(1, 4)} for i in rnd.sample(items, rnd.randint(1, 3))]
        return ("order", "/api/orders", {"user_id": rnd.choice(users), "items": lines, "order_id": oid},
                "order-" + oid, None)
    kind = rnd.choice(["pay", "pay", "ship", "deliver", "cancel"])
    good = [o for o, st in orders if st == WANT_STATUS[kind] or (kind == "cancel" and st == "paid")]
    oid = rnd.choice(good) if good and rnd.random() < 0.9 else rnd.choice(orders)[0]
    body = {"reason": "torture"} if kind == "cancel" and rnd.random() < 0.5 else {}
    return kind, "/api/orders/%s/%s" % (oid, kind), body, "order-" + oid, None


def load_thread(cluster, sh, rnd, stop):
    cl = cluster.client(timeout=15)
    while not stop.is_set():
        cmd = pick_command(rnd, sh)
        r = send(cl, sh, cmd)
        if r is None:
            time.sleep(0.01)
            continue
        kind, path, body, stream, _ = cmd
        with sh.lock:
            if 200 <= r.status < 300:
                if kind == "order":
                    sh.orders[body["order_id"]] = "created"
                elif kind in ("pay", "ship", "deliver", "cancel"):
                    sh.orders[stream[len("order-"):]] = {"pay": "paid", "ship": "shipped",
                                                         "deliver": "delivered", "cancel": "cancelled"}[kind]
                elif kind == "register":
                    sh.users.append(stream[len("user-"):])
        if r.status >= 500:
            time.sleep(0.01)  # 502 while the command program restarts: do not spin
    cl.close()


def send(cl, sh, cmd):
    """Sends one command and books its answer: a 2xx goes to sh.acked; no answer or a 5xx
    is counted as unknown (and a deposit is queued to be sent again). Returns the answer
    or None."""
    kind, path, body, stream, headers = cmd
    try:
        r = cl.post(path, body, headers=headers)
    except (OSError, http.client.HTTPException):  # killed under this request: outcome unknown
        cl.close()
        r = None
    with sh.lock:
        if r is not None:
            sh.answers[r.status] = sh.answers.get(r.status, 0) + 1
        if r is not None and 200 <= r.status < 300:
            want = {"amount_cents": body["amount_cents"]} if kind == "deposit" else None
            sh.acked.append((r.position, stream, EVENT_OF[kind], "%s %s -> %d" % (kind, path, r.status), want))
        elif r is None or r.status >= 500:
            sh.unknown += 1
            if headers and "Idempotency-Key" in headers:
                sh.pending.append(cmd)
    return r


def drain_pending(cluster, sh):
    """Sends every unanswered deposit again (same key) until it gets a definitive answer."""
    cl = cluster.client(timeout=15)
    deadline = time.monotonic() + 60
    while True:
        with sh.lock:
            if not sh.pending:
                break
            cmd = sh.pending.pop(0)
            sh.retried += 1
        check(time.monotonic() < deadline, "deposits still unanswered after 60 s of retries")
        send(cl, sh, cmd)
    cl.close()


def command_ready(cluster, timeout=15):
    """True once a command worker answers (an empty body is a 400 from a live worker)."""
    cl = cluster.client(timeout=5)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                if cl.post("/api/users", {}).status == 400:
                    return True
            except OSError:
                cl.close()
            time.sleep(0.05)
        return False
    finally:
        cl.close()


def kill_and_restart(cluster, what):
    if what == "workers":
        pids = cluster.worker_pids("command")
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # The master must replace them by itself.
        check(command_ready(cluster), "command master did not replace killed workers %s" % pids)
        return
    names = ["command", "query", "tailer"] if what == "all" else [what]
    for n in names:
        cluster.kill(n, signal.SIGKILL)
    for n in names:
        cluster.start(n)
    check(command_ready(cluster), "command program not answering after restart")


class Checker:
    """Reads the log incrementally and checks acks and invariants against it."""

    def __init__(self, cluster, deposits):
        self.c = cluster
        self.fold = Fold()
        self.events = []
        self.checked_acks = 0
        self.losses = []
        self.deposits = deposits  # amounts sent with an Idempotency-Key
        self.deposit_count = {}   # amount -> FundsDeposited events seen

    def catch_up_log(self):
        new = self.c.dump(start=self.fold.head + 1)
        for ev in new:
            if ev.get("position", 0) <= self.fold.head:
                continue
            self.events.append(ev)
            self.fold.apply(ev)
            if ev.get("type") == "FundsDeposited":
                amount = (ev.get("data") or {}).get("amount_cents")
                n = self.deposit_count[amount] = self.deposit_count.get(amount, 0) + 1
                if n > 1 and amount in self.deposits:
                    self.fold.bad(ev, "deposit of %r (one request, one Idempotency-Key) applied %d times"
                                  % (amount, n))

    def check_acks(self, acked):
        for pos, stream, typ, what, want in acked[self.checked_acks:]:
            ev = self.events[pos - 1] if isinstance(pos, int) and 1 <= pos <= len(self.events) else None
            data = (ev or {}).get("data") or {}
            if ev is None or ev.get("stream") != stream or ev.get("type") != typ or \
                    any(data.get(k) != v for k, v in (want or {}).items()):
                self.losses.append("%s acknowledged at Log-Position %r, log has %r"
                                   % (what, pos, None if ev is None else (ev.get("stream"), ev.get("type"))))
        self.checked_acks = len(acked)


def read_model_diffs(cluster, fold, users, items, orders, min_pos):
    """Compares GET answers (read model caught up to min_pos) with the fold."""
    cl = cluster.client(timeout=30)
    diffs = model_diffs(cl, fold, (users, items, orders), {"Min-Position": str(min_pos), "Prefer": "wait=10"})
    cl.close()
    return diffs


def answers(cluster, fold, min_pos):
    """Every user, item and order as the query side answers it (bodies as parsed JSON)."""
    cl = cluster.client(timeout=30)
    out = {}
    hdr = {"Min-Position": str(min_pos), "Prefer": "wait=10"}
    for kind, ids in (("users", fold.users), ("items", fold.items), ("orders", fold.orders)):
        for i in sorted(ids):
            r = cl.get("/api/%s/%s" % (kind, i), headers=hdr)
            out["/api/%s/%s" % (kind, i)] = (r.status, r.json if r.status == 200 else None)
    cl.close()
    return out


def rebuilt_stack_diffs(cluster, fold, mine):
    """Starts a second stack on a copy of the log and compares every answer with `mine`."""
    with Cluster("torture-rebuild", workers=1) as c2:
        for n in ("command", "query", "tailer"):
            c2.kill(n, signal.SIGKILL)
        eftest.rmtree(c2.data)
        os.makedirs(c2.data)
        shutil.copytree(os.path.join(cluster.data, "log"), os.path.join(c2.data, "log"))
        for n in ("command", "query", "tailer"):
            c2.start(n)
        c2.wait_ready()
        c2.wait_caught_up(fold.head, timeout=120)
        theirs = answers(c2, fold, fold.head)
    return ["%s: stack %r, rebuilt %r" % (k, mine[k], theirs.get(k))
            for k in sorted(mine) if theirs.get(k) != mine[k]]


def main():
    t0 = time.monotonic()
    rnd = random.Random(SEED)
    log("torture: seed=%d cycles=%d threads=%d" % (SEED, CYCLES, THREADS))
    kills = {k: 0 for k in KILLS}
    with Cluster("torture", workers=2, config=CONFIG) as c:
        sh = Shared()
        cl = c.client()
        for i in range(USERS):
            uid = sh.next_id("u")
            check(cl.post("/api/users", {"user_id": uid, "name": "U%d" % i}).status == 201, "setup: user")
            check(cl.post("/api/users/%s/deposits" % uid, {"amount_cents": 500000}).status == 200, "setup: deposit")
            sh.users.append(uid)
        for i in range(ITEMS):
            iid = sh.next_id("i")
            check(cl.post("/api/items", {"item_id": iid, "name": "Item %d" % i, "category": "cat%d" % (i % 4),
                                         "price_cents": rnd.randint(50, 5000)}).status == 201, "setup: item")
            check(cl.post("/api/items/%s/restock" % iid, {"quantity": 200}).status == 200, "setup: restock")
            sh.items.append(iid)
        cl.close()
        chk = Checker(c, sh.deposits)
        quiet_cycles = 0
        for cycle in range(1, CYCLES + 1):
            stop = threading.Event()
            threads = [threading.Thread(target=load_thread, args=(c, sh, random.Random(rnd.random()), stop),
                                        daemon=True) for _ in range(THREADS)]
            acks_before = len(sh.acked)
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0.05, 0.6))
            what = rnd.choice(KILLS)
            kills[what] += 1
            kill_and_restart(c, what)
            acks_at_restart = len(sh.acked)
            time.sleep(rnd.uniform(0.1, 0.4))
            stop.set()
            for t in threads:
                t.join(timeout=60)
            check(not any(t.is_alive() for t in threads), "load threads did not stop")
            quiet_cycles = quiet_cycles + 1 if len(sh.acked) == acks_at_restart else 0
            check(quiet_cycles < 5, "no command acknowledged after 5 restarts in a row")
            chk.catch_up_log()
            chk.check_acks(sh.acked)
            c.verify()
            if cycle % 10 == 0 or cycle == CYCLES:
                sample_u = rnd.sample(sorted(chk.fold.users), min(5, len(chk.fold.users)))
                sample_i = rnd.sample(sorted(chk.fold.items), min(5, len(chk.fold.items)))
                sample_o = rnd.sample(sorted(chk.fold.orders), min(10, len(chk.fold.orders)))
                d = read_model_diffs(c, chk.fold, sample_u, sample_i, sample_o, chk.fold.head)
                check(not d, "cycle %d: read model disagrees with the log:\n  %s" % (cycle, "\n  ".join(d[:20])))
            log("cycle %d/%d kill=%s acks=+%d events=%d losses=%d violations=%d"
                % (cycle, CYCLES, what, len(sh.acked) - acks_before, chk.fold.head,
                   len(chk.losses), len(chk.fold.violations)))
            if chk.losses or chk.fold.violations:
                break

        # Unanswered deposits get their definitive answer (same Idempotency-Key), then the
        # log is checked once more: each of them must be in it exactly once if acknowledged.
        drain_pending(c, sh)
        chk.catch_up_log()
        chk.check_acks(sh.acked)
        c.verify()

        # The end: the whole read model against the log, then against a rebuild from the log.
        diffs = []
        if not chk.losses and not chk.fold.violations:
            c.wait_caught_up(chk.fold.head, timeout=120)
            diffs = read_model_diffs(c, chk.fold, sorted(chk.fold.users), sorted(chk.fold.items),
                                     sorted(chk.fold.orders), chk.fold.head)
            if not diffs:
                diffs = rebuilt_stack_diffs(c, chk.fold, answers(c, chk.fold, chk.fold.head))
        # A worker that died of a sanitizer report may not have lost anything, but it is a bug.
        for name in ("command", "query", "tailer"):
            text = c.log_text(name)
            for mark in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
                at = text.find(mark)
                if at >= 0:
                    diffs.append("%s log has a sanitizer report: %s" % (name, text[max(0, at - 200):at + 1500]))
                    break
        print("torture: seed=%d cycles=%d acknowledged=%d losses=%d violations=%d events=%d "
              "unanswered=%d retried=%d read_model_diffs=%d kills=%s answers=%s elapsed=%.0fs"
              % (SEED, cycle, len(sh.acked), len(chk.losses), len(chk.fold.violations), chk.fold.head,
                 sh.unknown, sh.retried, len(diffs), kills, dict(sorted(sh.answers.items())), time.monotonic() - t0),
              flush=True)
        for msg in chk.losses[:20]:
            print("LOSS:", msg)
        for msg in chk.fold.violations[:20]:
            print("VIOLATION:", msg)
        for msg in diffs[:20]:
            print("READ MODEL/SANITIZER:", msg)
        if chk.losses or chk.fold.violations or diffs:
            raise TestFailure("torture found %d losses, %d violations, %d read-model differences "
                              "or sanitizer reports"
                              % (len(chk.losses), len(chk.fold.violations), len(diffs)))


if __name__ == "__main__":
    run(main, BUDGET)
