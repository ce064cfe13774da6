#!/usr/bin/env python3
"""Parked waits (API.md section 6): waiting requests hold no request thread.

With the default 2 query workers x 4 threads:
 - hundreds of waiting requests at once (Min-Position reads and /api/events long-polls, half
   each) while plain GETs keep being answered, all of them well before the waits' deadline;
 - a command that moves the position answers every one of them (the reads show the write,
   the long-polls carry its event);
 - with max_waiting small, the next request that would wait gets 503 too_many_waiting with
   Retry-After: 1 and a Log-Position, at once;
 - /api/events with Min-Position and Prefer: wait: both waits share one deadline;
 - SIGTERM to eventfold-query answers parked requests (503 not_caught_up for a Min-Position
   read, the events there are for a long-poll) instead of dropping them."""

import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, run, uid  # noqa: E402

WAITS = 400       # half Min-Position reads, half long-polls
PLAIN = 60        # plain GETs while they wait
WAIT_S = 10       # Prefer: wait of the parked requests


def open_request(port, path, headers):
    """Sends one GET on its own connection and returns the socket, unread."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    lines = "".join("%s: %s\r\n" % kv for kv in headers.items())
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s\r\n" % (path, lines)).encode())
    s.setblocking(False)
    return s


def parse(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.split(b";")[0], 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return status, hdrs, body


def collect(socks, timeout):
    """Reads every socket to EOF within timeout; returns {sock: (status, headers, body)} for
    those that finished (the others stay open)."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    done = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(socks) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            s = key.fileobj
            try:
                d = s.recv(65536)
            except BlockingIOError:
                continue
            if d:
                bufs[s] += d
                continue
            sel.unregister(s)
            done[s] = parse(bufs[s])
            s.close()
    sel.close()
    return done


def park_mix(c, n, after, want):
    """n waiting requests: Min-Position reads of /api/status and long-polls after `after`."""
    socks = []
    for i in range(n):
        if i % 2 == 0:
            socks.append(open_request(c.port, "/api/status", {"Min-Position": str(want), "Prefer": "wait=%d" % WAIT_S}))
        else:
            socks.append(open_request(c.port, "/api/events?after=%d" % after, {"Prefer": "wait=%d" % WAIT_S}))
    return socks


def main():
    with Cluster("parked", workers=2) as c:
        cl = c.client()
        u = uid("u")
        expect(cl.post("/api/users", {"user_id": u, "name": "Waiter"}), 201)
        c.wait_caught_up()
        head = c.head()

        log("%d parked waits, then %d plain GETs" % (WAITS, PLAIN))
        t0 = time.monotonic()
        socks = park_mix(c, WAITS, head, head + 1)
        early = collect(socks, 0.5)
        check(not early, "%d waits answered before anything was written: %r" % (len(early), list(early.values())[:2]))
        for i in range(PLAIN):
            expect(cl.get("/api/users/%s" % u), 200, what="plain GET %d while %d wait" % (i, WAITS))
        plain_s = time.monotonic() - t0
        log("plain GETs done %.2f s after the waits were sent" % plain_s)
        check(plain_s < WAIT_S / 2, "plain GETs took until %.1f s with waits parked (deadline %d s)" % (plain_s, WAIT_S))

        log("a command answers them all")
        w = expect(cl.post("/api/users/%s/deposits" % u, {"amount_cents": 5}), 200)
        got = collect(socks, WAIT_S)
        check(len(got) == WAITS, "%d of %d waits answered after the command" % (len(got), WAITS))
        took = time.monotonic() - t0
        check(took < WAIT_S, "the waits were answered by their deadline, not by the command (%.1f s)" % took)
        for i, s in enumerate(socks):
            status, hdrs, body = got[s]
            check(status == 200, "wait %d: status %d %r" % (i, status, body[:300]))
            check(int(hdrs.get("log-position", "0")) >= w.position, "wait %d: Log-Position %r < %d"
                  % (i, hdrs.get("log-position"), w.position))
            if i % 2 == 1:
                check(b'"FundsDeposited"' in body and (b'"position":%d' % w.position) in body,
                      "long-poll %d without the event at %d: %r" % (i, w.position, body[:300]))

        log("/api/events with Min-Position and Prefer: wait: one deadline for both waits")
        head = c.head()
        t0 = time.monotonic()
        socks = [open_request(c.port, "/api/events?after=%d" % (head + 1),
                              {"Min-Position": str(head + 1), "Prefer": "wait=4"})]
        time.sleep(2)  # its Min-Position wait, then the command below moves on to the long-poll
        expect(cl.post("/api/users/%s/deposits" % u, {"amount_cents": 1}), 200)
        got = collect(socks, 10)
        took = time.monotonic() - t0
        check(len(got) == 1, "the combined wait was not answered")
        status, hdrs, body = got[socks[0]]
        check(status == 200 and b'"events":[]' in body, "combined wait: %d %r" % (status, body[:200]))
        # One deadline 4 s after arrival; two waits one after the other would take about 6 s.
        check(3.5 <= took < 5.5, "combined Min-Position + long-poll answered after %.1f s (wait=4)" % took)

        log("SIGTERM answers parked requests")
        head = c.head()
        socks = park_mix(c, 40, head, head + 1000)
        check(not collect(socks, 0.5), "waits answered before the stop")
        t0 = time.monotonic()
        st = c.stop_gracefully("query", timeout=30)
        got = collect(socks, 10)
        check(st == 0, "eventfold-query exit status %r after SIGTERM" % st)
        check(len(got) == len(socks), "%d of %d parked requests answered at stop" % (len(got), len(socks)))
        for i, s in enumerate(socks):
            status, hdrs, body = got[s]
            if i % 2 == 0:
                check(status == 503 and b"not_caught_up" in body and hdrs.get("retry-after") == "1",
                      "parked read at stop: %d %r %r" % (status, hdrs, body[:200]))
            else:
                check(status == 200 and b'"events":[]' in body, "parked long-poll at stop: %d %r" % (status, body[:200]))
        check(time.monotonic() - t0 < WAIT_S, "stop took %.1f s" % (time.monotonic() - t0))

    with Cluster("maxwait", workers=2, config={"max_waiting": 20}) as c:
        cl = c.client()
        c.wait_caught_up()
        head = c.head()
        log("max_waiting = 20")
        socks = park_mix(c, 20, head, head + 1000)
        time.sleep(1.5)  # they are parked within milliseconds; this is a generous bound
        for i in range(5):
            t0 = time.monotonic()
            r = expect(cl.get("/api/status", headers={"Min-Position": str(head + 1000), "Prefer": "wait=%d" % WAIT_S}),
                       503, "too_many_waiting", what="wait over max_waiting")
            check(time.monotonic() - t0 < WAIT_S / 2, "too_many_waiting was not answered at once")
            check(r.header("Retry-After") == "1", "Retry-After %r" % r.header("Retry-After"))
            check(r.position is not None, "too_many_waiting without Log-Position")
            r = expect(cl.get("/api/events?after=%d" % (head + 1000), headers={"Prefer": "wait=5"}),
                       503, "too_many_waiting", what="long-poll over max_waiting")
        expect(cl.get("/api/status"), 200, what="a plain GET while max_waiting wait")
        for s in socks:
            s.close()


if __name__ == "__main__":
    run(main, budget=240)
