#!/usr/bin/env python3
"""eventfold-relay --sink nats against a stream that is not what the relay left (API.md
section 9), and against bad configuration:
  - a stream that lost messages (deleted while the relay was stopped; every node's store
    wiped while the cluster was down) is refilled from the log, 1..head exactly;
  - a stream message that disagrees with the log, and a stream longer than the log, stop
    the relay with exit 1 and one line naming the position;
  - a stream whose subjects do not cover PREFIX.> stops it with exit 1 and one line;
  - an unknown or missing --sink is exit 2; a second relay on the same data is exit 1;
  - an unreachable NATS: the relay keeps retrying with backoff, logs the failure once,
    uses little CPU, and SIGTERM stops it with exit 0."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, binary, check, expect, log, run  # noqa: E402
from natslib import NatsCluster  # noqa: E402
from relaylib import check_stream_matches_log, start_relay, wait_stream_at  # noqa: E402

STREAM = "EFT"


def add_events(c, tag, n):
    k = c.client()
    for i in range(n):
        expect(k.post("/api/users", {"user_id": "%s-%d" % (tag, i), "name": "U"}), 201)


def relay_exit(c, name, argv=None, timeout=60):
    """Runs the relay to its end; returns (exit status, its output)."""
    p = c._spawn(name, argv or [binary("eventfold-relay"), "--data", c.data, "--config", c.config_path,
                                "--sink", "nats"])
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        check(False, "%s did not exit within %d s: %s" % (name, timeout, c.log_text(name)[-2000:]))
    return rc, c.log_text(name)


def last_line(text):
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def stop_relay(c):
    os.kill(c.pid("relay"), signal.SIGTERM)
    rc = c.procs["relay"].wait(timeout=30)
    check(rc == 0, "relay exit %s after SIGTERM: %s" % (rc, c.log_text("relay")[-2000:]))


def stream_config(subjects):
    return {"name": STREAM, "subjects": subjects, "storage": "file", "num_replicas": 3,
            "retention": "limits", "discard": "old"}


def recreate(nc, subjects=("eventfold.>",)):
    nc.api_retry(lambda cl: cl.delete_stream(STREAM))
    nc.api_retry(lambda cl: cl.create_stream(stream_config(list(subjects))))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    with NatsCluster("relayf") as nc:
        with Cluster("relayf", workers=2, config={"nats_url": nc.urls, "nats_stream": STREAM}) as c:
            add_events(c, "a", 40)
            # Usage errors.
            rc, out = relay_exit(c, "relay-bogus", [binary("eventfold-relay"), "--data", c.data,
                                                    "--sink", "bogus"])
            check(rc == 2 and "bogus" in out and len(out.strip().splitlines()) == 1,
                  "unknown sink: exit %s, %r" % (rc, out))
            rc, out = relay_exit(c, "relay-nosink", [binary("eventfold-relay"), "--data", c.data])
            check(rc == 2 and "--sink" in out, "missing --sink: exit %s, %r" % (rc, out))

            start_relay(c)
            wait_stream_at(nc, STREAM, c.head(), proc=c.procs["relay"])
            rc, out = relay_exit(c, "relay-second")
            check(rc == 1 and "another eventfold-relay --sink nats is running" in out,
                  "second relay: exit %s, %r" % (rc, out))
            stop_relay(c)

            log("the stream is deleted while the relay is stopped")
            nc.api_retry(lambda cl: cl.delete_stream(STREAM))
            add_events(c, "b", 30)
            start_relay(c)
            wait_stream_at(nc, STREAM, c.head(), proc=c.procs["relay"])
            check_stream_matches_log(c, nc, STREAM)
            stop_relay(c)

            log("every node's store is wiped while the cluster is down")
            nc.kill_all()
            nc.wipe_stores()
            nc.start_all()
            add_events(c, "c", 20)
            start_relay(c)
            wait_stream_at(nc, STREAM, c.head(), proc=c.procs["relay"])
            check_stream_matches_log(c, nc, STREAM)
            stop_relay(c)

            log("a stream message disagrees with the log at position 1")
            recreate(nc)
            nc.api_retry(lambda cl: cl.js_publish("eventfold.user.UserRegistered", b'{"forged":true}', {
                "Eventfold-Position": "1", "Eventfold-Crc32c": "00000000"}))
            rc, out = relay_exit(c, "relay-disagree")
            line = last_line(out)
            check(rc == 1 and "disagrees with the log at position 1:" in line,
                  "disagreeing stream: exit %s, last line %r" % (rc, line))
            check(nc.stream_info(STREAM)["state"]["last_seq"] == 1, "the relay wrote to a stream it refused")

            head = c.head()
            log("the stream is longer than the log (%d)" % head)
            recreate(nc)
            def fill(cl):
                for i in range(head + 1):
                    cl.js_publish("eventfold.x.Y", b"{}")
            nc.api_retry(fill)
            rc, out = relay_exit(c, "relay-beyond")
            line = last_line(out)
            check(rc == 1 and ("position %d" % (head + 1)) in line,
                  "stream beyond the log: exit %s, last line %r" % (rc, line))

            log("a stream whose subjects do not cover eventfold.>")
            recreate(nc, ["other.>"])
            rc, out = relay_exit(c, "relay-subjects")
            line = last_line(out)
            check(rc == 1 and "do not cover eventfold.>" in line and len(out.strip().splitlines()) == 1,
                  "wrong subjects: exit %s, output %r" % (rc, out))

        # Unreachable servers: a port nobody listens on (taken and released).
        with Cluster("relayu", workers=1, config={"nats_url": "nats://127.0.0.1:%d" % closed_port()}) as c:
            add_events(c, "u", 5)
            p = start_relay(c)
            time.sleep(6)
            check(p.poll() is None, "relay exited with an unreachable NATS: %s" % c.log_text("relay"))
            cpu = cpu_seconds(p.pid)
            text = c.log_text("relay")
            warn = [ln for ln in text.splitlines() if ": warn:" in ln or ": error:" in ln]
            log("unreachable NATS: %.2f s CPU in 6 s, %d warning lines" % (cpu, len(warn)))
            check(cpu < 1.5, "relay used %.2f s of CPU in 6 s retrying: it spins" % cpu)
            check(len(warn) == 1 and "failing" in warn[0], "expected one failure line, got:\n%s" % text[-2000:])
            attempts = text.count("still failing")
            check(attempts <= 15, "%d attempts in 6 s: no backoff" % attempts)
            t0 = time.monotonic()
            os.kill(p.pid, signal.SIGTERM)
            rc = p.wait(timeout=20)
            check(rc == 0, "relay exit %s after SIGTERM" % rc)
            log("SIGTERM stopped it in %.2f s" % (time.monotonic() - t0))


def closed_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


run(main, 400)
