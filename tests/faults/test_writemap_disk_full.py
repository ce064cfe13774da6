#!/usr/bin/env python3
"""Writable LMDB maps on a full disk (util/lmdb_map.h). Both models are written through
MDB_WRITEMAP when their map's blocks can be reserved; a store into an unreserved page of a
full filesystem would kill the process with SIGBUS. Each model's directory in turn is a
private 8 MiB tmpfs (the log stays on the normal disk, so commands keep being appended):

  1. Room for the map (maps starting at 1 MiB): the program uses a writable map (no fallback
     warning) and data.mdb has no holes. Orders of 100 lines are written until the map has
     grown, then the tmpfs is filled with a file and orders go on until the model's map
     cannot grow any more: the write model then answers 503 log_unavailable (never a 502
     from a crashed worker); the tailer logs that the map cannot grow and waits. No process
     dies of a signal. Once the file is removed, commands succeed, the tailer catches up,
     and every user, item and order equals what the log implies.
  2. No room for the maps (the whole data directory on a 6 MiB tmpfs, default maps of 64
     and 256 MiB): both models fall back to write(2) with a warning that says why, and
     commands and queries work.
  3. A model created on a full disk (its files removed, the tmpfs filled, the program
     started again): LMDB stores into lock.mdb, which it sizes with ftruncate, as soon as
     it opens it, so its blocks must be allocated first: the program exits 1 naming the
     full disk (never killed by SIGBUS), and starts again once space is freed, with a
     lock.mdb that has no holes.
Needs root to mount the tmpfs; exits 77 (skip) otherwise."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "torture"))
from faultlib import SANITIZER_MARKS, Cluster, check, fill  # noqa: E402
from harness import expect, log, run, uid  # noqa: E402
from logcheck import Fold, model_diffs  # noqa: E402

LINES = 100
FALLBACK = "cannot be reserved on disk"
MAX_ORDERS = 3000


def model_file(c, sub):
    return os.path.join(c.data, "write", "data.mdb") if sub == "write" else \
        os.path.join(c.data, "read", "current", "data.mdb")


def no_holes(path):
    st = os.stat(path)
    check(st.st_blocks * 512 >= st.st_size,
          "%s has holes: %d bytes, %d allocated (the writable map must be reserved)"
          % (path, st.st_size, st.st_blocks * 512))


def check_programs(c, what):
    for name in ("command", "tailer", "query"):
        check(c.running(name), "%s exited %s:\n%s" % (name, what, c.log_text(name)[-2000:]))
        text = c.log_text(name)
        check("signal=" not in text, "a %s worker died of a signal %s:\n%s" % (name, what, text[-2000:]))
        check(not any(m in text for m in SANITIZER_MARKS), "%s sanitizer report:\n%s" % (name, text[-3000:]))


def setup_items(cl, base):
    items = ["%s-i%d" % (base, i) for i in range(LINES)]
    for it in items:
        expect(cl.post("/api/items", {"item_id": it, "name": "Item " + it, "category": "c",
                                      "price_cents": 3}), 201, what="setup item")
        expect(cl.post("/api/items/%s/restock" % it, {"quantity": 1000000}), 200, what="setup restock")
    return [{"item_id": it, "quantity": 1} for it in items]


# What each program logs: its map grew; its map could not grow for want of space.
PROGRAM = {"write": "command", "read": "tailer"}
GROWN = {"write": "write model map full, grown", "read": "grown to map_bytes="}
STUCK = {"write": "no disk space to grow it", "read": "read model map full and cannot grow"}


def room_for_the_map(sub):
    with Cluster("wm" + sub, fs_size="8m", fs_sub=sub, workers=2,
                      config={"write_map_bytes": "1m", "read_map_bytes": "1m"}) as c:
        prog = PROGRAM[sub]
        check(FALLBACK not in c.log_text(prog), "%s did not use a writable map:\n%s"
              % (prog, c.log_text(prog)[-1500:]))
        cl = c.client()
        base = uid("wm")
        user = base + "-user"
        expect(cl.post("/api/users", {"user_id": user, "name": "Mapper"}), 201, what="setup user")
        lines = setup_items(cl, base)
        n = 0

        def order():
            nonlocal n
            n += 1
            return cl.post("/api/orders", {"user_id": user, "items": lines, "order_id": "%s-o%d" % (base, n)})

        while GROWN[sub] not in c.log_text(prog):
            check(n < MAX_ORDERS, "the %s map did not grow after %d orders" % (sub, n))
            expect(order(), 201, what="order %d before the disk is full" % n)
        c.wait_caught_up(timeout=60)
        no_holes(model_file(c, sub))
        log("%s: the map grew after %d orders of %d lines; data.mdb fully allocated" % (sub, n, LINES))

        filler = os.path.join(c.mountpoint, "filler")
        log("filled the %s filesystem with %d bytes" % (sub, fill(filler)))
        accepted = refused = 0
        detail = None
        while STUCK[sub] not in c.log_text(prog) or (sub == "write" and refused < 5):
            check(n < 2 * MAX_ORDERS, "the %s map never ran out of space after %d orders:\n%s"
                  % (sub, n, c.log_text(prog)[-1500:]))
            r = order()
            if r.status == 201:
                accepted += 1
            else:
                expect(r, 503, "log_unavailable", what="order %d on a full disk" % n)
                detail = detail or r.json.get("detail")
                refused += 1
            if sub == "read" and n % 20 == 0:
                time.sleep(0.2)  # let the tailer meet the full disk
        log("%s on the full disk: %d orders accepted, %d refused (first: %s)" % (sub, accepted, refused, detail))
        check_programs(c, "on a full disk")
        expect(c.client().get("/api/status"), 200, what="queries while the disk is full")

        os.unlink(filler)
        for _ in range(20):
            expect(order(), 201, what="order %d after space was freed" % n)
        fold = Fold()
        for e in c.dump():
            fold.apply(e)
        check(not fold.violations, "log invariants: %r" % fold.violations[:5])
        c.wait_caught_up(fold.head, timeout=120)
        check_programs(c, "after space was freed")
        k = c.client()
        diffs = model_diffs(k, fold)
        k.close()
        check(not diffs, "read model differs from the log:\n  %s" % "\n  ".join(diffs[:20]))
        c.verify()
        log("%s: full disk met with a writable map, no crash; read model equals the log at %d" % (sub, fold.head))


def no_room_for_the_maps():
    with Cluster("wmsmall", fs_size="6m", workers=2) as c:
        for name in ("command", "tailer"):
            # The cluster is ready when the command and query programs answer; the tailer
            # may not have opened its model (and logged the fallback) yet.
            deadline = time.monotonic() + 30
            text = c.log_text(name)
            while not (FALLBACK in text and "No space left on device" in text) and time.monotonic() < deadline:
                time.sleep(0.1)
                text = c.log_text(name)
            check(FALLBACK in text and "No space left on device" in text,
                  "%s should say its map cannot be reserved (6 MiB disk, default maps):\n%s"
                  % (name, text[-1500:]))
        cl = c.client()
        u = uid("wms")
        r = expect(cl.post("/api/users", {"user_id": u, "name": "Small"}), 201, what="command without a writable map")
        expect(cl.get("/api/users/" + u, headers={"Min-Position": str(r.position)}), 200,
               what="query without a writable map")
        check_programs(c, "without writable maps")
        log("6 MiB disk: both models fell back to write(2) and work")


def created_on_a_full_disk(sub):
    prog = PROGRAM[sub]
    with Cluster("wmnew" + sub, fs_size="4m", fs_sub=sub, workers=1,
                      config={"write_map_bytes": "1m", "read_map_bytes": "1m"}) as c:
        cl = c.client()
        u = uid("wmn")
        expect(cl.post("/api/users", {"user_id": u, "name": "New"}), 201, what="setup user")
        c.wait_caught_up(timeout=30)
        c.kill(prog, 9)
        model = os.path.dirname(model_file(c, sub))
        for name in ("data.mdb", "lock.mdb"):
            os.unlink(os.path.join(model, name))
        filler = os.path.join(c.mountpoint, "filler")
        log("%s: model files removed, filled the filesystem with %d bytes" % (sub, fill(filler)))
        p = c._spawn(prog, c._argv(prog))
        try:
            rc = p.wait(timeout=30)
        except Exception:
            rc = None
        text = c.log_text(prog)
        check(rc == 1, "%s on a full disk should exit 1, got %r:\n%s" % (prog, rc, text[-2000:]))
        check("signal=" not in text and "No space left on device" in text,
              "%s should name the full disk:\n%s" % (prog, text[-2000:]))
        log("%s on a full disk: %s" % (prog, [l for l in text.splitlines() if "No space" in l][-2:]))
        os.unlink(filler)
        c.start(prog)
        expect(cl.post("/api/users", {"user_id": u + "x", "name": "Again"}), 201, what="after space was freed")
        no_holes(os.path.join(model, "lock.mdb"))
        check_programs(c, "after space was freed")
        log("%s: a model created on a full disk is refused with ENOSPC, then created once space is freed" % sub)


def main():
    created_on_a_full_disk("write")
    created_on_a_full_disk("read")
    room_for_the_map("write")
    room_for_the_map("read")
    no_room_for_the_maps()


if __name__ == "__main__":
    run(main, 400)
