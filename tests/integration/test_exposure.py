#!/usr/bin/env python3
"""Exposure (API.md section 8): /metrics answers loopback clients only. nginx here listens on
127.0.0.1; a client connecting from 127.0.0.2 (another loopback address, but not one the
snippet allows) stands for a remote one: it gets 403 on /metrics and its ordinary answers on
/api/. The query program runs with its log opened read-only in fact: a query-only cluster
(no command program, no tailer) writes nothing under DIR/log."""

import http.client
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, expect, log, run  # noqa: E402


def get_from(source, port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def log_files(data):
    d = os.path.join(data, "log")
    out = {}
    for name in sorted(os.listdir(d)):
        st = os.stat(os.path.join(d, name))
        out[name] = (st.st_size, st.st_mtime_ns)
    return out


def main():
    with Cluster("exposure", workers=1) as c:
        cl = c.client()
        expect(cl.post("/api/users", {"user_id": "x1", "name": "X"}), 201, what="a command")
        status, body = get_from("127.0.0.1", c.port, "/metrics")
        check(status == 200 and b"# TYPE" in body, "/metrics from 127.0.0.1: %d %r" % (status, body[:200]))
        try:
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.close()
        except OSError as e:
            log("cannot bind 127.0.0.2 (%s): the refusal is checked by packaging/check-nginx.sh only" % e)
        else:
            status, body = get_from("127.0.0.2", c.port, "/metrics")
            check(status == 403, "/metrics from 127.0.0.2: expected 403, got %d %r" % (status, body[:200]))
            status, _ = get_from("127.0.0.2", c.port, "/api/status")
            check(status == 200, "/api/status from 127.0.0.2: %d" % status)

        log("the query program alone writes nothing in the log directory")
        c.wait_caught_up()
        c.stop_gracefully("command")
        c.stop_gracefully("tailer")
        c.stop_gracefully("query")
        before = log_files(c.data)
        c.start("query")
        c.wait_ready()
        expect(cl.get("/api/users/x1"), 200, what="a query with nobody else on the log")
        st = c.status()
        check(st["log"]["head_position"] == 1, "head from the files: %r" % st["log"])
        expect(cl.get("/api/events?after=0"), 200, what="the log read by the query program")
        c.stop_gracefully("query")
        after = log_files(c.data)
        check(before == after, "the query program changed DIR/log: %r -> %r" % (before, after))


if __name__ == "__main__":
    run(main, budget=120)
