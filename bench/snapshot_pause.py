#!/usr/bin/env python3
"""snapshot_pause: read-your-writes while the tailer snapshots a large read model.

A snapshot is a copy of the whole read model, taken by a thread beside the fold: folding, and
so read-your-writes, must not pause for it. This section builds a log of
EF_BENCH_SNAPSHOT_EVENTS events (default 3 800 000 of the all-OrderCreated mix: a read model of
about 1 GB) with bench/bench_fold (EF_BENCH_FOLD_BUILD_ONLY), folds it with `eventfoldctl
rebuild --from-scratch` and takes one snapshot of both models with `eventfoldctl snapshot` (so
that the command program starts from its snapshot, and the tailer's next snapshot comes
snapshot_every events later). Then it starts a private stack on that data directory
(tests/integration/harness.py: nginx, command, query, tailer) with snapshot_every =
EF_BENCH_SNAPSHOT_EVERY (default 4000), runs a steady CreateOrder load paced by wrk to about
EF_BENCH_SNAPSHOT_RATE commands/s (default 300), and samples read-your-writes for
EF_BENCH_SNAPSHOT_SECONDS (default 40): a deposit, then GET of that user with Min-Position =
the deposit's Log-Position, one after the other. A thread reads the tailer's log as it grows and
stamps each "snapshot taken ... ms=M" line with the time it appeared, which gives each
snapshot's copy interval [appeared - M, appeared]. Samples whose request overlapped a copy
count as "during a snapshot", the others as "between snapshots". Stops of the whole machine
(its host not running its CPUs, bench/vm_stall_watch.py) are watched for while sampling, and
the max of the samples during a snapshot is also given without those that overlapped one.

Writes key=value lines:
  snapshot_events snapshot_model_bytes (the largest snapshot's bytes) snapshot_count
  snapshot_copy_ms_max snapshot_load_commands_per_second
  ryw_snap_samples ryw_snap_p50_ms ryw_snap_p99_ms ryw_snap_max_ms ryw_snap_503
  ryw_between_samples ryw_between_p50_ms ryw_between_p99_ms ryw_between_max_ms ryw_between_503
  ryw_snap_vm_watched, and when 1: ryw_snap_vm_stops ryw_snap_vm_stop_max_ms
  ryw_snap_vm_stopped_samples ryw_snap_max_running_ms
Exits non-zero naming the cause when a step fails or no snapshot was taken while sampling.
Environment: EF_BUILDDIR, EF_SRCDIR, EF_BENCH_DIR (parent of the work directory, /tmp).
"""

import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("EF_SRCDIR") or os.path.dirname(HERE)
BUILDDIR = os.environ.get("EF_BUILDDIR") or os.getcwd()
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))
os.environ.setdefault("EF_OPENAPI", "0")  # no schema checks inside the timed samples
import harness  # noqa: E402
import eftest  # noqa: E402  (tests/lib, on the path once harness is imported)
from harness import Cluster, expect  # noqa: E402
sys.path.insert(0, HERE)
from ryw_bench import StallWatch, start_wrk, stop_wrk  # noqa: E402  (wrk in a session, an autogroup, of its own)

EVENTS = int(os.environ.get("EF_BENCH_SNAPSHOT_EVENTS", "3800000"))
EVERY = int(os.environ.get("EF_BENCH_SNAPSHOT_EVERY", "4000"))
RATE = int(os.environ.get("EF_BENCH_SNAPSHOT_RATE", "300"))
SECONDS = float(os.environ.get("EF_BENCH_SNAPSHOT_SECONDS", "40"))
LOAD_CONNS = 4
TAKEN = re.compile(r"snapshot taken position=\d+ bytes=(\d+) ms=(\d+)")


def emit(key, value):
    print("%s=%s" % (key, value), flush=True)


def die(msg):
    print("snapshot_pause: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def program(name):
    for cand in (os.path.join(BUILDDIR, name), os.path.join(BUILDDIR, "bench", name)):
        if os.access(cand, os.X_OK):
            return cand
    die("%s not built in %s" % (name, BUILDDIR))


def prepare(data):
    """The log, its read model folded, and a snapshot of both models."""
    env = dict(os.environ, EF_BENCH_FOLD_EVENTS=str(EVENTS), EF_BENCH_FOLD_MIX="orders",
               EF_BENCH_FOLD_BUILD_ONLY=data)
    steps = [([program("bench_fold")], env, "building the log"),
             ([program("eventfoldctl"), "--data", data, "rebuild", "--from-scratch"], None, "rebuild"),
             ([program("eventfoldctl"), "--data", data, "snapshot"], None, "snapshot")]
    for argv, e, what in steps:
        t0 = time.monotonic()
        p = subprocess.run(argv, env=e, capture_output=True, text=True, timeout=900,
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            die("%s failed (exit %d): %s" % (what, p.returncode, p.stderr.strip()[-500:]))
        print("%s: %.1f s" % (what, time.monotonic() - t0), flush=True)


class SnapshotWatch(threading.Thread):
    """Follows the tailer's log; records (start, end, bytes) of each snapshot copy."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.copies, self.stop = path, [], threading.Event()

    def run(self):
        with open(self.path, errors="replace") as f:
            f.seek(0, os.SEEK_END)
            buf = ""
            while not self.stop.is_set():
                chunk = f.read()
                now = time.monotonic()
                if not chunk:
                    time.sleep(0.005)
                    continue
                buf += chunk
                lines, buf = buf.split("\n")[:-1], buf.split("\n")[-1]
                for line in lines:
                    m = TAKEN.search(line)
                    if m:
                        self.copies.append((now - int(m.group(2)) / 1000.0, now, int(m.group(1))))


def stats(samples):
    d = sorted(ms for ms, _ in samples)
    if not d:
        return 0, 0.0, 0.0, 0.0, 0
    n503 = sum(1 for _, st in samples if st == 503)
    return len(d), d[len(d) // 2], d[min(len(d) - 1, int(len(d) * 0.99))], d[-1], n503


def sample(c, users):
    k = c.client(timeout=30)
    out = []  # (t0, t1, ms, status)
    end = time.monotonic() + SECONDS
    i = 0
    try:
        while time.monotonic() < end:
            u = users[i % len(users)]
            i += 1
            w = expect(k.post("/api/users/%s/deposits" % u, {"amount_cents": 1}), 200)
            t0 = time.monotonic()
            r = k.get("/api/users/%s" % u, headers={"Min-Position": str(w.position)})
            t1 = time.monotonic()
            if r.status not in (200, 503):
                die("GET with Min-Position answered %d: %s" % (r.status, r.body[:200]))
            out.append((t0, t1, (t1 - t0) * 1000, r.status))
    finally:
        k.close()
    return out


def main():
    parent = eftest.tmpdir("bench-snap", os.environ.get("EF_BENCH_DIR"))
    data = os.path.join(parent, "data")
    prepare(data)
    cfg = {"snapshot_every": str(EVERY), "snapshot_keep": "2"}
    with Cluster("bench-snap", workers=4, config=cfg, data_dir=data, start_seconds=600) as c:
        cl = c.client()
        item = "snap-item"
        expect(cl.post("/api/items", {"item_id": item, "name": "Snap", "category": "bench",
                                      "price_cents": 100}), 201)
        for _ in range(20):  # more stock than the load can sell
            expect(cl.post("/api/items/%s/restock" % item, {"quantity": 1000000}), 200)
        users = ["snap-u%d" % i for i in range(100)]
        for u in users:
            expect(cl.post("/api/users", {"user_id": u, "name": "Snap " + u}), 201)
        cl.close()
        ufile = os.path.join(parent, "users.txt")
        with open(ufile, "w") as f:
            f.write("\n".join(users) + "\n")
        watch = SnapshotWatch(c.logs["tailer"])
        watch.start()
        delay = max(0, LOAD_CONNS * 1000 // RATE - 1)
        load = start_wrk(c, LOAD_CONNS, "http_create_order_paced.lua",
                         {"EF_BENCH_USERS": ufile, "EF_BENCH_ITEM": item, "EF_BENCH_DELAY_MS": str(delay)})
        try:
            time.sleep(0.5)
            if load.poll() is not None:
                die("wrk exited: %s" % load.communicate()[0][-300:])
            h0, t_start = c.head(), time.monotonic()
            with StallWatch() as sw:
                out = sample(c, users)
            rate = (c.head() - h0) / (time.monotonic() - t_start)
            # Wait (bounded) for a copy that started while sampling to finish, so that
            # its interval is known.
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                if watch.copies and watch.copies[-1][1] >= out[-1][1]:
                    break
                if not c.running("tailer"):
                    die("the tailer exited")
                time.sleep(0.1)
        finally:
            stop_wrk(load)
            watch.stop.set()
        copies = list(watch.copies)
        during = [(ms, st) for t0, t1, ms, st in out
                  if any(t0 < e and t1 > s for s, e, _ in copies)]
        between = [(ms, st) for t0, t1, ms, st in out
                   if not any(t0 < e and t1 > s for s, e, _ in copies)]
        if not during:
            die("no sample overlapped a snapshot (%d snapshots logged)" % len(copies))
        emit("snapshot_events", EVENTS)
        emit("snapshot_model_bytes", max(b for _, _, b in copies))
        emit("snapshot_count", len(copies))
        emit("snapshot_copy_ms_max", "%.0f" % max((e - s) * 1000 for s, e, _ in copies))
        emit("snapshot_load_commands_per_second", "%.0f" % rate)
        emit("ryw_snap_vm_watched", 1 if sw.ok else 0)
        if sw.ok:
            stops = sw.merged()
            running = [ms for t0, t1, ms, _ in out if any(t0 < e and t1 > s for s, e, _ in copies)
                       and not sw.overlaps(t0, t1)]
            emit("ryw_snap_vm_stops", len(stops))
            emit("ryw_snap_vm_stop_max_ms", "%.1f" % max([(e - s) * 1000 for s, e in stops] or [0]))
            emit("ryw_snap_vm_stopped_samples", len(during) - len(running))
            emit("ryw_snap_max_running_ms", "%.2f" % max(running or [0]))
        for tag, sm in (("snap", during), ("between", between)):
            n, p50, p99, mx, n503 = stats(sm)
            emit("ryw_%s_samples" % tag, n)
            emit("ryw_%s_p50_ms" % tag, "%.2f" % p50)
            emit("ryw_%s_p99_ms" % tag, "%.2f" % p99)
            emit("ryw_%s_max_ms" % tag, "%.2f" % mx)
            emit("ryw_%s_503" % tag, n503)
    eftest.rmtree(parent)


if __name__ == "__main__":
    harness.run(main, 1800)
