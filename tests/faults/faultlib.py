"""faultlib: what the fault-injection tests share (issue 7).

  - tmpfs mounts for a test (a small filesystem to fill up, or one to remount read-only);
    mounting needs root: without it the test is skipped (exit 77);
  - TmpfsCluster: a harness.Cluster whose data directory (or its log/ directory) is a
    private tmpfs (or another filesystem on a loop device), mounted before the first program
    starts and unmounted at teardown;
  - run_program(): runs an eventfold program to completion with a time limit and checks
    that it failed cleanly (exit status, no signal, no sanitizer report, an error line);
  - segment helpers (list, read) for tests that damage the log by hand.
Only the standard library and tests/integration/harness.py.
"""

import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "fuzz"))
import harness  # noqa: E402
from harness import Cluster, SkipTest, TestFailure, binary, check  # noqa: E402,F401


def mount_tmpfs(path, size):
    """Mounts a tmpfs of `size` (e.g. "4m") at path; SkipTest when that is not possible."""
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SkipTest("cannot mount a tmpfs (%s): %s" % (path, p.stderr.strip()))


def mount_loop(path, fstype, size_mib, image_dir):
    """Mounts a new filesystem of type fstype (mkfs.FSTYPE), size_mib MiB, made in an image
    file in image_dir, at path through a loop device (detached again by umount); SkipTest
    when the tools or loop devices are missing."""
    mkfs = "/usr/sbin/mkfs." + fstype
    if not os.access(mkfs, os.X_OK):
        raise SkipTest("%s not found (Debian: %s-progs)" % (mkfs, fstype))
    image = os.path.join(image_dir, fstype + ".img")
    with open(image, "wb") as f:
        f.truncate(size_mib << 20)
    p = subprocess.run([mkfs, "-q", image], capture_output=True, text=True)
    check(p.returncode == 0, "%s: %s" % (mkfs, p.stderr.strip()))
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-o", "loop", "-t", fstype, image, path], capture_output=True, text=True)
    if p.returncode != 0:
        raise SkipTest("cannot mount a loop device (%s): %s" % (path, p.stderr.strip()))


def umount(path):
    if os.path.ismount(path):
        p = subprocess.run(["umount", path], capture_output=True, text=True)
        if p.returncode != 0:  # something still holds it: detach lazily, never leave it
            subprocess.run(["umount", "-l", path], capture_output=True)


def remount(path, opts):
    p = subprocess.run(["mount", "-o", "remount," + opts, path], capture_output=True, text=True)
    check(p.returncode == 0, "remount %s %s: %s" % (path, opts, p.stderr.strip()))


class TmpfsCluster(Cluster):
    """A Cluster whose `sub` directory of the data dir ("" = the data dir itself) is a
    tmpfs of `size`, mounted before the first program starts."""

    def __init__(self, name, size, sub="log", fstype="tmpfs", **kw):
        self._tmpfs_size = size
        self._tmpfs_sub = sub
        self._fstype = fstype
        self.mountpoint = None
        super().__init__(name, **kw)

    def start(self, name):
        if self.mountpoint is None:
            self.mountpoint = os.path.join(self.data, self._tmpfs_sub) if self._tmpfs_sub else self.data
            try:
                if self._fstype == "tmpfs":
                    mount_tmpfs(self.mountpoint, self._tmpfs_size)
                else:  # size in MiB, on a loop device
                    mount_loop(self.mountpoint, self._fstype, self._tmpfs_size, self.tmp)
            except SkipTest:
                self.mountpoint = ""
                raise
        return super().start(name)

    def stop(self):
        # Kill the programs first (they hold files on the mount), then unmount, then let the
        # base class remove the temporary directory.
        for name in ("nginx", "command", "query", "tailer"):
            if name in self.procs:
                try:
                    self.kill(name, signal.SIGKILL)
                except Exception as e:  # teardown goes on
                    print("teardown %s: %s" % (name, e), file=sys.stderr)
        if self.mountpoint:
            umount(self.mountpoint)
        super().stop()


SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def no_sanitizer_reports(cluster):
    """Fails if a program of the cluster wrote a sanitizer report to its log."""
    for name in ("command", "query", "tailer"):
        text = cluster.log_text(name)
        for mark in SANITIZER_MARKS:
            at = text.find(mark)
            check(at < 0, "%s log has a sanitizer report: %s" % (name, text[max(0, at - 200):at + 1500]))


def run_program(argv, timeout=30):
    """Runs argv to completion; returns (returncode, stdout, stderr). A program that is
    still running after `timeout` seconds is killed (by PID) and the test fails."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise TestFailure("%s still running after %d s (expected a clean exit)" % (" ".join(argv), timeout))
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


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
