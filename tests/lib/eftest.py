"""eftest: the one helper library of eventfold's Python tests and benchmarks.

What every test needs below the level of a running stack, written once:
  - failures and skips (TestFailure, SkipTest, check, the automake exit codes);
  - temporary directories under /tmp, removed at exit (kept with EF_KEEP_TMP=1), and an
    rm -rf that first unmounts whatever a test mounted below the tree;
  - small filesystems for fault tests: a tmpfs, another filesystem on a loop device, a
    read-only remount, and filling one up to ENOSPC; mounting needs root, and where it is
    not possible the test is skipped (exit 77), never failed;
  - programs: finding a built binary, starting one in its own session (its process group id
    is its PID) with its output in a log file, stopping it by that PID (never by name), and
    running one to completion within a time limit;
  - free loopback ports.
The private nginx + eventfold stack (Cluster) is built on this in
tests/integration/harness.py. Processes, mounts and directories made here are registered and
undone by cleanup(), which runs at exit and from harness's teardown (also when a test's time
budget runs out). Only the Python standard library is used.
"""

import atexit
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77

BUILDDIR = os.environ.get("EF_BUILDDIR") or os.getcwd()
SRCDIR = os.environ.get("EF_SRCDIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
KEEP_TMP = os.environ.get("EF_KEEP_TMP") == "1"
# What a sanitizer (ASan, LSan, UBSan, TSan) writes at the start of a report.
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer", "ThreadSanitizer")


class TestFailure(Exception):
    """A check failed; the message says what was expected and what came back."""


class SkipTest(Exception):
    """The test cannot run here (a tool missing, no right to mount): exit 77."""


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


# ---------------------------------------------------------------------------------------
# What cleanup() undoes, newest first.

_lock = threading.RLock()  # re-entrant: a SIGALRM handler may interrupt a cleanup
_procs = []    # Popen of spawn()ed programs
_mounts = []   # mount points
_dirs = []     # temporary directories


def cleanup():
    """Stops every program spawn() started that still runs (its whole process group, by
    PID), unmounts every mount made here, and removes every temporary directory (unless
    EF_KEEP_TMP=1). Safe to call more than once."""
    with _lock:
        while _procs:
            p = _procs.pop()
            try:
                stop(p, signal.SIGKILL, timeout=10)
            except Exception as e:  # teardown goes on
                print("teardown: pid %d: %s" % (p.pid, e), file=sys.stderr)
        while _mounts:
            umount(_mounts.pop())
        while _dirs:
            d = _dirs.pop()
            umount_below(d)
            if not KEEP_TMP:
                shutil.rmtree(d, ignore_errors=True)


atexit.register(cleanup)


# ---------------------------------------------------------------------------------------
# Directories.

def tmpdir(name, parent=None):
    """A new, empty directory /tmp/ef-NAME-XXXXXX (or under parent), removed by cleanup()."""
    d = tempfile.mkdtemp(prefix="ef-%s-" % name, dir=parent or "/tmp")
    with _lock:
        _dirs.append(d)
    return d


def _mounts_below(path):
    """Mount points at or below path, deepest first (from /proc/self/mounts)."""
    path = os.path.realpath(path)
    out = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                mp = line.split()[1].replace("\\040", " ")
                if mp == path or mp.startswith(path + "/"):
                    out.append(mp)
    except OSError:
        pass
    return sorted(out, key=len, reverse=True)


def umount_below(path):
    for mp in _mounts_below(path):
        umount(mp)


def rmtree(path):
    """rm -rf path: unmounts whatever is mounted at or below it first (so that a test's
    tmpfs is never emptied file by file, nor left mounted), does not follow symbolic links,
    and ignores a path that does not exist. Refuses anything but an absolute path below a
    top-level directory."""
    check(os.path.isabs(path) and os.path.normpath(path).count("/") >= 2,
          "rmtree: refusing %r" % path)
    umount_below(path)
    shutil.rmtree(path, ignore_errors=True)
    with _lock:
        if path in _dirs:
            _dirs.remove(path)


# ---------------------------------------------------------------------------------------
# Filesystems (root only; SkipTest otherwise).

def _mount(argv, path):
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise SkipTest("cannot mount %s (%s): %s" % (path, " ".join(argv[:4]), p.stderr.strip()))
    with _lock:
        _mounts.append(path)


def mount_tmpfs(path, size, mode="0755"):
    """Mounts a tmpfs of `size` (bytes, or "4m" ...) at path (created if needed)."""
    _mount(["mount", "-t", "tmpfs", "-o", "size=%s,mode=%s" % (size, mode), "ef-tmpfs", path], path)


def mount_loop(path, fstype, size_mib, image_dir):
    """Mounts a new filesystem of type fstype (mkfs.FSTYPE), size_mib MiB, made in an image
    file in image_dir, at path through a loop device (detached again by umount)."""
    mkfs = "/usr/sbin/mkfs." + fstype
    if not os.access(mkfs, os.X_OK):
        raise SkipTest("%s not found (Debian: %s-progs)" % (mkfs, fstype))
    image = os.path.join(image_dir, fstype + ".img")
    with open(image, "wb") as f:
        f.truncate(size_mib << 20)
    p = subprocess.run([mkfs, "-q", image], capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, "%s: %s" % (mkfs, p.stderr.strip()))
    _mount(["mount", "-o", "loop", "-t", fstype, image, path], path)


def mount_fs(path, size, fstype="tmpfs", image_dir=None):
    """A tmpfs of `size`, or a filesystem of fstype and `size` MiB on a loop device."""
    if fstype == "tmpfs":
        mount_tmpfs(path, size)
    else:
        mount_loop(path, fstype, size, image_dir or os.path.dirname(path))


def remount(path, opts):
    p = subprocess.run(["mount", "-o", "remount," + opts, path], capture_output=True, text=True,
                       timeout=60)
    check(p.returncode == 0, "remount %s %s: %s" % (path, opts, p.stderr.strip()))


def umount(path):
    """Unmounts path. A process that was just killed may hold it for a moment: retried for
    about two seconds, then detached lazily (the kernel frees it when the last user is
    gone), so a mount is never left behind."""
    with _lock:
        if path in _mounts:
            _mounts.remove(path)
    if not os.path.ismount(path):
        return
    for _ in range(20):
        if subprocess.run(["umount", path], capture_output=True, timeout=30).returncode == 0:
            return
        time.sleep(0.1)
    p = subprocess.run(["umount", "-l", path], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        print("teardown: umount %s: %s" % (path, p.stderr.strip()), file=sys.stderr)


def fill(path):
    """Writes path until its filesystem is full, down to the last byte (chunks of 64 KiB,
    then 4 KiB, 512 and 1 byte); returns the bytes written. Errors other than ENOSPC raise."""
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in (1 << 16, 4096, 512, 1):
            buf = b"\xee" * chunk
            while True:
                try:
                    w = os.write(fd, buf)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
                n += w
                if w < chunk:
                    break
    finally:
        os.close(fd)
    return n


# ---------------------------------------------------------------------------------------
# Programs.

def binary(name):
    """The built program `name` (eventfold-command, bench/bench_fold, ...) in the build tree."""
    for cand in (os.path.join(BUILDDIR, name), os.path.join(BUILDDIR, "src", "programs", name),
                 os.path.join(BUILDDIR, "bench", name)):
        if os.access(cand, os.X_OK):
            return cand
    raise TestFailure("program %s not built in %s (run make %s)" % (name, BUILDDIR, name))


def free_port():
    """A TCP port free on 127.0.0.1 right now (a caller that loses a race retries)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def children_of(pid):
    """PIDs whose parent is pid (from /proc)."""
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def program_env(env=None, asan="detect_leaks=0:abort_on_error=0"):
    """The environment for a program under test: sanitizer builds report, and do not
    hide; leaks of a killed program are not errors unless asan says otherwise."""
    e = dict(os.environ if env is None else env)
    e.setdefault("ASAN_OPTIONS", asan)
    return e


def spawn(argv, logpath, env=None, cwd=None, stdin=subprocess.DEVNULL):
    """Starts argv in a session of its own (so its process group id is its PID) with stdout
    and stderr appended to logpath; cleanup() kills it if it still runs."""
    lf = open(logpath, "ab")
    try:
        p = subprocess.Popen(argv, stdin=stdin, stdout=lf, stderr=lf, start_new_session=True,
                             env=program_env(env), cwd=cwd)
    finally:
        lf.close()
    with _lock:
        _procs[:] = [q for q in _procs if q.poll() is None]  # those that ended need nothing
        _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=20):
    """Sends sig to p's process group (by p's PID) and waits up to timeout seconds; then
    SIGKILL. Returns p's exit status (negative: the signal that ended it)."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)
    with _lock:
        if p in _procs:
            _procs.remove(p)
    return p.returncode


def run_program(argv, timeout=30, env=None, asan="detect_leaks=1:abort_on_error=0", cwd=None):
    """Runs argv to completion in its own session; returns (returncode, stdout, stderr) as
    text. A program still running after timeout seconds is killed with its whole process
    group (by PID) and the test fails."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=program_env(env, asan), cwd=cwd,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise TestFailure("%s still running after %d s" % (" ".join(argv), timeout))
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def sanitizer_report(text):
    """The first sanitizer report in text (with some context), or None."""
    for mark in SANITIZER_MARKS:
        at = text.find(mark)
        if at >= 0:
            return text[max(0, at - 200):at + 1500]
    return None
