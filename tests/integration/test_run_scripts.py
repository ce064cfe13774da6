#!/usr/bin/env python3
"""The README's `make run` and `make run-cluster` (scripts/run.sh, scripts/run-cluster.sh), on
free loopback ports in a temporary directory:
  - each comes up and prints its walkthrough; a command through its nginx is acknowledged and
    read back with Min-Position (on run-cluster: from the replica, also a command sent to the
    replica's nginx, which proxies it to the leader);
  - SIGTERM to the script stops every process it started (none is left, by PID) and it exits
    0, leaving the data in place."""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BUILDDIR, NGINX, SRCDIR, Client, SkipTest, TestFailure, check,  # noqa: E402
                     children_of, expect, free_port, log, run)
import eftest  # noqa: E402  (tests/lib, on the path once harness is imported)

NATS = os.environ.get("EF_NATS_SERVER") or shutil.which("nats-server") or "/usr/sbin/nats-server"


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def nats_base_port():
    """A base port for run-cluster.sh's nine NATS ports (base + 0..2 for clients, + 2000..2002
    for routes, + 4000..4002 for monitoring), all free now and below the kernel's ephemeral
    range (32768 and up), so that no outgoing connection's source port takes one before the
    servers bind it (free_port's ports are in that range, and so would be base + 4002)."""
    for _ in range(200):
        base = random.randrange(20000, 28000)
        if all(port_free(base + off) for off in (0, 1, 2, 2000, 2001, 2002, 4000, 4001, 4002)):
            return base
    raise TestFailure("no free base port for NATS in 20000..28000")


def running(pid):
    """pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def descendants(pid):
    """The servers under pid (eventfold programs, nginx, nats-server); not the script's own
    short-lived helpers (its `sleep 1` may outlive it by a second)."""
    out, todo = [], [pid]
    while todo:
        for c in children_of(todo.pop()):
            todo.append(c)
            if comm(c).startswith(("eventfold", "nginx", "nats-server")):
                out.append(c)
    return out


def start(script, tmp, env):
    p = eftest.spawn(["sh", os.path.join(SRCDIR, "scripts", script)], os.path.join(tmp, "out.txt"), cwd=tmp,
                     env=dict(os.environ, EF_BUILDDIR=BUILDDIR, EF_SRCDIR=SRCDIR, EF_NGINX=NGINX, **env))
    deadline = time.monotonic() + 90
    while True:
        with open(os.path.join(tmp, "out.txt"), errors="replace") as f:
            text = f.read()
        if "Ctrl-C stops everything." in text:
            return p
        if p.poll() is not None or time.monotonic() > deadline:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            raise TestFailure("%s did not come up (exit %s): %s" % (script, p.poll(), text[-2000:]))
        time.sleep(0.2)


def stop(p, script):
    """SIGTERM to the script; every process it started must be gone when it exits 0."""
    procs = descendants(p.pid)
    check(len(procs) >= 4, "%s: only %d processes under the script" % (script, len(procs)))
    os.kill(p.pid, signal.SIGTERM)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        raise TestFailure("%s did not stop within 60 s of SIGTERM" % script)
    # A process that has exited but is not reaped yet (a zombie: a worker whose master has
    # just exited, until init reaps it) is stopped; one still running after 5 s is left.
    deadline = time.monotonic() + 5
    while True:
        left = [pid for pid in procs if running(pid)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if left:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    check(rc == 0, "%s exited %d after SIGTERM" % (script, rc))
    check(not left, "%s left processes running: %r" % (script, left))


def run_sh():
    tmp = eftest.tmpdir("it-run")
    try:
        port = free_port()
        p = start("run.sh", tmp, {"EF_PORT": str(port)})
        try:
            cl = Client(port)
            w = expect(cl.post("/api/users", {"user_id": "ada", "name": "Ada"}), 201, what="run.sh command")
            r = expect(cl.get("/api/users/ada", headers={"Min-Position": str(w.position)}), 200)
            check(r.json["name"] == "Ada", "run.sh: read back %r" % r.json)
            cl.close()
        finally:
            stop(p, "run.sh")
        check(os.path.isdir(os.path.join(tmp, "var", "data", "log")), "run.sh: the data did not stay")
        log("run.sh: up, command acknowledged and read back, stopped cleanly")
    finally:
        eftest.rmtree(tmp)


def run_cluster_sh():
    if not os.access(NATS, os.X_OK):
        raise SkipTest("nats-server not found at %s" % NATS)
    tmp = eftest.tmpdir("it-runc")
    try:
        port, rport, nport = free_port(), free_port(), nats_base_port()
        p = start("run-cluster.sh", tmp, {"EF_PORT": str(port), "EF_REPLICA_PORT": str(rport),
                                          "EF_NATS_PORT": str(nport), "EF_NATS_SERVER": NATS})
        try:
            leader, replica = Client(port), Client(rport)
            w = expect(leader.post("/api/users", {"user_id": "ada", "name": "Ada"}), 201, what="leader command")
            # The first write crosses a NATS cluster that may still be electing its leaders:
            # 503 not_caught_up (with Retry-After) is the contract's "ask again", for a while.
            deadline = time.monotonic() + 90
            while True:
                r = replica.get("/api/users/ada", headers={"Min-Position": str(w.position), "Prefer": "wait=10"})
                if r.status != 503 or time.monotonic() > deadline:
                    break
            expect(r, 200, what="replica read with Min-Position")
            check(r.json["name"] == "Ada", "replica read back %r" % r.json)
            w2 = expect(replica.post("/api/users/ada/deposits", {"amount_cents": 5}), 200, what="command via the replica")
            check(w2.position == w.position + 1, "the replica's proxied command got position %r" % w2.position)
            r = expect(replica.get("/api/users/ada", headers={"Min-Position": str(w2.position), "Prefer": "wait=20"}),
                       200)
            check(r.json["wallet_balance_cents"] == 5, "replica balance %r" % r.json)
            leader.close()
            replica.close()
        finally:
            stop(p, "run-cluster.sh")
        log("run-cluster.sh: leader and replica up, read-your-writes across them, stopped cleanly")
    finally:
        eftest.rmtree(tmp)


def main():
    run_sh()
    run_cluster_sh()


if __name__ == "__main__":
    run(main, 400)
