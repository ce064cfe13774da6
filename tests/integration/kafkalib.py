"""kafkalib: what the Kafka sink's tests share: a mock Kafka cluster (tests/kafka/ef-kafka-mock,
librdkafka's mock brokers on loopback ports, driven through its stdin), reading a topic's
partition 0 with kcat, and checking that it holds the log."""

import json
import os
import shutil
import subprocess

from harness import check, log
from relaylib import check_relayed, record_crcs


class MockKafka:
    """A three-broker mock cluster in a child process; commands as ef-kafka-mock.c lists."""

    def __init__(self, topic="eventfold.events", partitions=1):
        path = os.path.join(os.environ.get("EF_BUILDDIR", "."), "tests", "kafka", "ef-kafka-mock")
        check(os.access(path, os.X_OK), "%s not built (make check builds it)" % path)
        self.p = subprocess.Popen([path, "--topic", topic, "--partitions", str(partitions)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  start_new_session=True)
        self.bootstrap = self.p.stdout.readline().strip()
        check(self.bootstrap.count(":") == 3, "ef-kafka-mock printed %r" % self.bootstrap)
        self.topic = topic

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        ans = self.p.stdout.readline().strip()
        check(ans == "ok", "ef-kafka-mock %r: %r" % (line, ans))

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
            except OSError:
                pass
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)


def kcat_messages(bootstrap, topic, timeout=120):
    """Every message of partition 0, from the beginning to the end, read with kcat -J (an
    ordinary Kafka tool): a list of dicts with offset, key, payload and headers (a dict)."""
    kcat = shutil.which("kcat")
    check(kcat is not None, "kcat not installed")
    p = subprocess.run([kcat, "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "beginning",
                        "-e", "-q", "-J"], capture_output=True, text=True, timeout=timeout)
    check(p.returncode == 0, "kcat: exit %d: %s" % (p.returncode, p.stderr[-1000:]))
    out = []
    for line in p.stdout.splitlines():
        m = json.loads(line)
        h = m.get("headers") or []
        m["headers"] = dict(zip(h[0::2], h[1::2]))
        out.append(m)
    return out


def apply_rule(msgs):
    """The consumer's rule (README, Kafka sink): skip a message whose Eventfold-Position is
    <= the last position applied. Returns (messages kept, duplicates skipped); a kept message
    that is not the next position is a gap or a reordering: a failure."""
    kept, dups, last = [], 0, 0
    pos = [int(m["headers"]["Eventfold-Position"]) for m in msgs]
    for i, m in enumerate(msgs):
        p = pos[i]
        if p <= last:
            dups += 1
            continue
        later = [j for j in range(i + 1, len(msgs)) if pos[j] == last + 1]
        check(p == last + 1, "offset %d: position %d after %d (a gap; position %d is %s; "
              "positions at offsets %d..%d: %s)"
              % (m["offset"], p, last, last + 1,
                 "at offset %d" % msgs[later[0]]["offset"] if later else "nowhere",
                 msgs[max(0, i - 5)]["offset"], msgs[min(len(msgs), i + 15) - 1]["offset"],
                 pos[max(0, i - 5):i + 15]))
        kept.append(m)
        last = p
    return kept, dups


def check_topic_matches_log(c, msgs):
    """After the rule, the partition holds positions 1..head, in order, each message's key,
    headers and body agreeing with `eventfoldctl dump` and the record's CRC32C. Returns the
    number of duplicates the rule skipped."""
    events = c.dump()
    head = events[-1]["position"] if events else 0
    check([e["position"] for e in events] == list(range(1, head + 1)), "dump is not 1..head")
    kept, dups = apply_rule(msgs)
    check(len(kept) == head, "partition holds positions 1..%d, log head %d" % (len(kept), head))
    crcs = record_crcs(c.data, head)
    check(len(crcs) == head, "read %d record CRCs from the segments, head %d" % (len(crcs), head))
    for e, m in zip(events, kept):
        p = e["position"]
        e = check_relayed(e, m["headers"], crcs[p], m["payload"])
        check(m["key"] == e["stream"], "position %d: key %r, stream %r" % (p, m["key"], e["stream"]))
    log("partition 0 holds positions 1..%d in order, matching the log (%d duplicates skipped "
        "by the rule)" % (head, dups))
    return dups
