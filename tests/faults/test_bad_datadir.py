#!/usr/bin/env python3
"""A missing or read-only data directory: every program exits with a non-zero
status and a one-line error naming the cause, within seconds: no crash, no hang, no
respawn loop, and nothing changed on disk.
  - missing: --data names a directory whose parent does not exist either;
  - read-only: a data directory with a log, on a tmpfs remounted read-only (root ignores
    permission bits, so chmod would prove nothing). eventfoldctl's read-only commands may
    succeed there (they must then show the events); the command program must refuse.
Needs root for the read-only part; exits 77 (skip) when it cannot mount."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import Cluster, Findings, binary, check, expect_clean_failure, remount, tmpdir  # noqa: E402
from harness import expect, log, run, uid  # noqa: E402


def missing(tmp, f):
    d = os.path.join(tmp, "no", "such", "data")
    sock = os.path.join(tmp, "c.sock")
    cause = ("no such file", "not found", "missing", "does not exist", d)
    f.case("command, missing data dir", expect_clean_failure,
           [binary("eventfold-command"), "--data", d, "--listen", "unix:" + sock, "--workers", "1"],
           "command, missing data dir", cause, timeout=10)
    f.case("tailer, missing data dir", expect_clean_failure,
           [binary("eventfold-tailer"), "--data", d, "--once"], "tailer, missing data dir", cause)
    for sub in ("verify", "status", "dump"):
        f.case("eventfoldctl %s, missing data dir" % sub, expect_clean_failure,
               [binary("eventfoldctl"), "--data", d, sub], "eventfoldctl %s, missing data dir" % sub, cause)
    f.case("missing data dir left alone", lambda: check(
        not os.path.exists(os.path.join(tmp, "no")), "a program created the missing data directory"))


def read_only(tmp, f):
    with Cluster("rodata", fs_size="32m", workers=1) as c:
        cl = c.client()
        n = 0
        for i in range(5):
            expect(cl.post("/api/users", {"user_id": uid("ro", i), "name": "R"}), 201, what="populate")
            n += 1
        c.wait_caught_up()
        cl.close()
        for name in ("command", "query", "tailer"):
            c.kill(name, signal.SIGKILL)
        remount(c.mountpoint, "ro")
        sock = os.path.join(tmp, "ro.sock")
        ro = ("read-only", "read only", "erofs", "permission")
        f.case("command, read-only data dir", expect_clean_failure,
               [binary("eventfold-command"), "--data", c.data, "--listen", "unix:" + sock, "--workers", "1"],
               "command, read-only data dir", ro, timeout=10)
        f.case("tailer --once, read-only data dir", expect_clean_failure,
               [binary("eventfold-tailer"), "--data", c.data, "--once"],
               "tailer --once, read-only data dir", ro, allow_success=True)
        f.case("eventfoldctl verify, read-only data dir", expect_clean_failure,
               [binary("eventfoldctl"), "--data", c.data, "verify"],
               "eventfoldctl verify, read-only data dir", ro, allow_success=True)
        r = f.case("eventfoldctl dump, read-only data dir", expect_clean_failure,
                   [binary("eventfoldctl"), "--data", c.data, "dump"],
                   "eventfoldctl dump, read-only data dir", ro, allow_success=True)
        rc, out, _ = r if r else (1, "", "")
        if rc == 0:
            check(len([ln for ln in out.splitlines() if ln.strip()]) == n,
                  "eventfoldctl dump on a read-only data dir shows %d events, expected %d" % (len(out.splitlines()), n))


def main():
    tmp = tmpdir("faults-datadir")
    f = Findings()
    missing(tmp, f)
    log("missing data directory: done")
    read_only(tmp, f)
    log("read-only data directory: done")
    f.finish()


if __name__ == "__main__":
    run(main, 300)
