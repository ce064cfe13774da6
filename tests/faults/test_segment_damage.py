#!/usr/bin/env python3
"""Hand-made damage to the log (API.md section 7): a segment deleted by hand, and
records of a newer format version (as a newer eventfold would write them), at the tail and
in a sealed segment. On a stopped deployment with small segments (4 KiB), each case on its
own copy of the data directory:
  - eventfoldctl verify exits 1 naming the damage (a deleted segment: the gap);
  - eventfold-command refuses to start: non-zero exit, one-line error naming the cause,
    and the log is left as it was (a newer record at the tail is not "repaired" away as
    if it were a torn write: that would silently destroy another version's data);
  - eventfold-tailer --once on a fresh read model stops with an error instead of folding
    past the damage.
No crash, hang or sanitizer report anywhere."""

import os
import shutil
import signal
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import Cluster, Findings, binary, check, expect_clean_failure, read, segments, tmpdir, write  # noqa: E402
from harness import expect, log, run, uid  # noqa: E402
from mkseeds import crc32c, record  # noqa: E402  (tests/fuzz/mkseeds.py: record.h encoder)

COMMANDS = 80


def records_of(buf):
    """(offset, length) of the records of a segment, by their own framing."""
    out, off = [], 0
    while off + 56 <= len(buf):
        magic, length = struct.unpack_from("<II", buf, off)
        if magic != 0x31524645 or length < 56 or off + length > len(buf):
            break
        out.append((off, length))
        off += length
    return out


def with_format(rec, fmt):
    """The record re-encoded with another format number (and a valid CRC)."""
    b = bytearray(rec)
    struct.pack_into("<H", b, 12, fmt)
    sl, tl, ml, dl = struct.unpack_from("<HHII", b, 40)
    end = 56 + sl + tl + ml + dl
    struct.pack_into("<I", b, 8, crc32c(bytes(b[12:end])))
    return bytes(b)


def ctl(data, *args):
    return [binary("eventfoldctl"), "--data", data] + list(args)


def command(data, tmp):
    return [binary("eventfold-command"), "--data", data, "--listen", "unix:" + os.path.join(tmp, "c.sock"),
            "--workers", "1"]


def copy_case(src, tmp, name, log_only=False):
    dst = os.path.join(tmp, name)
    if log_only:
        os.makedirs(dst)
        shutil.copytree(os.path.join(src, "log"), os.path.join(dst, "log"))
    else:
        shutil.copytree(src, dst)
    for junk in ("control", "users.lock", "init.lock"):  # per-run files, not part of the log
        p = os.path.join(dst, "log", junk)
        if os.path.exists(p):
            os.unlink(p)
    return dst


def snapshot_log(data):
    d = os.path.join(data, "log")
    return {f: read(os.path.join(d, f)) for f in segments(d)}


def deleted_segment(src, tmp, f):
    data = copy_case(src, tmp, "deleted")
    segs = segments(os.path.join(data, "log"))
    check(len(segs) >= 4, "expected several segments with segment_bytes=4096, got %d" % len(segs))
    gone = segs[len(segs) // 2]
    os.unlink(os.path.join(data, "log", gone))
    log("deleted segment %s of %d" % (gone, len(segs)))
    cause = ("missing", "sequence", "gap", "segment", gone.split(".")[0].lstrip("0"))
    r = f.case("verify, deleted segment", expect_clean_failure, ctl(data, "verify"),
               "verify, deleted segment", cause)
    if r:
        f.case("verify exit status", check, r[0] == 1, "verify: exit %d, API.md says 1 when damage is found" % r[0])
    before = snapshot_log(data)
    f.case("command, deleted segment", expect_clean_failure, command(data, tmp),
           "command, deleted segment", cause, timeout=10)
    f.case("command leaves the log alone", check, snapshot_log(data) == before,
           "the command program changed the log while refusing it")
    fresh = copy_case(data, tmp, "deleted-fresh", log_only=True)
    f.case("tailer --once, deleted segment", expect_clean_failure,
           [binary("eventfold-tailer"), "--data", fresh, "--once"], "tailer --once, deleted segment", cause)


def dump_up_to(data, head, cause):
    """dump gives every record before the damage at the tail, then exits 1 saying why."""
    _, out, _ = expect_clean_failure(ctl(data, "dump"), "dump, damaged tail", cause)
    positions = [int(line.split(",", 1)[0].split(":")[1]) for line in out.splitlines()]
    check(positions == list(range(1, head + 1)),
          "dump of a log with damage at its tail: positions %r..%r (%d), expected 1..%d"
          % (positions[:1], positions[-1:], len(positions), head))


def newer_format(src, tmp, where, f):
    data = copy_case(src, tmp, "newer-" + where)
    logdir = os.path.join(data, "log")
    segs = segments(logdir)
    if where == "tail":
        path = os.path.join(logdir, segs[-1])
        buf = read(path)
        recs = records_of(buf)
        check(recs, "newest segment has no records")
        last_off, last_len = recs[-1]
        head = struct.unpack_from("<Q", buf, last_off + 16)[0]
        newer = record(head + 1, "user-future", "UserRegistered", {"user_id": "future", "name": "F"}, fmt=2)
        write(path, buf[:last_off + last_len] + newer)
    else:
        path = os.path.join(logdir, segs[0])
        buf = read(path)
        off, length = records_of(buf)[0]
        write(path, buf[:off] + with_format(buf[off:off + length], 2) + buf[off + length:])
    cause = ("version", "format", "newer")
    what = "format 2 record (%s)" % where
    f.case("verify, " + what, expect_clean_failure, ctl(data, "verify"), "verify, " + what, cause)
    if where == "tail":
        f.case("dump, " + what, dump_up_to, data, head, cause)
    before = snapshot_log(data)
    f.case("command, " + what, expect_clean_failure, command(data, tmp), "command, " + what, cause,
           timeout=10)
    f.case("command leaves the log alone, " + what, check, snapshot_log(data) == before,
           "the command program changed the log (%s): another version's data must not be "
           "truncated" % what)
    fresh = copy_case(data, tmp, "newer-%s-fresh" % where, log_only=True)
    f.case("tailer --once, " + what, expect_clean_failure,
           [binary("eventfold-tailer"), "--data", fresh, "--once"], "tailer --once, " + what, cause)


def main():
    tmp = tmpdir("faults-segments")
    with Cluster("segdamage", workers=1, config={"segment_bytes": 4096}) as c:
        cl = c.client()
        for i in range(COMMANDS):
            expect(cl.post("/api/users", {"user_id": uid("sd", i), "name": "Segment %d" % i}), 201,
                   what="populate")
        c.wait_caught_up()
        cl.close()
        for name in ("command", "query", "tailer"):
            c.kill(name, signal.SIGKILL)
        c.verify()
        src = os.path.join(tmp, "orig")
        shutil.copytree(c.data, src)
    f = Findings()
    deleted_segment(src, tmp, f)
    newer_format(src, tmp, "tail", f)
    newer_format(src, tmp, "sealed", f)
    f.finish()


if __name__ == "__main__":
    run(main, 180)
