#!/usr/bin/env python3
"""eventfold-mirror against a real three-node JetStream cluster, fed by a test publisher
(mirrorlib) that controls every byte: an empty replica catches up and follows, its log is
the publisher's records byte for byte (`eventfoldctl dump`, verify, the tailer folds it),
SIGTERM stops it cleanly, kill -9 during a catch-up loses and duplicates nothing; a bad
CRC, a wrong position header, a message missing in the middle of the stream and a stream
that starts after position 1 each stop it with exit 1 and a line naming the position; a
directory of another stream, or with a leader's log, is refused; eventfold-command refuses
a replica's directory (exit 1, one line saying commands go to the leader)."""

import os
import random
import signal
import subprocess
import time

import harness
import eftest  # tests/lib, on the path once harness is imported
import mirrorlib
import natslib
from harness import Cluster, binary, check, log


class Mirror:
    """One eventfold-mirror process on its own data directory, stopped by PID at teardown."""

    def __init__(self, tmp, name, urls, stream, prefix):
        self.data = os.path.join(tmp, name)
        self.conf = os.path.join(tmp, name + ".conf")
        self.logpath = os.path.join(tmp, name + ".log")
        self.proc = None
        with open(self.conf, "w") as f:
            f.write("nats_url = %s\nnats_stream = %s\nnats_subject_prefix = %s\n" % (urls, stream, prefix))
        harness._clusters.append(self)

    def start(self):
        self.proc = eftest.spawn([binary("eventfold-mirror"), "--data", self.data, "--config", self.conf],
                                 self.logpath)
        return self

    def log_text(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def position(self):
        st = mirrorlib.read_state(self.data)
        return st["position"] if st else 0

    def wait_position(self, pos, timeout=60):
        deadline = time.monotonic() + timeout
        while self.position() < pos:
            check(self.proc.poll() is None, "mirror exited (%s) at %d, before position %d: %s"
                  % (self.proc.returncode, self.position(), pos, self.log_text()[-2000:]))
            check(time.monotonic() < deadline, "mirror at %d after %d s, wanted %d: %s"
                  % (self.position(), timeout, pos, self.log_text()[-2000:]))
            time.sleep(0.05)

    def wait_exit(self, timeout=60):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise harness.TestFailure("mirror still running after %d s: %s" % (timeout, self.log_text()[-2000:]))

    def print_logs(self):
        print("----- %s log (tail) -----" % os.path.basename(self.data))
        print(self.log_text()[-3000:])

    def last_line(self):
        lines = [ln for ln in self.log_text().splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def stop(self, sig=signal.SIGKILL):
        if self.proc is not None:
            eftest.stop(self.proc, sig, timeout=30)

    def ctl(self, *args):
        return eftest.run_program([binary("eventfoldctl"), "--data", self.data, "--config", self.conf]
                                  + list(args), timeout=120, asan="detect_leaks=0")


def dump_lines(m):
    rc, out, err = m.ctl("dump")
    check(rc == 0, "dump: exit %d: %s" % (rc, err))
    return out.splitlines()


def check_dump(m, events):
    got = dump_lines(m)
    want = [e.dump_line() for e in events]
    check(len(got) == len(want), "replica has %d records, expected %d" % (len(got), len(want)))
    for g, w in zip(got, want):
        check(g == w, "replica record differs:\n  got  %s\n  want %s" % (g, w))
    rc, out, err = m.ctl("verify")
    check(rc == 0, "verify: exit %d: %s %s" % (rc, out, err))


def expect_stop(m, position, words):
    rc = m.wait_exit()
    line = m.last_line()
    check(rc == 1, "mirror exit %s, expected 1: %s" % (rc, m.log_text()[-1500:]))
    check(("position %d" % position) in line, "the last line does not name position %d: %r" % (position, line))
    for w in words:
        check(w in line, "the last line does not say %r: %r" % (w, line))
    log("stopped as expected:", line)


def catch_up_follow_restart(nats):
    mirrorlib.create_stream(nats, "MT", "mt")
    evs = mirrorlib.shop_events(300)
    mirrorlib.publish(nats, "mt", evs[:200])
    m = Mirror(nats.tmp, "r1", nats.urls, "MT", "mt").start()
    m.wait_position(200)
    mirrorlib.publish(nats, "mt", evs[200:])  # while it follows
    m.wait_position(300)
    os.kill(m.proc.pid, signal.SIGTERM)
    check(m.wait_exit(20) == 0, "SIGTERM: exit %s" % m.proc.returncode)
    check_dump(m, evs)
    with open(os.path.join(m.data, "replica")) as f:
        check(f.read().strip() == "MT", "the replica marker does not name the stream")

    # The replica's own tailer folds the copy like any log.
    p = subprocess.run([binary("eventfold-tailer"), "--data", m.data, "--once"], capture_output=True,
                       text=True, timeout=120)
    check(p.returncode == 0, "tailer --once: %s" % p.stderr)
    rc, out, err = m.ctl("status")
    check(rc == 0, "status: %s" % err)
    st = __import__("json").loads(out)
    check(st["read_model"]["position"] == 300 and st["dead_letters"] == 0, "replica status %s" % st)
    check(st["replica"]["stream"] == "MT" and st["replica"]["lag_events"] == 0,
          "replica block %s" % st.get("replica"))

    # kill -9 in the middle of a catch-up, then resume: nothing lost or doubled.
    more = mirrorlib.shop_events(1500, start=301)
    mirrorlib.publish(nats, "mt", more)
    # The kill lands wherever it lands (connecting, appending, syncing): the outcome must be
    # the same.
    m.start()
    time.sleep(random.uniform(0.05, 0.3))
    m.stop(signal.SIGKILL)
    log("killed the mirror at position", m.position())
    m.start()
    m.wait_position(1800)
    check_dump(m, evs + more)

    # A message whose CRC header disagrees with the record it carries.
    bad = mirrorlib.shop_events(1, start=1801)
    mirrorlib.publish(nats, "mt", bad, lambda ev, h: dict(h, **{"Eventfold-Crc32c": "%08x" % (ev.crc() ^ 1)}))
    expect_stop(m, 1801, ["disagrees", "CRC32C"])
    check_dump(m, evs + more)

    # The directory is a replica of MT: a mirror configured for another stream is refused.
    other = os.path.join(nats.tmp, "other.conf")
    with open(other, "w") as f:
        f.write("nats_url = %s\nnats_stream = OTHER\n" % nats.urls)
    p = subprocess.run([binary("eventfold-mirror"), "--data", m.data, "--config", other],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 1 and "replica of the stream 'MT'" in p.stderr, "other stream: %s %r"
          % (p.returncode, p.stderr))
    return m


def bad_streams(nats):
    # A wrong Eventfold-Position header.
    mirrorlib.create_stream(nats, "MP", "mp")
    mirrorlib.publish(nats, "mp", mirrorlib.shop_events(1), lambda ev, h: dict(h, **{"Eventfold-Position": "2"}))
    m = Mirror(nats.tmp, "rp", nats.urls, "MP", "mp").start()
    expect_stop(m, 1, ["disagrees", "Eventfold-Position is 2"])

    # A message missing in the middle of the stream (deleted): the mirror keeps 1 and stops at 2.
    mirrorlib.create_stream(nats, "MD", "md", deny_delete=False)
    evs = mirrorlib.shop_events(3)
    mirrorlib.publish(nats, "md", evs)
    nats.api_retry(lambda c: c.api("$JS.API.STREAM.MSG.DELETE.MD", {"seq": 2}))
    m = Mirror(nats.tmp, "rd", nats.urls, "MD", "md").start()
    expect_stop(m, 2, ["gap"])
    check_dump(m, evs[:1])

    # A stream that starts after position 1 (its first messages purged).
    mirrorlib.create_stream(nats, "MG", "mg")
    evs = mirrorlib.shop_events(6)
    mirrorlib.publish(nats, "mg", evs[:3])
    nats.api_retry(lambda c: c.api("$JS.API.STREAM.PURGE.MG", {}))
    mirrorlib.publish(nats, "mg", evs[3:])
    m = Mirror(nats.tmp, "rg", nats.urls, "MG", "mg").start()
    expect_stop(m, 1, ["gap"])


def refusals(replica):
    # eventfold-command on a replica's directory: exit 1, one line, commands go to the leader.
    p = subprocess.run([binary("eventfold-command"), "--data", replica.data, "--listen",
                        "unix:" + os.path.join(replica.data, "..", "cmd.sock")],
                       capture_output=True, text=True, timeout=60)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    check(p.returncode == 1, "eventfold-command on a replica: exit %s" % p.returncode)
    check(len(lines) == 1 and "leader" in lines[0], "eventfold-command on a replica said %r" % p.stderr)
    log("eventfold-command refused:", lines[0])

    # eventfold-mirror on a leader's directory (a log written by commands, no marker).
    with Cluster("mirror-leader", workers=1) as lead:
        r = lead.client().post("/api/users", {"user_id": "ada", "name": "Ada"})
        check(r.status == 201, "register: %r" % r)
        p = subprocess.run([binary("eventfold-mirror"), "--data", lead.data, "--config", replica.conf],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 1 and "not a replica" in p.stderr, "mirror on a leader's dir: %s %r"
              % (p.returncode, p.stderr))
        check(not os.path.exists(os.path.join(lead.data, "replica")), "the leader's dir got a marker")
        log("eventfold-mirror refused:", p.stderr.strip())


def unreachable(tmp):
    # No NATS server at all: the mirror waits in the background (one line), and SIGTERM stops
    # it at once with exit 0, not after the service manager's timeout.
    port = harness.free_port()
    m = Mirror(tmp, "nowhere", "nats://127.0.0.1:%d" % port, "NW", "nw").start()
    deadline = time.monotonic() + 30
    while "nats_not_connected" not in m.log_text():
        check(m.proc.poll() is None, "mirror exited (%s) without NATS: %s" % (m.proc.returncode, m.log_text()))
        check(time.monotonic() < deadline, "no 'not connected' line in 30 s: %s" % m.log_text())
        time.sleep(0.1)
    os.killpg(m.proc.pid, signal.SIGTERM)
    rc = m.wait_exit(timeout=10)
    check(rc == 0, "mirror without NATS: exit %s after SIGTERM: %s" % (rc, m.log_text()[-1000:]))
    log("mirror without NATS stopped on SIGTERM")


def main():
    with natslib.NatsCluster("mirror") as nats:
        replica = catch_up_follow_restart(nats)
        bad_streams(nats)
        refusals(replica)
        unreachable(os.path.dirname(replica.data))


if __name__ == "__main__":
    harness.run(main, budget=240)
