#!/usr/bin/env python3
"""Operations contract (API.md sections 2, 5, 6): every program's --help and --version
(exit 0) and bad usage (exit 2, one line on stderr); `eventfoldctl status` agreeing with
GET /api/status, `eventfoldctl snapshot` adding a snapshot; GET /api/status fields and
GET /metrics in Prometheus text format through nginx; Log-Position on queries; HEAD; and a
clean stop with SIGTERM of the query workers, the tailer and the command workers (exit 0),
after which a restart serves the same data."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, binary, check, expect, log, run, soft_check, uid  # noqa: E402
from eftest import tmpdir  # noqa: E402

PROGRAMS = ("eventfold-command", "eventfold-query", "eventfold-tailer", "eventfoldctl")


def cli():
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    for prog in PROGRAMS:
        exe = binary(prog)
        for flag in ("--help", "--version"):
            p = subprocess.run([exe, flag], capture_output=True, text=True, timeout=20, env=env)
            check(p.returncode == 0, "%s %s: exit %d" % (prog, flag, p.returncode))
            check((p.stdout + p.stderr).strip(), "%s %s printed nothing" % (prog, flag))
        p = subprocess.run([exe, "--no-such-flag"], capture_output=True, text=True, timeout=20, env=env)
        check(p.returncode == 2, "%s --no-such-flag: exit %d, expected 2" % (prog, p.returncode))
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        check(lines and "no-such-flag" in p.stderr, "%s: bad usage message %r" % (prog, p.stderr[:200]))


def start_errors():
    """Start-up errors: exit 2 (bad usage) or 1, and exactly one line on stderr that names the
    cause and the offending value."""
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    t = tmpdir("ops-cli")
    missing = os.path.join(t, "missing")
    afile = os.path.join(t, "afile")
    data = os.path.join(t, "data")
    os.mkdir(data)
    open(afile, "w").close()
    bad_value = os.path.join(t, "bad-value.conf")
    with open(bad_value, "w") as f:
        f.write("# a comment\nworkers = 0\n")
    bad_key = os.path.join(t, "bad-key.conf")
    with open(bad_key, "w") as f:
        f.write("frobnicate = 1\n")
    sock = "unix:" + os.path.join(t, "s.sock")
    cases = [
        (["eventfold-command", "--data", missing, "--listen", sock], 1, [missing, "No such file"]),
        (["eventfold-query", "--data", missing, "--listen", sock], 1, [missing, "No such file"]),
        (["eventfold-query", "--data", afile, "--listen", sock], 1, [afile, "Not a directory"]),
        (["eventfold-tailer", "--data", missing, "--once"], 1, [missing, "No such file"]),
        (["eventfold-tailer", "--data", afile, "--once"], 1, [afile, "Not a directory"]),
        (["eventfoldctl", "--data", missing, "verify"], 1, [missing, "No such file"]),
        (["eventfoldctl", "--data", missing, "rebuild"], 1, [missing, "No such file"]),
        (["eventfoldctl", "--data", data, "dlq", "frobnicate"], 2, ["'frobnicate'"]),
        (["eventfoldctl", "--data", data, "dlq"], 2, ["dlq", "missing"]),
        (["eventfoldctl", "--data", data, "dlq", "retry", "abc"], 2, ["'abc'"]),
        (["eventfoldctl", "--data", data, "dump", "--limit", "xyz"], 2, ["--limit", "'xyz'"]),
        (["eventfoldctl", "--data", data, "dump", "--from"], 2, ["--from", "needs a value"]),
        (["eventfoldctl", "--data", data, "frobnicate"], 2, ["'frobnicate'"]),
        (["eventfold-command", "--config", bad_value, "--data", data], 2, [bad_value + ":2", "'0'"]),
        (["eventfold-tailer", "--config", bad_key, "--data", data], 2, [bad_key + ":1", "'frobnicate'"]),
        (["eventfold-tailer", "--config", missing, "--data", data], 2, [missing]),
        (["eventfold-query", "--workers", "abc", "--data", data], 2, ["--workers", "'abc'"]),
        (["eventfold-query", "--listen", "bogus", "--data", data], 2, ["--listen", "'bogus'"]),
        (["eventfold-tailer", "--log-level", "loud", "--data", data], 2, ["'loud'"]),
    ]
    for argv, status, words in cases:
        p = subprocess.run([binary(argv[0])] + argv[1:], capture_output=True, text=True,
                           timeout=30, env=env, stdin=subprocess.DEVNULL)
        what = " ".join(argv)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        soft_check(p.returncode == status, "%s: exit %d, expected %d (%r)" % (what, p.returncode, status, p.stderr))
        soft_check(len(lines) == 1, "%s: %d lines on stderr, expected 1: %r" % (what, len(lines), p.stderr))
        soft_check(lines and lines[0].startswith(argv[0] + ": "), "%s: line not 'PROG: ...': %r" % (what, p.stderr))
        for w in words:
            soft_check(w in p.stderr, "%s: stderr lacks %r: %r" % (what, w, p.stderr))


def main():
    log("command lines")
    cli()
    log("start-up errors: one line naming the cause and the value")
    start_errors()
    with Cluster("ops", workers=2) as c:
        cl = c.client()
        u = uid("u")
        w = expect(cl.post("/api/users", {"user_id": u, "name": "Ops"}), 201)
        c.wait_caught_up(w.position)

        log("status")
        st = c.status()
        check(st["log"]["head_position"] == w.position, "status log head %r" % st["log"])
        for k in ("segments", "bytes"):
            check(isinstance(st["log"].get(k), int), "status log.%s %r" % (k, st["log"].get(k)))
        check(st["read_model"]["position"] == w.position and st["read_model"]["lag_events"] == 0,
              "status read_model %r" % st["read_model"])
        check("dead_letters" in st and isinstance(st.get("snapshots"), list), "status %r" % st)
        ctl = c.ctl_json("status")
        check(ctl["log"]["head_position"] == st["log"]["head_position"]
              and ctl["read_model"]["position"] == st["read_model"]["position"],
              "eventfoldctl status %r disagrees with GET /api/status %r" % (ctl, st))
        n_snap = len(st["snapshots"])
        rc, out, err = c.ctl("snapshot")
        check(rc == 0, "eventfoldctl snapshot: exit %d: %s" % (rc, err.strip()))
        snaps = c.status()["snapshots"]
        check(len(snaps) == n_snap + 1 and snaps and any(x["position"] == w.position for x in snaps),
              "snapshots after eventfoldctl snapshot: %r" % snaps)
        for x in snaps:
            check(isinstance(x.get("taken_at"), str) and isinstance(x.get("bytes"), int), "snapshot entry %r" % x)
        # `eventfoldctl snapshot` takes the write model's too; the status lists them apart.
        wsnaps = c.status().get("write_snapshots")
        check(isinstance(wsnaps, list) and any(x["position"] == w.position and x["bytes"] > 0 for x in wsnaps),
              "write_snapshots after eventfoldctl snapshot: %r" % wsnaps)
        r = cl.get("/api/users/%s" % u)
        expect(r, 200)
        check(r.position is not None and r.position >= w.position, "query Log-Position %r" % r.position)
        h = cl.request("HEAD", "/api/users/%s" % u)
        check(h.status == 200 and h.body == b"", "HEAD: %r" % h)

        log("metrics")
        m = cl.get("/metrics")
        check(m.status == 200, "GET /metrics: %r" % m)
        ctype = m.header("Content-Type") or ""
        soft_check(ctype.startswith("text/plain"), "metrics Content-Type %r" % ctype)
        text = m.body.decode()
        check("# TYPE" in text and "# HELP" in text, "metrics without # HELP/# TYPE")
        sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*'
                            r'(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})?'
                            r' (-?[0-9.]+([eE][-+]?[0-9]+)?|[-+]Inf|NaN)( -?[0-9]+)?$')
        for line in text.splitlines():
            if line and not line.startswith("#"):
                check(sample.match(line), "not a Prometheus sample line: %r" % line)
        check('le="+Inf"' in text, "no histogram with le=\"+Inf\"")
        check(re.search(r"_total(\{| )", text), "no counter ending in _total")
        # The command program's counters and latency histogram (another process tree,
        # DATA/command.metrics) appear in the same /metrics as the queries'.
        check(re.search(r'eventfold_http_requests_total\{route="POST /api/users",status="201"\} [1-9]', text),
              "no command counter for POST /api/users in /metrics:\n%s" % text[:3000])
        check(re.search(r'eventfold_http_request_duration_seconds_count\{route="POST /api/users"', text),
              "no command latency histogram in /metrics")
        # Where the commands' time went: every acknowledged command waited for the lock,
        # held it, and waited for its fdatasync.
        for stage in ("append_lock_wait", "append_locked", "sync_wait"):
            m_ = re.search(r'eventfold_command_stage_seconds_count\{stage="%s"\} (\d+)' % stage, text)
            check(m_ and int(m_.group(1)) >= 1, "no command stage %s in /metrics:\n%s" % (stage, text[-2000:]))
            check(re.search(r'eventfold_command_stage_seconds_sum\{stage="%s"\} \d+\.\d{9}\n' % stage, text),
                  "no sum for command stage %s" % stage)
        for word in ("dead", "snapshot", "lag"):
            soft_check(word in text, "metrics do not mention %r" % word)

        log("SIGTERM stops each program cleanly, restart serves the same data")
        for name in ("query", "tailer", "command"):
            rc = c.stop_gracefully(name)
            check(rc == 0, "%s exited %r on SIGTERM" % (name, rc))
        c.start("command")
        c.start("tailer")
        c.start("query")
        c.wait_ready()
        j = expect(cl.get("/api/users/%s" % u), 200, what="after restart").json
        check(j["user_id"] == u and j["name"] == "Ops", "after restart: %r" % j)
        w2 = expect(cl.post("/api/users/%s/deposits" % u, {"amount_cents": 7}), 200, what="after restart")
        check(w2.position == w.position + 1, "position after restart %r" % w2.position)
        j = expect(cl.get("/api/users/%s" % u, headers={"Min-Position": str(w2.position)}), 200).json
        check(j["wallet_balance_cents"] == 7, "wallet after restart %r" % j)
        c.verify()


if __name__ == "__main__":
    run(main, budget=120)
