"""mirrorlib: a stand-in for eventfold-relay in the mirror's tests: it renders events the way
the relay does (src/relay/sink.h: EVENT JSON as /api/events renders it, "data" last and
verbatim, and the Eventfold-* headers, CRC32C of the encoded record included) and publishes
them into a JetStream stream, so that a test controls every byte a mirror receives (good
messages, bad checksums, wrong positions, gaps).

Also: the expected `eventfoldctl dump` line of such an event, and a mirror's state file.
"""

import json
import os
import struct
import time

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data, crc=0):
    """The standard CRC32C (check value 0xE3069283 for b"123456789")."""
    crc ^= 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


class Event:
    """One log record: position, stream, version, type, schema, timestamp (ms), meta, data
    (meta and data as the bytes stored)."""

    def __init__(self, position, stream, version, etype, schema, ts_ms, data, meta=b""):
        self.position = position
        self.stream = stream
        self.version = version
        self.type = etype
        self.schema = schema
        self.ts_ms = ts_ms
        self.data = data if isinstance(data, bytes) else data.encode()
        self.meta = meta if isinstance(meta, bytes) else meta.encode()

    def crc(self):
        """CRC32C of the encoded record (src/log/record.h: bytes 12 .. end of data)."""
        s, t = self.stream.encode(), self.type.encode()
        head = struct.pack("<HHQQqHHIII", 1, self.schema, self.position, self.version, self.ts_ms,
                           len(s), len(t), len(self.meta), len(self.data), 0)
        return crc32c(head + s + t + self.meta + self.data)

    def at(self):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.ts_ms // 1000)) + \
            ".%03dZ" % (self.ts_ms % 1000)

    def body(self):
        """EVENT JSON as /api/events renders it (keys in its order, data verbatim)."""
        prefix = '{"position":%d,"stream":%s,"version":%d,"type":%s,"schema_version":%d,"at":"%s","data":' % (
            self.position, json.dumps(self.stream), self.version, json.dumps(self.type), self.schema, self.at())
        return prefix.encode() + self.data + b"}"

    def headers(self):
        return {
            "Eventfold-Position": str(self.position),
            "Eventfold-Stream": self.stream,
            "Eventfold-Type": self.type,
            "Eventfold-Schema-Version": str(self.schema),
            "Eventfold-Stream-Version": str(self.version),
            "Eventfold-Timestamp-Ms": str(self.ts_ms),
            "Eventfold-Meta": self.meta.decode(),
            "Eventfold-Crc32c": "%08x" % self.crc(),
        }

    def subject(self, prefix):
        return "%s.%s.%s" % (prefix, self.stream.split("-", 1)[0], self.type)

    def dump_line(self):
        """The line `eventfoldctl dump` prints for this record (without the newline)."""
        line = self.body()[:-1]
        if self.meta and self.meta != b"{}":
            line += b',"meta":' + self.meta
        return (line + b"}").decode()


def shop_events(n, start=1, ts_ms=1764979200000):
    """n events a replica's tailer can fold: users registered, then deposits into them."""
    out = []
    users = max(1, n // 3)
    balance = {}
    for i in range(n):
        pos = start + i
        if i < users:
            uid = "u%d" % (start + i)
            # The write side always stores an object ("{}" without an idempotency key).
            meta = '{"idempotency_key":"k%d"}' % pos if i % 7 == 0 else "{}"
            out.append(Event(pos, "user-" + uid, 1, "UserRegistered", 1, ts_ms + i,
                             '{"user_id":"%s","name":"User %d","email":null}' % (uid, i), meta))
            balance[uid] = (1, 0)
        else:
            uid = "u%d" % (start + (i % users))
            v, b = balance[uid]
            amount = 100 + i
            balance[uid] = (v + 1, b + amount)
            out.append(Event(pos, "user-" + uid, v + 1, "FundsDeposited", 1, ts_ms + i,
                             '{"user_id":"%s","amount_cents":%d,"balance_cents":%d}' % (uid, amount, b + amount),
                             "{}"))
    return out


def create_stream(nats, name, prefix, replicas=3, deny_delete=True):
    cfg = {"name": name, "subjects": [prefix + ".>"], "storage": "file", "num_replicas": replicas,
           "retention": "limits", "discard": "old", "deny_delete": deny_delete, "deny_purge": False}
    return nats.api_retry(lambda c: c.create_stream(cfg))


def publish(nats, prefix, events, headers_fn=None):
    """Publishes the events in order (each acknowledged by the stream); headers_fn may change
    an event's headers (a test's bad message). Returns the last PubAck."""
    ack = None
    with nats.client(timeout=30) as c:
        for ev in events:
            h = ev.headers()
            if headers_fn:
                h = headers_fn(ev, h)
            ack = c.js_publish(ev.subject(prefix), ev.body(), h)
    return ack


def read_state(data_dir):
    """DIR/mirror.state as a dict (stream, position, stream_last, pid, time_ms), or None."""
    try:
        with open(os.path.join(data_dir, "mirror.state")) as f:
            text = f.read()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition("=")
        out[k] = v if k == "stream" else int(v)
    return out
