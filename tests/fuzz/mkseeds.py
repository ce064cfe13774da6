#!/usr/bin/env python3
"""mkseeds: writes the seed corpora of the fuzz harnesses into tests/fuzz/corpus/.

The seeds are checked in; rerun this only when the record format or a harness's input
layout changes:  python3 tests/fuzz/mkseeds.py
Records are encoded here independently of src/log/record.c (record.h is the spec), so a
seed that the C decoder rejects points at a disagreement between the two.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = 0x31524645


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc_table()


def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = _T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def record(pos, stream, typ, data, version=1, schema=1, at=1764198000000, meta=b"{}", fmt=1):
    stream, typ = stream.encode(), typ.encode()
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":")).encode()
    body = stream + typ + meta + data
    n = 56 + len(body)
    length = (n + 7) & ~7
    after_crc = struct.pack("<HHQQqHHIII", fmt, schema, pos, version, at, len(stream), len(typ),
                            len(meta), len(data), 0) + body
    rec = struct.pack("<III", MAGIC, length, crc32c(after_crc)) + after_crc
    return rec + b"\0" * (length - n)


EVENTS = [
    ("user-u1", "UserRegistered", {"user_id": "u1", "name": "Ann", "email": None}, 1, 1),
    ("user-u1", "FundsDeposited", {"user_id": "u1", "amount_cents": 5000, "balance_cents": 5000}, 2, 1),
    ("item-i1", "ItemAdded", {"item_id": "i1", "name": "Pen", "category": "office", "price_cents": 120}, 1, 1),
    ("item-i1", "ItemRestocked", {"item_id": "i1", "quantity": 10, "available": 10}, 2, 1),
    ("order-o1", "OrderCreated", {"order_id": "o1", "user_id": "u1", "lines": [
        {"item_id": "i1", "name": "Pen", "category": "office", "quantity": 2, "price_cents": 120}],
        "amount_cents": 240}, 1, 2),
    ("order-o1", "PaymentProcessed", {"order_id": "o1", "user_id": "u1", "amount_cents": 240,
                                      "balance_cents": 4760}, 2, 1),
    ("order-o1", "OrderShipped", {"order_id": "o1"}, 3, 1),
    ("order-o1", "OrderDelivered", {"order_id": "o1"}, 4, 1),
]


def records(first, count):
    out = []
    for i in range(count):
        s, t, d, v, sch = EVENTS[(first - 1 + i) % len(EVENTS)]
        meta = b'{"idempotency_key":"k%d","request":"00112233445566778899aabbccddeeff"}' % i if i % 3 == 2 else b"{}"
        out.append(record(first + i, s, t, d, version=v, schema=sch, meta=meta))
    return out


def write(corpus, name, data):
    d = os.path.join(HERE, "corpus", corpus)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def record_seeds():
    for i, r in enumerate(records(1, len(EVENTS))):
        write("record", "valid-%d" % i, b"\0" + r)
    r = records(1, 1)[0]
    write("record", "torn", b"\0" + r[:-9])
    write("record", "header-only", b"\0" + r[:56])
    write("record", "zeros", b"\0" + b"\0" * 64)
    write("record", "bad-crc", b"\0" + r[:8] + b"\xff\xff\xff\xff" + r[12:])
    write("record", "format-2", b"\0" + record(1, "user-u1", "UserRegistered", {}, fmt=2))
    write("record", "two", b"\0" + r + records(2, 1)[0])
    # Round-trip mode: lengths (stream, type, meta), flip offset, flip xor, then bytes.
    write("record", "roundtrip-0", b"\1" + struct.pack("<HHHHB", 7, 14, 2, 0, 0) + b"user-u1UserRegistered{}" + b'{"a":1}')
    write("record", "roundtrip-flip", b"\1" + struct.pack("<HHHHB", 5, 5, 0, 30, 0x80) + b"x" * 40)
    write("record", "roundtrip-max", b"\1" + struct.pack("<HHHHB", 512, 128, 100, 700, 1) + b"m" * 900)


def recovery_seeds():
    one = b"".join(records(1, 5))
    write("recovery", "clean", b"\0" + one)
    write("recovery", "clean-append", b"\2" + one)
    write("recovery", "torn-tail", b"\0" + one[:-13])
    write("recovery", "zero-tail", b"\0" + one + b"\0" * 4096)
    write("recovery", "garbage-tail", b"\2" + one + b"\x55" * 100)
    rs = records(1, 5)
    bad = bytearray(rs[1])
    bad[70] ^= 1
    write("recovery", "damage-before-tail", b"\0" + rs[0] + bytes(bad) + b"".join(rs[2:]))
    write("recovery", "damaged-last", b"\0" + b"".join(rs[:4]) + bytes(bytearray(rs[4][:60]) + b"\1" + rs[4][61:]))
    write("recovery", "gap", b"\0" + rs[0] + rs[2])
    write("recovery", "format-2", b"\0" + rs[0] + record(2, "user-u1", "UserRegistered", {}, fmt=2))
    write("recovery", "empty", b"\0")
    more = b"".join(records(4, 4))
    write("recovery", "two-segments", b"\1" + more)
    write("recovery", "two-segments-append", b"\3" + more[:-20])
    write("recovery", "two-segments-wrong-start", b"\1" + b"".join(records(1, 2)))


def command_seeds():
    # Layout of fuzz_command: one byte (mode and route), then the body.
    bodies = [
        (0, {"user_id": "u1", "name": "Ann", "email": "ann@example.com"}),
        (0, {"user_id": "u2", "name": "Bob"}),
        (1, {"amount_cents": 5000}),
        (2, {"item_id": "i1", "name": "Pen", "category": "office", "price_cents": 120}),
        (3, {"quantity": 10}),
        (4, {"user_id": "u1", "items": [{"item_id": "i1", "quantity": 2}, {"item_id": "i2", "quantity": 1}]}),
        (4, {"user_id": "u1", "items": [{"item_id": "i1", "quantity": 1}], "order_id": "o-1"}),
        (5, {}),
        (6, {}),
        (7, {}),
        (8, {"reason": "changed my mind"}),
    ]
    for i, (route, body) in enumerate(bodies):
        write("command", "valid-%d" % i, bytes([route]) + json.dumps(body).encode())
    write("command", "deep", b"\4" + b"[" * 40 + b"]" * 40)
    write("command", "dup-key", b"\0" + b'{"user_id":"a","user_id":"b","name":"x"}')
    write("command", "big-int", b"\1" + b'{"amount_cents":9223372036854775808}')
    write("command", "nul-escape", b"\0" + b'{"user_id":"u1","name":"a\\u0000b"}')
    write("command", "bad-utf8", b"\0" + b'{"user_id":"u1","name":"\xc3\x28"}')
    write("command", "not-json", b"\5" + b"{,")
    # Route mode (bit 7 set): "METHOD PATH".
    for i, line in enumerate([b"POST /api/orders/o1/pay", b"GET /api/users", b"POST /api/items/i%2F1/restock",
                              b"POST /api/users/u1/deposits/", b"DELETE /api/orders"]):
        write("command", "route-%d" % i, b"\x80" + line)


# enum ev_type order (src/domain/vocab.h) and each type's current schema.
EVENT_TYPES = ["UserRegistered", "FundsDeposited", "ItemAdded", "ItemRestocked", "OrderCreated",
               "PaymentProcessed", "OrderShipped", "OrderDelivered", "OrderCancelled"]
CURRENT_SCHEMA = {"OrderCreated": 2}


def event_seeds():
    # Layout of fuzz_event: type byte, schema byte (1 + b % current), then the data.
    # Data as the command side writes it (compact, in its key order; doc/events.md).
    def seed(name, typ, schema, data):
        b = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        write("event", name, bytes([EVENT_TYPES.index(typ), schema - 1]) + b)

    line = {"item_id": "i1", "name": "Pen", "category": "office", "quantity": 2, "price_cents": 120}
    cancel = {"order_id": "o1", "user_id": "u1", "reason": None, "refunded_cents": 240,
              "previous_status": "paid"}
    for _, typ, data, _, schema in EVENTS:
        seed("valid-" + typ, typ, schema, data)
    seed("valid-OrderCancelled", "OrderCancelled", 1, cancel)
    seed("v1-OrderCreated", "OrderCreated", 1, {"order_id": "o1", "user_id": "u1", "lines": [
        {"item_id": "i1", "quantity": 2}, {"item_id": "i2", "quantity": 1}], "amount_cents": 240})
    seed("max-int", "FundsDeposited", 1, {"user_id": "u1", "amount_cents": 9223372036854775807,
                                          "balance_cents": 9223372036854775807})
    seed("18-digits", "ItemAdded", 1, b'{"item_id":"i1","name":"x","category":"y","price_cents":999999999999999999}')
    seed("overflow", "ItemRestocked", 1, b'{"item_id":"i1","quantity":9223372036854775808,"available":1}')
    seed("unicode", "UserRegistered", 1, {"user_id": "u1", "name": "Gr\u00fc\u00dfe \u65e5\u672c \U0001F600",
                                          "email": None})
    seed("escapes", "ItemAdded", 1, b'{"item_id":"i1","name":"q\\" b\\\\ \\n\\u0001 \\/","category":"c","price_cents":1}')
    seed("many-lines", "OrderCreated", 2, {"order_id": "o1", "user_id": "u1",
                                           "lines": [dict(line, item_id="i%d" % i) for i in range(100)],
                                           "amount_cents": 24000})
    seed("dup-key", "ItemAdded", 1, b'{"item_id":"i1","item_id":"i2","name":"x","category":"y","price_cents":1}')
    seed("wrong-type", "FundsDeposited", 1, b'{"user_id":"u1","amount_cents":"5","balance_cents":5}')
    seed("nested", "OrderShipped", 1, b'{"order_id":"o1","x":' + b"[" * 40 + b"]" * 40 + b"}")
    seed("zero-quantity", "OrderCreated", 2, {"order_id": "o1", "user_id": "u1",
                                              "lines": [dict(line, quantity=0)], "amount_cents": 0})
    seed("truncated", "PaymentProcessed", 1, b'{"order_id":"o1","user_id":"u1","amount_cents":24')
    seed("whitespace", "OrderDelivered", 1, b' {\t"order_id" :\r\n"o1" } ')
    seed("not-object", "OrderShipped", 1, b'["order_id","o1"]')


def varint(v):
    """Unsigned LEB128, as rmodel_layout.h has it."""
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def zz(v):
    """Zigzag of a signed 64-bit integer."""
    return ((v << 1) ^ (v >> 63)) & (2**64 - 1)


def value_seeds():
    # Layout of fuzz_value: decoder byte (0 order, 1 user, 2 item, 3 day, 4 stream row,
    # 5 stream entries, 6 position row), then the value, encoded here from rmodel_layout.h.
    def vstr(b):
        return varint(len(b)) + b

    def s16(b):
        return struct.pack("<H", len(b)) + b

    def order(status, version, created, updated, amount, position, user, lines):
        b = bytes([2, status]) + varint(version) + varint(zz(created)) + varint(zz(updated - created))
        b += varint(zz(amount)) + varint(position) + vstr(user) + varint(len(lines))
        for item, name, cat, qty, price in lines:
            b += vstr(item) + vstr(name) + vstr(cat) + varint(zz(qty)) + varint(zz(price))
        return b

    write("value", "order", b"\0" + order(2, 2, 1765000000123, 1765000000999, 4200, 123456, b"u1",
                                          [(b"i1", b"Pen", b"office", 3, 1400), (b"i2", b"", b"", 1, 0)]))
    write("value", "order-extremes", b"\0" + order(5, 2**64 - 1, -2**63, 2**63 - 1, -1, 2**64 - 1, b"",
                                                   [(b"i", b"n", b"c", 2**63 - 1, -2**63)]))
    write("value", "order-no-lines", b"\0" + order(1, 1, 0, 0, 0, 1, b"u", []))
    write("value", "order-format-3", b"\0\1\1" + b"\0" * 40 + s16(b"u1") + b"\0\0")
    write("value", "user", b"\1" + bytes([1, 1]) + s16(b"Ann") + struct.pack("<qQqQq", -5, 2, 7, 1, -2**63))
    write("value", "item", b"\2" + bytes([1, 1]) + s16(b"Pen") + s16(b"office") + struct.pack("<qqqq", 150, 10, 2, 3))
    write("value", "day", b"\3\1" + struct.pack("<QQQq", 4, 3, 1, 999))
    write("value", "stream-row", b"\4\2" + bytes([0]) + varint(5) + bytes([3]) + varint(7) + bytes([31]) + varint(2**64 - 1))
    write("value", "stream-entries", b"\5" + bytes([0]) + varint(9) + bytes([0]) + varint(10))
    row = b"\1" + b"\0" + varint(1) + varint(64) + varint(236) + b"\0" + varint(2) + varint(64) + varint(3)
    write("value", "positions", b"\6" + row)


if __name__ == "__main__":
    record_seeds()
    recovery_seeds()
    command_seeds()
    event_seeds()
    value_seeds()
