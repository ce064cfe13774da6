#!/usr/bin/env python3
"""Slow readers and page bounds (API.md sections 5 and 6).

 - /api/events stops a page at about 1 MiB of JSON, with at least one event, and paging with
   after=last_position covers the log exactly; the events are large here (OrderCreated with
   100 lines whose item names are 256 control characters, rendered escaped: about 150 KB each).
 - Memory: the query workers' peak RSS (VmHWM, reset through /proc/PID/clear_refs) and
   RssAnon grow by a bounded amount while many clients fetch large pages at once.
 - FastCGI clients speaking directly to the query socket ask for large pages and never read,
   more of them than there are request threads, and meanwhile: plain queries through nginx
   are answered, `eventfoldctl rebuild` switches the model (every query worker reopens it:
   no read transaction of theirs is held by the stalled clients), and a write is read back
   with Min-Position."""

import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, check, expect, fcgi_params, log, parallel, run, uid  # noqa: E402

ITEMS = 100
ORDERS = 60
PAGE_MAX = 1024 * 1024 + 64 * 1024  # "about 1 MiB": the bound plus the page's framing
STALLED = 12                        # more than 2 workers x 4 threads
READERS = 12
PEAK_GROWTH_MAX = 48 << 20          # per query worker, while READERS fetch large pages


def fcgi_message(params):
    def rec(rtype, content):
        return struct.pack("!BBHHBx", 1, rtype, 1, len(content), 0) + content

    def nv(name, value):
        n, v = name.encode(), value.encode()
        ln = lambda x: struct.pack("!B", len(x)) if len(x) < 128 else struct.pack("!I", len(x) | 0x80000000)
        return ln(n) + ln(v) + n + v

    p = b"".join(nv(k, v) for k, v in params.items())
    return rec(1, struct.pack("!HB5x", 1, 0)) + rec(4, p) + rec(4, b"") + rec(5, b"")


def stalled_client(sock_path, path, query):
    """A FastCGI client that asks for path?query and never reads the answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(sock_path)
    s.sendall(fcgi_message(fcgi_params("GET", path, query)))
    return s


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                out[k] = int(v.split()[0]) * 1024
    return out


def instrumented():
    """True when the programs run under ASan or valgrind, whose bookkeeping (ASan's
    quarantine keeps freed memory) makes RSS say nothing about the programs' own use."""
    if harness.VALGRIND:
        return True
    with open(harness.binary("eventfold-query"), "rb") as f:
        return b"__asan_init" in f.read()


def fill(c, cl):
    """ITEMS items with 256-byte control-character names, ORDERS orders of 100 lines."""
    u = uid("u")
    expect(cl.post("/api/users", {"user_id": u, "name": "Big"}), 201)
    name = "".join(chr(1 + (i % 31)) for i in range(256))
    items = []
    for i in range(ITEMS):
        it = uid("i", i)
        expect(cl.post("/api/items", {"item_id": it, "name": name, "category": "c", "price_cents": 1}), 201)
        expect(cl.post("/api/items/%s/restock" % it, {"quantity": 100000}), 200)
        items.append(it)
    lines = [{"item_id": it, "quantity": 1} for it in items]

    def orders(t):
        k = c.client()
        for _ in range(ORDERS // 4):
            expect(k.post("/api/orders", {"user_id": u, "items": lines}), 201, what="big order")
        k.close()

    parallel(orders, [(t,) for t in range(4)])
    return u


def check_pages(cl, head):
    after, seen, biggest = 0, [], 0
    while after < head:
        r = expect(cl.get("/api/events?after=%d&limit=1000" % after), 200, what="page after %d" % after)
        biggest = max(biggest, len(r.body))
        check(len(r.body) <= PAGE_MAX, "page after %d is %d bytes" % (after, len(r.body)))
        j = r.json
        check(j["events"], "empty page after %d with head %d" % (after, head))
        check(j["last_position"] == j["events"][-1]["position"], "last_position %r, last event %r"
              % (j["last_position"], j["events"][-1]["position"]))
        seen += [e["position"] for e in j["events"]]
        after = j["last_position"]
    check(seen == list(range(1, head + 1)), "paging covered %d positions of %d" % (len(seen), head))
    return biggest


def main():
    with Cluster("slow", workers=2) as c:
        cl = c.client()
        u = fill(c, cl)
        c.wait_caught_up()
        head = c.head()

        log("page bound")
        biggest = check_pages(cl, head)
        big = [e for e in expect(cl.get("/api/events?after=0&limit=1000"), 200).json["events"]
               if e["type"] == "OrderCreated"]
        check(big or biggest > 512 * 1024, "no large OrderCreated event on the first page")
        log("largest page %d bytes, head %d" % (biggest, head))

        log("memory while %d clients fetch large pages" % READERS)
        workers = c.worker_pids("query")
        before = {}
        for pid in workers:
            with open("/proc/%d/clear_refs" % pid, "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            before[pid] = proc_status(pid)

        def reader(t):
            k = c.client()
            for _ in range(3):
                check_pages(k, head)
            k.close()

        parallel(reader, [(t,) for t in range(READERS)])
        for pid in workers:
            after = proc_status(pid)
            peak = after["VmHWM"] - before[pid]["VmRSS"]
            anon = after["RssAnon"] - before[pid]["RssAnon"]
            log("query worker %d: peak RSS +%.1f MiB, RssAnon %+.1f MiB" % (pid, peak / 2**20, anon / 2**20))
            if instrumented():
                log("(sanitizer or valgrind build: memory not checked)")
                continue
            check(peak < PEAK_GROWTH_MAX, "query worker %d grew by %.1f MiB at its peak" % (pid, peak / 2**20))
            check(anon < PEAK_GROWTH_MAX, "query worker %d kept %.1f MiB more anonymous memory" % (pid, anon / 2**20))

        log("%d FastCGI clients that never read large pages" % STALLED)
        stalled = [stalled_client(c.query_sock, "/api/events", "after=0&limit=1000") for _ in range(STALLED)]
        time.sleep(0.5)
        t0 = time.monotonic()
        for i in range(20):
            expect(cl.get("/api/users/%s" % u), 200, what="plain GET %d with stalled readers" % i)
        check(time.monotonic() - t0 < 10, "plain GETs took %.1f s with stalled readers" % (time.monotonic() - t0))

        log("rebuild and switch while they stall")
        reopened_before = c.log_text("query").count("read model reopened")
        rc, out, err = c.ctl("rebuild", timeout=120)
        check(rc == 0, "eventfoldctl rebuild: exit %d: %s" % (rc, err.strip()[-500:]))
        deadline = time.monotonic() + 20
        while c.log_text("query").count("read model reopened") < reopened_before + 2:
            check(time.monotonic() < deadline, "query workers did not reopen the rebuilt model: %s"
                  % c.log_text("query")[-1500:])
            expect(c.client().get("/api/users/%s" % u), 200, what="GET after the switch")
            time.sleep(0.05)

        log("read-your-writes while they stall")
        w = expect(cl.post("/api/users/%s/deposits" % u, {"amount_cents": 77}), 200)
        r = expect(cl.get("/api/users/%s" % u, headers={"Min-Position": str(w.position)}), 200)
        check(r.json["wallet_balance_cents"] == w.json["balance_cents"], "stale read %r" % r.json)
        check(r.position >= w.position, "Log-Position %r < %d" % (r.position, w.position))
        for s in stalled:
            s.close()


if __name__ == "__main__":
    run(main, budget=400)
