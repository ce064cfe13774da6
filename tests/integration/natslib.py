"""natslib: a private three-node NATS JetStream cluster for integration tests, and a minimal
NATS client to look into it.

NatsCluster starts nats-server ($EF_NATS_SERVER, default /usr/sbin/nats-server) N times (3 by
default) on free 127.0.0.1 client, cluster and monitoring ports, each node with JetStream and
its own store directory under the test's temporary directory, routed to the others. It waits
until every node knows the JetStream meta leader and JetStream answers an API request. A node
can be killed (kill -9 by PID) and restarted on the same ports and store, all of them too;
stream_leader() names the node leading a stream. Each node runs in its own session and is
stopped by its PID (tests/lib/eftest.py); the cluster registers with harness's teardown, so
it is stopped on normal exit, failed assertion, exception and when the time budget runs out.

NatsClient speaks the text protocol (CONNECT, PING, SUB, PUB, HPUB, MSG, HMSG) over one
socket, enough for request/reply against the JetStream API ($JS.API.*): stream info, get a
message by sequence (headers and body decoded), create and delete a stream, publish with
headers. Only the Python standard library is used.
"""

import base64
import json
import os
import random
import signal
import socket
import time
import urllib.request

import eftest
import harness
from harness import SkipTest, TestFailure, check, log

NATS_SERVER = os.environ.get("EF_NATS_SERVER") or "/usr/sbin/nats-server"


class NatsError(Exception):
    """A JetStream API error answer, or a protocol error; .code is the API's err_code."""

    def __init__(self, msg, code=None, status=None):
        super().__init__(msg)
        self.code = code
        self.status = status


class NatsClient:
    """One connection to one server (or the first of a list that answers)."""

    def __init__(self, urls, timeout=10):
        if isinstance(urls, str):
            urls = urls.split(",")
        self.timeout = timeout
        self.sock = None
        self.buf = b""
        self.sid = 0
        self.inbox_n = 0
        last = None
        for u in urls:
            host, port = u.strip().replace("nats://", "").rsplit(":", 1)
            try:
                self.sock = socket.create_connection((host, int(port)), timeout=timeout)
                break
            except OSError as e:
                last = e
        if self.sock is None:
            raise NatsError("cannot connect to %s: %s" % (urls, last))
        line = self._line()
        if not line.startswith(b"INFO "):
            raise NatsError("unexpected greeting %r" % line[:100])
        self.info = json.loads(line[5:])
        conn = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True,
                "lang": "python-test", "version": "0", "protocol": 1}
        self._send(b"CONNECT " + json.dumps(conn).encode() + b"\r\nPING\r\n")
        while True:
            msg = self._next()
            if msg == "PONG":
                break
        self.inbox = "_INBOX.t%d%d" % (os.getpid(), int(time.time() * 1e6))
        self.inbox_sid = self._sub(self.inbox + ".*")

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _send(self, data):
        self.sock.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise NatsError("connection closed by the server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise NatsError("connection closed by the server")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _next(self):
        """The next protocol message: "PONG", or a dict for MSG/HMSG. Answers PINGs."""
        while True:
            line = self._line()
            if line == b"PING":
                self._send(b"PONG\r\n")
                continue
            if line == b"PONG":
                return "PONG"
            if line.startswith(b"-ERR"):
                raise NatsError("server error: %s" % line.decode(errors="replace"))
            if line.startswith(b"+OK") or line.startswith(b"INFO "):
                continue
            parts = line.split()
            if parts[0] == b"MSG":
                subj, sid = parts[1], parts[2]
                reply = parts[3] if len(parts) == 5 else None
                n = int(parts[-1])
                return {"subject": subj.decode(), "sid": sid.decode(),
                        "reply": reply.decode() if reply else None, "headers": {},
                        "status": None, "data": self._exact(n)}
            if parts[0] == b"HMSG":
                subj, sid = parts[1], parts[2]
                reply = parts[3] if len(parts) == 6 else None
                hlen, total = int(parts[-2]), int(parts[-1])
                raw = self._exact(total)
                status, headers = parse_headers(raw[:hlen])
                return {"subject": subj.decode(), "sid": sid.decode(),
                        "reply": reply.decode() if reply else None, "headers": headers,
                        "status": status, "data": raw[hlen:]}
            raise NatsError("unexpected protocol line %r" % line[:100])

    def _sub(self, subject):
        self.sid += 1
        self._send(("SUB %s %d\r\n" % (subject, self.sid)).encode())
        return str(self.sid)

    def publish(self, subject, data=b"", headers=None, reply=None):
        r = (" " + reply) if reply else ""
        if headers:
            h = render_headers(headers)
            self._send(("HPUB %s%s %d %d\r\n" % (subject, r, len(h), len(h) + len(data))).encode()
                       + h + data + b"\r\n")
        else:
            self._send(("PUB %s%s %d\r\n" % (subject, r, len(data))).encode() + data + b"\r\n")

    def request(self, subject, data=b"", headers=None, timeout=None):
        """Sends and waits for the one answer; returns the message dict. A "no responders"
        status (503) raises NatsError with status 503."""
        self.inbox_n += 1
        reply = "%s.%d" % (self.inbox, self.inbox_n)
        if isinstance(data, (dict, list)):
            data = json.dumps(data).encode()
        self.publish(subject, data, headers, reply)
        self.sock.settimeout(timeout or self.timeout)
        try:
            while True:
                m = self._next()
                if isinstance(m, dict) and m["subject"] == reply:
                    if m["status"] == "503":
                        raise NatsError("no responders for %s" % subject, status=503)
                    return m
        except socket.timeout:
            # The answer may still come later: this connection is no longer usable.
            self.close()
            raise NatsError("no answer to %s within %s s" % (subject, timeout or self.timeout))

    def api(self, subject, body=None, timeout=None):
        """A JetStream API request; returns the decoded JSON answer or raises NatsError."""
        m = self.request(subject, json.dumps(body).encode() if body is not None else b"",
                         timeout=timeout)
        ans = json.loads(m["data"])
        if "error" in ans:
            e = ans["error"]
            raise NatsError("%s: %s" % (subject, e.get("description")), code=e.get("err_code"),
                            status=e.get("code"))
        return ans

    # -- JetStream helpers ------------------------------------------------------------

    def stream_info(self, name):
        """The stream's info (config, state: first_seq, last_seq, messages; cluster), or None
        when the stream does not exist."""
        try:
            return self.api("$JS.API.STREAM.INFO." + name)
        except NatsError as e:
            if e.code == 10059:  # stream not found
                return None
            raise

    def get_msg(self, name, seq):
        """Message seq of the stream: {"seq", "subject", "headers", "data"}, or None."""
        try:
            ans = self.api("$JS.API.STREAM.MSG.GET." + name, {"seq": seq})
        except NatsError as e:
            if e.code == 10037:  # no message found
                return None
            raise
        m = ans["message"]
        headers = {}
        if m.get("hdrs"):
            _, headers = parse_headers(base64.b64decode(m["hdrs"]))
        return {"seq": m["seq"], "subject": m["subject"], "headers": headers,
                "data": base64.b64decode(m.get("data") or "")}

    def create_stream(self, config):
        return self.api("$JS.API.STREAM.CREATE." + config["name"], config)

    def delete_stream(self, name):
        return self.api("$JS.API.STREAM.DELETE." + name)

    def js_publish(self, subject, data, headers=None):
        """Publishes into a stream and returns its PubAck ({"stream", "seq"})."""
        m = self.request(subject, data, headers)
        ans = json.loads(m["data"])
        if "error" in ans:
            e = ans["error"]
            raise NatsError("publish %s: %s" % (subject, e.get("description")), code=e.get("err_code"))
        return ans


def parse_headers(raw):
    """NATS/1.0 header block -> (status or None, {name: value}) (last value wins)."""
    lines = raw.decode("utf-8", "replace").split("\r\n")
    first = lines[0].split(None, 2)
    status = first[1] if len(first) > 1 else None
    headers = {}
    for ln in lines[1:]:
        if not ln:
            continue
        k, _, v = ln.partition(":")
        headers[k.strip()] = v.strip()
    return status, headers


def render_headers(headers):
    out = "NATS/1.0\r\n"
    for k, v in headers.items():
        out += "%s: %s\r\n" % (k, v)
    return (out + "\r\n").encode()


def pick_port():
    """A free 127.0.0.1 port below the kernel's ephemeral range (32768 and up), so that a
    node restarted on the same ports does not find them taken by some outgoing
    connection's source port meanwhile."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise TestFailure("no free port in 20000..32000")


class NatsNode:
    def __init__(self, name, tmp):
        self.name = name
        self.store = os.path.join(tmp, "nats-" + name)
        self.conf = os.path.join(tmp, "nats-%s.conf" % name)
        self.logpath = os.path.join(tmp, "nats-%s.log" % name)
        self.proc = None
        self.new_ports()

    def new_ports(self):
        self.port = pick_port()
        self.cport = pick_port()
        self.mport = pick_port()

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def running(self):
        return self.proc is not None and self.proc.poll() is None


class NatsCluster:
    """N nats-server nodes with JetStream, clustered on loopback. Use as a context manager
    or call stop(); harness's teardown stops it too."""

    def __init__(self, name="nats", nodes=3, tmp=None):
        if not os.access(NATS_SERVER, os.X_OK):
            raise SkipTest("nats-server not found at %s" % NATS_SERVER)
        self.name = name
        self.own_tmp = tmp is None
        self.tmp = tmp or eftest.tmpdir("nats-" + name)
        self.cluster_name = "efc-%s-%d" % (name, os.getpid())
        self.nodes = [NatsNode("n%d" % (i + 1), self.tmp) for i in range(nodes)]
        self.stopped = False
        harness._clusters.append(self)
        for attempt in range(5):
            for n in self.nodes:
                self._write_conf(n)
            for n in self.nodes:
                self._spawn(n)
            try:
                self.wait_ready()
                return
            except TestFailure:
                if "address already in use" not in "".join(self._read_log(n) for n in self.nodes) \
                        or attempt == 4:
                    raise
            log("nats: a port was taken meanwhile; new ports")
            for n in self.nodes:
                self.kill(n.name)
                n.new_ports()
                try:
                    os.unlink(n.logpath)
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not issubclass(exc_type, SkipTest):
            self.print_logs()
        self.stop()
        if self in harness._clusters:
            harness._clusters.remove(self)

    @property
    def urls(self):
        """The comma-separated client URL list (the nats_url config value)."""
        return ",".join(n.url for n in self.nodes)

    def node(self, name):
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def _write_conf(self, n):
        routes = ", ".join("nats://127.0.0.1:%d" % o.cport for o in self.nodes if o is not n)
        # sync_interval is left at the server's default (background fsync): the tests are
        # about what a relay does when the stream loses acknowledged writes.
        conf = """server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {
    store_dir: "%s"
    max_memory_store: 64MB
    max_file_store: 4GB
}
cluster {
    name: %s
    listen: 127.0.0.1:%d
    routes: [%s]
}
""" % (n.name, n.port, n.mport, n.store, self.cluster_name, n.cport, routes)
        with open(n.conf, "w") as f:
            f.write(conf)

    def _spawn(self, n):
        n.proc = eftest.spawn([NATS_SERVER, "-c", n.conf], n.logpath, cwd=self.tmp)

    # -- readiness ----------------------------------------------------------------------

    def _jsz(self, n):
        with urllib.request.urlopen("http://127.0.0.1:%d/jsz" % n.mport, timeout=5) as r:
            return json.loads(r.read())

    def wait_ready(self, timeout=60):
        """Waits until every running node knows the same meta leader and JetStream answers
        $JS.API.INFO through each of them."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for n in self.nodes:
                if n.proc is not None and n.proc.poll() is not None:
                    raise TestFailure("nats-server %s exited with %s: %s"
                                      % (n.name, n.proc.returncode, self._read_log(n)[-2000:]))
            try:
                leaders = set()
                for n in self.nodes:
                    if n.running():
                        leaders.add((self._jsz(n).get("meta_cluster") or {}).get("leader") or "")
                if len(leaders) == 1 and "" not in leaders:
                    for n in self.nodes:
                        if n.running():
                            with NatsClient(n.url, timeout=5) as c:
                                c.api("$JS.API.INFO")
                    return
                last = "meta leaders seen: %s" % sorted(leaders)
            except (OSError, NatsError, ValueError) as e:
                last = e
            time.sleep(0.1)
        raise TestFailure("NATS cluster not ready within %d s: %s" % (timeout, last))

    # -- client and streams --------------------------------------------------------------

    def client(self, timeout=10):
        """A client on the first node that accepts a connection."""
        return NatsClient([n.url for n in self.nodes if n.running()], timeout=timeout)

    def api_retry(self, fn, timeout=30):
        """Runs fn(client) until it stops failing with a transient error (no responders,
        timeout, a stream without a leader yet); returns its result."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client() as c:
                    return fn(c)
            except (NatsError, OSError) as e:
                if time.monotonic() > deadline:
                    raise TestFailure("NATS request kept failing for %d s: %s" % (timeout, e))
                if isinstance(e, NatsError) and e.code not in (None, 10008):
                    # 10008: JetStream temporarily unavailable (no leader yet); others are final.
                    raise
                time.sleep(0.2)

    def stream_info(self, name, timeout=30):
        return self.api_retry(lambda c: c.stream_info(name), timeout)

    def stream_leader(self, name, timeout=30):
        """The NatsNode leading the stream (waits for an election)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.stream_info(name, timeout)
            check(info is not None, "stream %s does not exist" % name)
            leader = (info.get("cluster") or {}).get("leader")
            if leader:
                return self.node(leader)
            check(time.monotonic() < deadline, "stream %s has no leader after %d s" % (name, timeout))
            time.sleep(0.2)

    def read_stream(self, name, first=1, last=None):
        """Every message of the stream from first to last (default: its last sequence), as
        get_msg returns them (None where a sequence is missing)."""
        if last is None:
            last = self.stream_info(name)["state"]["last_seq"]
        out = []
        with self.client(timeout=30) as c:
            for seq in range(first, last + 1):
                out.append(c.get_msg(name, seq))
        return out

    # -- faults --------------------------------------------------------------------------

    def kill(self, name, sig=signal.SIGKILL):
        n = self.node(name)
        if not n.running():
            return
        eftest.stop(n.proc, sig, timeout=30)
        log("nats %s stopped (signal %d)" % (name, sig))

    def start(self, name, wait=True):
        n = self.node(name)
        check(not n.running(), "nats %s already running" % name)
        self._spawn(n)
        if wait:
            self.wait_ready()
        log("nats %s started" % name)

    def restart(self, name, sig=signal.SIGKILL):
        self.kill(name, sig)
        self.start(name)

    def kill_all(self, sig=signal.SIGKILL):
        for n in self.nodes:
            self.kill(n.name, sig)

    def start_all(self):
        for n in self.nodes:
            if not n.running():
                self._spawn(n)
        self.wait_ready()
        log("nats cluster started")

    def restart_all(self, sig=signal.SIGKILL):
        self.kill_all(sig)
        self.start_all()

    def wipe_stores(self):
        """Removes every node's JetStream store (the cluster must be down): the streams and
        their messages are lost, as after losing every disk."""
        check(not any(n.running() for n in self.nodes), "wipe_stores with nodes running")
        for n in self.nodes:
            eftest.rmtree(n.store)

    # -- teardown ------------------------------------------------------------------------

    def _read_log(self, n):
        try:
            with open(n.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def print_logs(self, tail=2000):
        for n in self.nodes:
            text = self._read_log(n)
            if text.strip():
                print("----- nats %s log (tail) -----" % n.name)
                print(text[-tail:])

    def stop(self):
        for n in self.nodes:
            try:
                if n.running():
                    eftest.stop(n.proc, signal.SIGKILL, timeout=10)
            except Exception as e:  # teardown goes on
                print("teardown nats %s: %s" % (n.name, e), flush=True)
        if self.stopped:
            return
        self.stopped = True
        if self.own_tmp and not harness.KEEP_TMP:
            eftest.rmtree(self.tmp)
