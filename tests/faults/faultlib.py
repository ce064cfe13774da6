"""faultlib: what the fault-injection tests share beyond tests/lib/eftest.py (mounts,
filling a disk, running a program within a time limit) and tests/integration/harness.py
(the stack, with Cluster(fs_size=...) for a data directory on a filesystem of its own):
  - expect_clean_failure(): runs an eventfold program to completion with a time limit and
    checks that it failed cleanly (exit status, no signal, no sanitizer report, an error line);
  - no_sanitizer_reports(): no program of a cluster wrote one;
  - Findings: independent cases that all run, and one failure listing those that failed;
  - segment helpers (list, read) for tests that damage the log by hand.
Only the standard library, eftest and harness.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "fuzz"))
import harness  # noqa: E402
from harness import Cluster, SkipTest, TestFailure, binary, check  # noqa: E402,F401
from eftest import SANITIZER_MARKS, fill, remount, run_program, sanitizer_report, tmpdir  # noqa: E402,F401


def no_sanitizer_reports(cluster):
    """Fails if a program of the cluster wrote a sanitizer report to its log."""
    for name in ("command", "query", "tailer"):
        report = sanitizer_report(cluster.log_text(name))
        check(report is None, "%s log has a sanitizer report: %s" % (name, report))


def expect_clean_failure(argv, what, must_mention=(), timeout=30, allow_success=False):
    """The program must exit (not hang, not crash on a signal, no sanitizer report) with a
    non-zero status and an error line on stderr; must_mention: words (any of them, case-
    insensitive) the error must contain. Returns (rc, stdout, stderr)."""
    rc, out, err = run_program(argv, timeout)
    tag = "%s (%s)" % (what, " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(argv)))
    check(rc >= 0, "%s: killed by signal %d: %s" % (tag, -rc, err[-1500:]))
    check(not any(m in err for m in SANITIZER_MARKS), "%s: sanitizer report:\n%s" % (tag, err[-3000:]))
    if allow_success and rc == 0:
        return rc, out, err
    check(rc != 0, "%s: exit status 0, expected a failure; stderr: %r" % (tag, err[-500:]))
    check(rc in (1, 2, 3, 4, 69, 70, 71, 73, 74, 75, 78),
          "%s: odd exit status %d (a crash?): %s" % (tag, rc, err[-1000:]))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    check(lines, "%s: exit %d without any message on stderr" % (tag, rc))
    if must_mention:
        low = err.lower()
        check(any(w.lower() in low for w in must_mention),
              "%s: the error does not name the cause (expected one of %s): %r"
              % (tag, list(must_mention), err[-800:]))
    harness.log("%s: exit %d: %s" % (what, rc, lines[-1][:300]))
    return rc, out, err


class Findings:
    """Collects failed checks of independent cases, so that one run reports all of them;
    finish() raises one TestFailure listing every one."""

    def __init__(self):
        self.items = []

    def case(self, what, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except TestFailure as e:
            harness.log("FAILED: %s: %s" % (what, e))
            self.items.append("%s: %s" % (what, e))
            return None

    def finish(self):
        if self.items:
            raise TestFailure("%d case(s) failed:\n  %s" % (len(self.items), "\n  ".join(self.items)))


def segments(logdir):
    return sorted(f for f in os.listdir(logdir) if f.endswith(".seg"))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
