"""relaylib: what the eventfold-relay tests share: starting the relay on a harness Cluster,
reading the log's records (CRC32C and position) straight from the segment files, and
checking that a JetStream stream holds exactly the log, message by message."""

import glob
import json
import os
import struct
import time

from harness import binary, check, log
from natslib import NatsClient

RECORD_MAGIC = 0x31524645  # "EFR1"


def start_relay(c, sink="nats", name="relay"):
    """Starts eventfold-relay on the cluster's data directory (its config file carries the
    sink's settings); returns the Popen."""
    argv = [binary("eventfold-relay"), "--data", c.data, "--sink", sink, "--log-level", "debug"]
    if c.config_path:
        argv += ["--config", c.config_path]
    return c._spawn(name, argv)


def record_crcs(data_dir, upto):
    """{position: crc} for records 1..upto, read from DATA/log/*.seg."""
    out = {}
    for seg in sorted(glob.glob(os.path.join(data_dir, "log", "*.seg"))):
        with open(seg, "rb") as f:
            buf = f.read()
        off = 0
        while off + 56 <= len(buf):
            magic, length, crc = struct.unpack_from("<III", buf, off)
            if magic != RECORD_MAGIC or length < 56:
                break
            (position,) = struct.unpack_from("<Q", buf, off + 16)
            if position <= upto:
                out[position] = crc
            off += length
    return out


def stacks(pid):
    """The threads' stacks of a process (gdb), for a relay that does not move."""
    import subprocess
    try:
        p = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 12"],
                           capture_output=True, text=True, timeout=60)
        return p.stdout[-6000:] + p.stderr[-1000:]
    except (OSError, subprocess.SubprocessError) as e:
        return "gdb: %s" % e


def wait_stream_at(nc, stream, head, timeout=120, pid=None, proc=None):
    """Waits until the stream's last sequence is head (the relay caught up)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        info = nc.stream_info(stream)
        last = info["state"] if info else None
        if last and last["last_seq"] == head:
            return last
        check(not last or last["last_seq"] <= head, "stream %s is beyond the log head %d: %s"
              % (stream, head, last))
        check(proc is None or proc.poll() is None, "the relay exited with %s" % (proc and proc.poll()))
        time.sleep(0.2)
    got = []
    for n in nc.nodes:
        try:
            with NatsClient(n.url, timeout=5) as cl:
                got.append((n.name, n.port, cl.get_msg(stream, last["last_seq"])["seq"] if last else None))
        except Exception as e:
            got.append((n.name, n.port, str(e)))
    check(False, "stream %s did not reach position %d within %d s: %s; its last message: %s\n%s"
          % (stream, head, timeout, last, got, stacks(pid) if pid else ""))


def check_relayed(e, h, crc, payload, extra=None):
    """Checks one relayed message (headers h, body payload) against its line of `eventfoldctl
    dump` (e) and the record's CRC32C, for any sink; extra: more headers the sink must set.
    Returns the dump line as EVENT JSON (without "meta"), for sink-specific checks."""
    p = e["position"]
    e = dict(e)
    meta = e.pop("meta", None)  # dump shows a non-empty meta; EVENT has none
    hm = h.get("Eventfold-Meta")
    check(hm is not None and (hm in ("", "{}") if meta is None else json.loads(hm) == meta),
          "position %d: Eventfold-Meta %r, dump's meta %r" % (p, hm, meta))
    want = {
        "Eventfold-Position": str(p),
        "Eventfold-Stream": e["stream"],
        "Eventfold-Type": e["type"],
        "Eventfold-Schema-Version": str(e["schema_version"]),
        "Eventfold-Stream-Version": str(e["version"]),
        "Eventfold-Crc32c": "%08x" % crc,
    }
    want.update(extra or {})
    for k, v in want.items():
        check(h.get(k) == v, "position %d: header %s = %r, expected %r (headers %s)"
              % (p, k, h.get(k), v, h))
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
        check(False, "position %d: body is not JSON: %r" % (p, payload[:200]))
    check(body == e, "position %d: body %r differs from dump %r" % (p, body, e))
    return e


def check_stream_matches_log(c, nc, stream, prefix="eventfold"):
    """The stream holds positions 1..head, once each, in order (sequence == position), and
    each message's subject, headers and body agree with `eventfoldctl dump` and the
    record's CRC32C."""
    events = c.dump()
    head = events[-1]["position"] if events else 0
    check([e["position"] for e in events] == list(range(1, head + 1)), "dump is not 1..head")
    state = nc.stream_info(stream)["state"]
    check(state["first_seq"] == 1 and state["last_seq"] == head and state["messages"] == head,
          "stream state %s, log head %d" % (state, head))
    crcs = record_crcs(c.data, head)
    check(len(crcs) == head, "read %d record CRCs from the segments, head %d" % (len(crcs), head))
    msgs = nc.read_stream(stream, 1, head)
    for e, m in zip(events, msgs):
        p = e["position"]
        check(m is not None, "stream message %d missing" % p)
        check(m["seq"] == p, "sequence %d carries %r" % (p, m))
        e = check_relayed(e, m["headers"], crcs[p], m["data"], {"Nats-Msg-Id": str(p)})
        category = e["stream"].split("-", 1)[0]
        check(m["subject"] == "%s.%s.%s" % (prefix, category, e["type"]),
              "position %d: subject %s" % (p, m["subject"]))
    log("stream %s holds positions 1..%d exactly, matching the log" % (stream, head))
    return head
