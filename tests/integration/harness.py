"""harness: black-box integration tests of eventfold through a private, real nginx.

A Cluster starts, in a fresh temporary directory under /tmp:
  - nginx ($EF_NGINX or /usr/sbin/nginx) on a free 127.0.0.1 port, with the project's own
    conf/nginx/eventfold-upstream.conf and conf/nginx/eventfold.conf (socket paths rewritten
    into the temporary directory), error log and pid file in that directory;
  - eventfold-command and eventfold-query (--workers N, unix sockets in the directory) and
    eventfold-tailer, from $EF_BUILDDIR, all on one data directory.
Each program runs in its own session, so its process group id is its PID; stopping a program
kills that group by PID (never by name). Teardown runs on normal exit, on a failed assertion,
on an exception and when the test's time budget (SIGALRM) runs out.

Tests talk only the public contract (API.md): HTTP through nginx, `eventfoldctl`, and, for the
few rules about requests that reach a program directly (section 8), a minimal FastCGI client.

Every answer received (Client.request, fcgi_request) is checked against doc/openapi.yaml
(tests/integration/openapi.py, which needs python3-yaml and python3-jsonschema): a mismatch
fails the test at its end, like soft_check. Each test prints how many answers it checked, and
appends the count to $EF_OPENAPI_COUNTS when that is set. EF_OPENAPI=0 turns the check off
(benchmarks, whose timings must not include it).

Temporary directories, mounts, process start and stop by PID come from tests/lib/eftest.py,
the helper library every test shares. Otherwise only the Python standard library is used.
Exit codes follow automake: 0 pass, 1 fail, 77 skip (nginx missing, or no right to mount a
filesystem a test asks for).
"""

import atexit
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import eftest  # noqa: E402
from eftest import (BUILDDIR, KEEP_TMP, SANITIZER_MARKS, SKIP, SRCDIR, SkipTest,  # noqa: E402,F401
                    TestFailure, binary, check, children_of, free_port, log, sanitizer_report)

NGINX = os.environ.get("EF_NGINX") or "/usr/sbin/nginx"
# EF_VALGRIND=1 (make check-valgrind): every program runs under valgrind memcheck, each
# process writing its findings (-q: errors only) to vg-NAME.PID in the cluster's directory;
# stop() ends the programs with SIGTERM so that their leak checks run, and any non-empty
# report fails the test.
VALGRIND = os.environ.get("EF_VALGRIND") == "1"
# Answers are checked against the OpenAPI document unless EF_OPENAPI=0 (see above).
CHECK_ANSWERS = os.environ.get("EF_OPENAPI", "1") != "0"


_soft_failures = []


def soft_check(cond, msg):
    """A check whose failure does not stop the test: it is printed now and the test fails at
    the end. For contract details (a missing header) that should not hide later findings."""
    if not cond:
        msg = msg if len(msg) < 400 else msg[:400] + "..."
        _soft_failures.append(msg)
        print("CHECK FAILED (continuing):", msg, flush=True)


_checker = None
_checker_lock = threading.Lock()
_openapi_mismatches = [0]


def answer_checker():
    """The OpenAPI checker of doc/openapi.yaml, loaded once (None when EF_OPENAPI=0)."""
    global _checker
    if not CHECK_ANSWERS:
        return None
    with _checker_lock:
        if _checker is None:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import openapi
            try:
                _checker = openapi.Checker(os.path.join(SRCDIR, "doc", "openapi.yaml"))
            except (OSError, openapi.SpecError) as e:
                raise TestFailure("cannot load doc/openapi.yaml: %s" % e)
        return _checker


def check_answer(method, target, resp, wrong_side=False):
    """Checks one answer against doc/openapi.yaml; a mismatch fails the test at its end."""
    c = answer_checker()
    if c is None:
        return
    errs = c.check(method, target, resp.status, resp.headers, resp.body, wrong_side)
    if errs:
        _openapi_mismatches[0] += len(errs)
        for e in errs[:5]:
            soft_check(False, "OpenAPI: " + e)


def _report_checked():
    if _checker is None:
        return
    print("openapi: %d answers checked against doc/openapi.yaml, %d mismatches"
          % (_checker.checked, _openapi_mismatches[0]), flush=True)
    out = os.environ.get("EF_OPENAPI_COUNTS")
    if out:
        # One short line per test, appended in one write (O_APPEND), so that tests running
        # in parallel do not mix their lines.
        line = "%s %d %d\n" % (os.path.basename(sys.argv[0]), _checker.checked, _openapi_mismatches[0])
        fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------
# Test runner: time budget, teardown, exit codes.

_clusters = []
_cleanup_lock = threading.RLock()  # re-entrant: the SIGALRM handler may interrupt a cleanup
# Sanitizer reports found in the programs' stderr when a cluster stopped: a test whose
# programs reported one fails even if every HTTP check passed.
_sanitizer_reports = []


def _cleanup_all():
    with _cleanup_lock:
        while _clusters:
            c = _clusters.pop()
            try:
                c.stop()
            except Exception as e:  # teardown must go on whatever happened
                print("teardown error:", e, file=sys.stderr)
        eftest.cleanup()


atexit.register(_cleanup_all)


def _on_alarm(signum, frame):
    print("FAIL: time budget exceeded", file=sys.stderr, flush=True)
    _dump_logs_on_failure()
    _cleanup_all()
    os._exit(1)


def _on_term(signum, frame):
    _cleanup_all()
    os._exit(1)


def _dump_logs_on_failure():
    for c in list(_clusters):
        c.print_logs()


def run(main, budget):
    """Runs main() with a budget in seconds; exits the process with the automake code."""
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.alarm(int(budget))
    t0 = time.monotonic()
    code = 1
    try:
        main()
        _cleanup_all()
        if _soft_failures:
            raise TestFailure("%d checks failed:\n  " % len(_soft_failures) + "\n  ".join(_soft_failures[:20]))
        if _sanitizer_reports:
            raise TestFailure("sanitizer reports in the programs' logs:\n" + "\n".join(_sanitizer_reports[:3]))
        code = 0
        log("PASS in %.1f s" % (time.monotonic() - t0))
    except SkipTest as e:
        print("SKIP:", e, flush=True)
        code = SKIP
    except TestFailure as e:
        print("FAIL:", e, flush=True)
        _dump_logs_on_failure()
    except Exception:
        import traceback
        traceback.print_exc()
        print("FAIL: unexpected exception", flush=True)
        _dump_logs_on_failure()
    finally:
        signal.alarm(0)
        _cleanup_all()
        _report_checked()
    sys.stdout.flush()
    os._exit(code)


# ---------------------------------------------------------------------------------------
# HTTP client: one keep-alive connection per Client (use one Client per thread).

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value (last one wins)
        self.body = body
        self._json = None

    @property
    def json(self):
        if self._json is None:
            try:
                self._json = json.loads(self.body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise TestFailure("answer is not JSON: status %d body %r"
                                  % (self.status, self.body[:300]))
        return self._json

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def position(self):
        v = self.header("Log-Position")
        return int(v) if v is not None else None

    @property
    def ctype(self):
        return (self.header("Content-Type") or "").split(";")[0].strip()

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.headers, self.body[:400])


class Client:
    def __init__(self, port, timeout=30):
        self.port = port
        self.timeout = timeout
        self.conn = None
        self.used = False

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _connect(self):
        self.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        self.used = False

    def request(self, method, path, body=None, headers=None, ctype="application/json"):
        """Sends one request; body may be a dict/list (JSON-encoded), bytes or str."""
        hdrs = {}
        if body is not None:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            elif isinstance(body, str):
                body = body.encode()
            if ctype is not None:
                hdrs["Content-Type"] = ctype
        elif method == "POST":
            body = b""
            if ctype is not None:
                hdrs["Content-Type"] = ctype
        if headers:
            hdrs.update(headers)
        for attempt in (0, 1):
            if self.conn is None:
                self._connect()
            was_used = self.used
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                r = self.conn.getresponse()
                data = r.read()
                self.used = True
                h = {k.lower(): v for k, v in r.getheaders()}
                if (h.get("connection") or "").lower() == "close":
                    self.close()
                resp = Response(r.status, h, data)
                check_answer(method, path, resp)
                return resp
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # Only a kept-alive connection that the server closed while idle is retried:
                # nginx has not seen this request then. A fresh connection failing is an error.
                self.close()
                if not was_used or attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post(self, path, body=None, headers=None, ctype="application/json"):
        if body is None:
            body = {}
        return self.request("POST", path, body=body, headers=headers, ctype=ctype)


def expect(resp, status, code=None, what=""):
    """Checks status (and problem code); returns the response for chaining."""
    if resp.status != status:
        raise TestFailure("%s: expected %d%s, got %r" % (what, status,
                          " " + code if code else "", resp))
    if code is not None:
        check(resp.ctype == "application/problem+json",
              "%s: problem Content-Type expected, got %r" % (what, resp.header("Content-Type")))
        j = resp.json
        check(j.get("code") == code, "%s: expected code %s, got %r" % (what, code, j))
        check(j.get("status") == status, "%s: problem status field %r" % (what, j.get("status")))
        check(j.get("type") == "/problems/" + code, "%s: problem type %r" % (what, j.get("type")))
        check(isinstance(j.get("title"), str) and isinstance(j.get("detail"), str),
              "%s: problem without title/detail: %r" % (what, j))
    return resp


# ---------------------------------------------------------------------------------------
# Minimal FastCGI client, for requests that bypass nginx (API.md section 8).

def fcgi_request(sock_path, params, body=b"", timeout=10):
    """Sends one FastCGI RESPONDER request; returns a Response parsed from the CGI output."""
    def rec(rtype, content):
        out = b""
        # Records hold at most 65535 bytes of content.
        for i in range(0, max(len(content), 1), 65535):
            chunk = content[i:i + 65535]
            out += struct.pack("!BBHHBx", 1, rtype, 1, len(chunk), 0) + chunk
            if not content:
                break
        return out

    def nv(name, value):
        n, v = name.encode(), value.encode()
        def ln(x):
            return struct.pack("!B", len(x)) if len(x) < 128 else struct.pack("!I", len(x) | 0x80000000)
        return ln(n) + ln(v) + n + v

    p = b"".join(nv(k, v) for k, v in params.items())
    msg = rec(1, struct.pack("!HB5x", 1, 0)) + rec(4, p) + rec(4, b"")
    if body:
        msg += rec(5, body)
    msg += rec(5, b"")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(msg)
        buf = b""
        out = b""
        done = False
        while not done:
            d = s.recv(65536)
            if not d:
                break
            buf += d
            while len(buf) >= 8:
                _, rtype, _, clen, plen = struct.unpack("!BBHHB", buf[:7])
                if len(buf) < 8 + clen + plen:
                    break
                content = buf[8:8 + clen]
                buf = buf[8 + clen + plen:]
                if rtype == 6:
                    out += content
                elif rtype == 3:
                    done = True
    finally:
        s.close()
    head, _, resp_body = out.partition(b"\r\n\r\n")
    if not _:
        head, _, resp_body = out.partition(b"\n\n")
    headers = {}
    status = 200
    for line in head.decode("latin-1").splitlines():
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "status" in headers:
        status = int(headers["status"].split()[0])
    resp = Response(status, headers, resp_body)
    # Through nginx, GET and HEAD reach the query program and every other method the
    # command program; a request sent directly to the other one is answered 405.
    method = params.get("REQUEST_METHOD", "")
    reads = method in ("GET", "HEAD")
    side = os.path.basename(sock_path)
    wrong_side = (side.startswith("command") and reads) or (side.startswith("query") and not reads)
    target = params.get("DOCUMENT_URI") or params.get("REQUEST_URI", "").split("?")[0]
    check_answer(method, target, resp, wrong_side)
    return resp


def fcgi_params(method, path, query="", ctype="", length=0, extra=None):
    p = {"REQUEST_METHOD": method, "REQUEST_URI": path + ("?" + query if query else ""),
         "DOCUMENT_URI": path, "SCRIPT_NAME": path, "QUERY_STRING": query,
         "CONTENT_TYPE": ctype, "CONTENT_LENGTH": str(length) if length else "",
         "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1"}
    if extra:
        p.update(extra)
    return p


# ---------------------------------------------------------------------------------------
# The cluster: nginx + command + query + tailer.

class Cluster:
    """One private deployment. Use as a context manager or call stop().

    fs_size: the data directory's `fs_sub` subdirectory ("" = the data directory itself,
    "log", "write", "read") is a small filesystem of its own, mounted before the first
    program starts and unmounted by stop(): a tmpfs of fs_size (bytes or "4m"), or with
    fs_type (btrfs ...) a filesystem of fs_size MiB on a loop device. Its path is
    self.mountpoint. Mounting needs root: without it the test is skipped (exit 77)."""

    def __init__(self, name, workers=4, start_tailer=True, config=None, nginx_workers=2,
                 extra_server_conf="", fs_size=None, fs_sub="", fs_type="tmpfs",
                 leader_port=None, data_dir=None, start_seconds=15):
        if not os.access(NGINX, os.X_OK):
            raise SkipTest("nginx not found at %s" % NGINX)
        self.name = name
        self.workers = workers
        # A read replica (API.md section 9) when leader_port is set: eventfold-mirror in place
        # of eventfold-command, nginx with eventfold-replica.conf proxying writes to the
        # leader's nginx on that port.
        self.leader_port = leader_port
        self.tmp = eftest.tmpdir("it-" + name)
        # data_dir: an existing data directory to serve (benchmarks prepare large ones); it
        # is the caller's to remove.
        self.data = data_dir or os.path.join(self.tmp, "data")
        # How long a program may take to start answering (a large data directory takes longer).
        self.start_seconds = start_seconds
        self.cmd_sock = os.path.join(self.tmp, "command.sock")
        self.query_sock = os.path.join(self.tmp, "query.sock")
        self.config_path = None
        if config:
            self.config_path = os.path.join(self.tmp, "eventfold.conf")
            with open(self.config_path, "w") as f:
                for k, v in config.items():
                    f.write("%s = %s\n" % (k, v))
        self.procs = {}  # name -> Popen
        self.stopped = False
        self.mountpoint = None  # the fs_size filesystem, unmounted by stop()
        self._ctl_has_status = True
        self.logs = {}   # name -> log file path
        self.nginx_workers = nginx_workers
        # Extra lines for the server block (benchmarks add their ceilings); "@TMP@" is
        # replaced by the temporary directory.
        self.extra_server_conf = extra_server_conf.replace("@TMP@", self.tmp)
        _clusters.append(self)
        if fs_size:
            # A small filesystem of its own, so that a test can fill it (ENOSPC), remount it
            # read-only or try another kind.
            mp = os.path.join(self.data, fs_sub) if fs_sub else self.data
            eftest.mount_fs(mp, fs_size, fs_type, image_dir=self.tmp)
            self.mountpoint = mp
        self.port = None
        self._start_nginx()
        # The tailer before the query workers: it creates the read model they open. (A query
        # started first must cope too, but that is not what these tests are about.)
        self.start("mirror" if leader_port else "command")
        if start_tailer:
            self.start("tailer")
        self.start("query")
        self.wait_ready()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # On a failure, show the programs' logs before the directory goes away.
        if exc_type is not None and not issubclass(exc_type, SkipTest):
            self.print_logs()
        self.stop()
        if self in _clusters:
            _clusters.remove(self)

    # -- nginx ----------------------------------------------------------------------

    def _write_nginx_conf(self, port):
        conf_dir = os.path.join(SRCDIR, "conf", "nginx")
        with open(os.path.join(conf_dir, "eventfold-upstream.conf")) as f:
            up = f.read()
        up = up.replace("/run/eventfold/command.sock", self.cmd_sock)
        up = up.replace("/run/eventfold/query.sock", self.query_sock)
        if self.leader_port:
            up += "upstream eventfold_leader { server 127.0.0.1:%d; keepalive 16; }\n" % self.leader_port
        with open(os.path.join(self.tmp, "eventfold-upstream.conf"), "w") as f:
            f.write(up)
        snippet = "eventfold-replica.conf" if self.leader_port else "eventfold.conf"
        shutil.copy(os.path.join(conf_dir, snippet), os.path.join(self.tmp, "eventfold.conf.nginx"))
        params = "/etc/nginx/fastcgi_params"
        if not os.path.exists(params):
            params = os.path.join(os.path.dirname(os.path.dirname(NGINX)), "etc/nginx/fastcgi_params")
        shutil.copy(params, os.path.join(self.tmp, "fastcgi_params"))
        os.makedirs(os.path.join(self.tmp, "nginx-tmp"), exist_ok=True)
        t = self.tmp
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = f"""{user}worker_processes {self.nginx_workers};
error_log {t}/nginx-error.log warn;
pid {t}/nginx.pid;
events {{ worker_connections 2048; }}
http {{
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path {t}/nginx-tmp/body;
    fastcgi_temp_path {t}/nginx-tmp/fastcgi;
    proxy_temp_path {t}/nginx-tmp/proxy;
    uwsgi_temp_path {t}/nginx-tmp/uwsgi;
    scgi_temp_path {t}/nginx-tmp/scgi;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    include {t}/eventfold-upstream.conf;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {t}/www;
        include {t}/eventfold.conf.nginx;
        {self.extra_server_conf}
    }}
}}
"""
        with open(os.path.join(self.tmp, "nginx.conf"), "w") as f:
            f.write(conf)
        os.makedirs(os.path.join(t, "www"), exist_ok=True)

    def _start_nginx(self):
        for attempt in range(5):
            port = free_port()
            self._write_nginx_conf(port)
            self._spawn("nginx", [NGINX, "-p", self.tmp, "-c", os.path.join(self.tmp, "nginx.conf"),
                                  "-g", "daemon off;"])
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.procs["nginx"].poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    self.port = port
                    return
                except OSError:
                    time.sleep(0.05)
            self.kill("nginx")
            err = self._read_log("nginx")
            if "Address already in use" not in err:
                raise TestFailure("nginx did not start: %s" % err[-2000:])
        raise TestFailure("nginx: no free port after 5 attempts")

    # -- processes ------------------------------------------------------------------

    def _spawn(self, name, argv):
        logpath = os.path.join(self.tmp, name + ".log")
        self.logs[name] = logpath
        if VALGRIND and name != "nginx":
            argv = ["valgrind", "-q", "--leak-check=full", "--show-leak-kinds=definite",
                    "--errors-for-leak-kinds=definite", "--track-fds=no",
                    "--log-file=" + os.path.join(self.tmp, "vg-%s.%%p" % name)] + list(argv)
        p = eftest.spawn(argv, logpath, cwd=self.tmp)
        self.procs[name] = p
        return p

    def _argv(self, name):
        common = ["--data", self.data]
        if self.config_path:
            common += ["--config", self.config_path]
        if name == "command":
            return [binary("eventfold-command")] + common + [
                "--listen", "unix:" + self.cmd_sock, "--workers", str(self.workers)]
        if name == "query":
            return [binary("eventfold-query")] + common + [
                "--listen", "unix:" + self.query_sock, "--workers", str(self.workers)]
        if name == "tailer":
            return [binary("eventfold-tailer")] + common
        if name == "mirror":
            return [binary("eventfold-mirror")] + common
        if name == "relay":
            return [binary("eventfold-relay")] + common + ["--sink", "nats"]
        raise ValueError(name)

    def start(self, name):
        os.makedirs(self.data, exist_ok=True)
        if name in ("command", "query"):
            sock = self.cmd_sock if name == "command" else self.query_sock
            # A socket file left by a killed master would make the new bind fail.
            if os.path.exists(sock) and not self.running(name):
                os.unlink(sock)
        p = self._spawn(name, self._argv(name))
        if name in ("command", "query"):
            sock = self.cmd_sock if name == "command" else self.query_sock
            deadline = time.monotonic() + self.start_seconds
            while not os.path.exists(sock):
                if p.poll() is not None:
                    raise TestFailure("%s exited with %s at start: %s"
                                      % (name, p.returncode, self._read_log(name)[-2000:]))
                check(time.monotonic() < deadline, "%s: socket %s not created in %d s" % (name, sock, self.start_seconds))
                time.sleep(0.02)
            # Then every worker is forked, and one accepts.
            while len(self.worker_pids(name)) < self.workers:
                if p.poll() is not None:
                    raise TestFailure("%s exited with %s at start: %s"
                                      % (name, p.returncode, self._read_log(name)[-2000:]))
                check(time.monotonic() < deadline, "%s: %d workers after %d s, expected %d"
                      % (name, len(self.worker_pids(name)), self.start_seconds, self.workers))
                time.sleep(0.02)
            deadline = time.monotonic() + self.start_seconds
            while True:
                try:
                    method = "GET" if name == "query" else "POST"
                    fcgi_request(sock, fcgi_params(method, "/api/status"), timeout=5)
                    break
                except OSError:
                    check(time.monotonic() < deadline, "%s: workers do not answer" % name)
                    time.sleep(0.05)
        return p

    def running(self, name):
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def pid(self, name):
        return self.procs[name].pid

    def worker_pids(self, name):
        return children_of(self.procs[name].pid)

    def kill(self, name, sig=signal.SIGKILL, wait=True):
        """Sends sig to the program's whole process group (master and workers), by PID."""
        p = self.procs.get(name)
        if p is None or p.poll() is not None:
            return
        pids = [p.pid] + self.worker_pids(name)
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        if not wait:
            return
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        # Workers re-parented after the master died are still in the group: make sure they
        # are gone before the caller restarts the program on the same data.
        deadline = time.monotonic() + 10
        for w in pids[1:]:
            while os.path.exists("/proc/%d" % w) and not _is_zombie(w):
                if time.monotonic() > deadline:
                    os.kill(w, signal.SIGKILL)
                    deadline = time.monotonic() + 5
                time.sleep(0.01)

    def restart(self, name, sig=signal.SIGKILL):
        self.kill(name, sig)
        self.start(name)
        if name in ("command", "query"):
            self.wait_ready()

    def stop(self):
        # nginx first (no new requests), then every program this cluster started.
        for name in sorted(self.procs, key=lambda n: n != "nginx"):
            if name in self.procs:
                try:
                    if VALGRIND and name != "nginx" and self.running(name):
                        # A graceful stop, so that valgrind's leak check runs at exit.
                        os.killpg(self.procs[name].pid, signal.SIGTERM)
                        try:
                            self.procs[name].wait(timeout=60)
                        except subprocess.TimeoutExpired:
                            pass
                    self.kill(name, signal.SIGKILL)
                except Exception as e:
                    print("teardown %s: %s" % (name, e), file=sys.stderr)
        self.procs = {}
        if self.stopped:
            return
        self.stopped = True
        for name in self.logs:
            report = sanitizer_report(self._read_log(name))
            if report:
                _sanitizer_reports.append("%s: %s" % (name, report))
        for vg in sorted(glob.glob(os.path.join(self.tmp, "vg-*"))):
            with open(vg, errors="replace") as f:
                text = f.read()
            if text.strip():
                _sanitizer_reports.append("%s: %s" % (os.path.basename(vg), text[:3000]))
        # Unmounts the fs_size filesystem (the programs are gone), then removes the
        # directory unless EF_KEEP_TMP=1.
        eftest.umount_below(self.tmp)
        self.mountpoint = None
        if not KEEP_TMP:
            eftest.rmtree(self.tmp)

    def stop_gracefully(self, name, timeout=20):
        """SIGTERM and wait; returns the exit status."""
        p = self.procs[name]
        os.kill(p.pid, signal.SIGTERM)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not stop within %d s of SIGTERM; where its processes are:\n%s\n"
                              "its log:\n%s" % (name, timeout, describe_processes([p.pid] + children_of(p.pid)),
                                                 self._read_log(name)[-3000:]))

    def _read_log(self, name):
        try:
            with open(self.logs[name], "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, KeyError):
            return ""

    def print_logs(self, tail=3000):
        for name in list(self.logs):
            text = self._read_log(name)
            if text.strip():
                print("----- %s log (tail) -----" % name)
                print(text[-tail:])
        text = ""
        try:
            with open(os.path.join(self.tmp, "nginx-error.log")) as f:
                text = f.read()
        except OSError:
            pass
        if text.strip():
            print("----- nginx error.log (tail) -----")
            print(text[-tail:])
        sys.stdout.flush()

    def log_text(self, name):
        return self._read_log(name)

    # -- HTTP -----------------------------------------------------------------------

    def client(self, timeout=30):
        return Client(self.port, timeout)

    def wait_ready(self, timeout=20):
        c = self.client(timeout=5)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                r = c.get("/api/status")
                if r.status == 200:
                    c.close()
                    return
                last = r
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise TestFailure("GET /api/status not answered 200 within %d s: %r" % (timeout, last))

    def status(self):
        r = self.client().get("/api/status")
        expect(r, 200, what="GET /api/status")
        return r.json

    def head(self):
        """The log head, read from the log itself (not the read model): `eventfoldctl
        status`, or the last position of `eventfoldctl dump` where status is missing."""
        if self._ctl_has_status:
            rc, out, err = self.ctl("status")
            if rc == 0:
                try:
                    return int(json.loads(out)["log"]["head_position"])
                except (ValueError, KeyError, TypeError):
                    raise TestFailure("eventfoldctl status: unexpected output %r" % out[:300])
            check(rc == 2, "eventfoldctl status: exit %d: %s" % (rc, err.strip()))
            log("eventfoldctl has no status command; reading the head from dump")
            self._ctl_has_status = False
        events = self.dump()
        return events[-1]["position"] if events else 0

    def wait_caught_up(self, position=None, timeout=30):
        """Waits until the read model has applied `position` (default: the log head)."""
        if position is None:
            position = self.head()
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if int(st["read_model"]["position"]) >= position:
                return st
            check(time.monotonic() < deadline,
                  "read model stuck at %s, wanted %d" % (st["read_model"], position))
            time.sleep(0.02)

    # -- eventfoldctl ---------------------------------------------------------------

    def ctl(self, *args, data=None, timeout=120):
        argv = [binary("eventfoldctl"), "--data", data or self.data]
        if self.config_path:
            argv += ["--config", self.config_path]
        argv += list(args)
        return eftest.run_program(argv, timeout, asan="detect_leaks=0")

    def ctl_json(self, *args):
        rc, out, err = self.ctl(*args)
        check(rc == 0, "eventfoldctl %s: exit %d: %s" % (" ".join(args), rc, err.strip()))
        try:
            return json.loads(out)
        except ValueError:
            raise TestFailure("eventfoldctl %s: not JSON: %r" % (" ".join(args), out[:300]))

    def dump(self, data=None, start=None):
        args = ["dump"]
        if start is not None:
            args += ["--from", str(start)]
        rc, out, err = self.ctl(*args, data=data)
        check(rc == 0, "eventfoldctl dump: exit %d: %s" % (rc, err.strip()))
        events = []
        for line in out.splitlines():
            if line.strip():
                try:
                    events.append(json.loads(line))
                except ValueError:
                    raise TestFailure("eventfoldctl dump: line is not JSON: %r" % line[:200])
        return events

    def verify(self, data=None):
        rc, out, err = self.ctl("verify", data=data)
        check(rc == 0, "eventfoldctl verify: exit %d: %s %s" % (rc, out.strip()[-500:], err.strip()[-500:]))


def describe_processes(pids):
    """For a hang: each process's and thread's state and kernel wait channel, from /proc."""
    out = []
    for pid in pids:
        for tid in sorted(os.listdir("/proc/%d/task" % pid)) if os.path.isdir("/proc/%d/task" % pid) else []:
            base = "/proc/%d/task/%s" % (pid, tid)
            try:
                with open(base + "/stat") as f:
                    stat = f.read().split(") ", 1)[-1].split()[0]
                with open(base + "/wchan") as f:
                    wchan = f.read().strip()
                try:
                    with open(base + "/syscall") as f:
                        syscall = f.read().split()[0]
                except OSError:
                    syscall = "?"
            except OSError:
                continue
            out.append("  pid %d tid %s state %s wchan %s syscall %s" % (pid, tid, stat, wchan, syscall))
    return "\n".join(out) or "  (gone)"


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# ---------------------------------------------------------------------------------------
# Small helpers shared by the tests.

def parallel(fn, args_list, max_threads=None):
    """Runs fn(*args) in one thread each (all started, then released together by a
    barrier, so the requests really overlap); returns results in order. An exception in a
    thread is re-raised in the caller."""
    n = len(args_list)
    results = [None] * n
    errors = []
    barrier = threading.Barrier(n)

    def body(i, a):
        try:
            barrier.wait(timeout=60)
            results[i] = fn(*a)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i, a), daemon=True) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    check(not any(t.is_alive() for t in threads), "parallel: threads did not finish")
    if errors:
        raise errors[0]
    return results


def uid(prefix, n=None):
    """A fresh identifier that matches the id grammar."""
    base = "%s-%x%04x" % (prefix, int(time.time() * 1000) & 0xffffffff, os.getpid() & 0xffff)
    return base if n is None else "%s-%d" % (base, n)


def new_order(cl, prefix, deposit, price, stock, quantity, category="c"):
    """Registers a user with `deposit` cents in the wallet and an item of `price` cents with
    `stock` units, then orders `quantity` of it. Returns (user_id, item_id, order_id)."""
    u, item = uid(prefix + "-u"), uid(prefix + "-i")
    expect(cl.post("/api/users", {"user_id": u, "name": "User " + prefix}), 201, what="register")
    expect(cl.post("/api/users/%s/deposits" % u, {"amount_cents": deposit}), 200, what="deposit")
    expect(cl.post("/api/items", {"item_id": item, "name": "Item " + prefix, "category": category,
                                  "price_cents": price}), 201, what="add item")
    expect(cl.post("/api/items/%s/restock" % item, {"quantity": stock}), 200, what="restock")
    r = expect(cl.post("/api/orders", {"user_id": u, "items": [{"item_id": item, "quantity": quantity}]}),
               201, what="create order")
    return u, item, r.json["order_id"]
