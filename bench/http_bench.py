#!/usr/bin/env python3
"""http_bench: eventfold's HTTP throughput and read-your-writes delay through a real nginx.

Starts a private deployment with the integration harness (tests/integration/harness.py),
then runs wrk (bench/http_*.lua) at 1, 16 and 64 connections against:
  - POST /api/orders (CreateOrder)         vs  the trivial libfcgi responder (bench/fcgi_trivial)
  - GET /api/users/{id}, GET /api/orders/{id} vs nginx serving a static JSON file of the same
    size, and the trivial responder
and prints req/s, p50, p99 and the ratios to the ceilings. Then, under a steady command load,
measures the read-your-writes delay: from a command's answer to the answer of a query sent
with Min-Position = its Log-Position (p50, p99), while wrk keeps EF_BENCH_RYW_LOAD_CONNS (4)
connections of CreateOrder going. At the end of the load it reads the peak RSS
(VmHWM in /proc/PID/status) of every command and query worker (the masters' children) and of
the tailer.

Environment: EF_BUILDDIR, EF_SRCDIR, EF_NGINX (as for the tests), EF_BENCH_SECONDS (5),
EF_BENCH_WORKERS (4 per program), EF_BENCH_RYW_SAMPLES (1000), EF_BENCH_CMD_ROUNDS (3 CreateOrder
runs at 64 connections, each between two runs of the trivial responder), WRK (wrk), EF_BENCH_OUT (a file
to write the results to as key=value lines, for bench/report.py; none by default)."""

import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("EF_SRCDIR") or os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))
# The harness checks every answer against doc/openapi.yaml; that costs Python time inside
# the timed read-your-writes samples, so the benchmark leaves it to the tests.
os.environ.setdefault("EF_OPENAPI", "0")
import harness  # noqa: E402
from harness import Cluster, check, expect  # noqa: E402

SECONDS = int(os.environ.get("EF_BENCH_SECONDS", "5"))
WORKERS = int(os.environ.get("EF_BENCH_WORKERS", "4"))
WRK = os.environ.get("WRK") or shutil.which("wrk") or "/usr/bin/wrk"
RYW_SAMPLES = int(os.environ.get("EF_BENCH_RYW_SAMPLES", "1000"))
RYW_LOAD_CONNS = int(os.environ.get("EF_BENCH_RYW_LOAD_CONNS", "4"))
CMD_ROUNDS = max(1, int(os.environ.get("EF_BENCH_CMD_ROUNDS", "3")))
CONNS = (1, 16, 64)
RESULTS = []  # (key, value) in the order measured


def emit(key, value):
    RESULTS.append((key, value))


def emit_wrk(name, conns, r):
    for k, v in zip(("rps", "p50_ms", "p99_ms", "errors"), r):
        emit("http_%s_c%d_%s" % (name, conns, k), ("%.3f" % v) if isinstance(v, float) else v)


def vm_kib(pid, field="VmHWM"):
    """A memory figure of pid in KiB from /proc/PID/status (VmHWM: peak resident set)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise harness.TestFailure("no %s in /proc/%d/status" % (field, pid))


def emit_rss(c):
    """Peak RSS of the command and query workers and of the tailer, read while they run."""
    for name in ("command", "query"):
        pids = c.worker_pids(name)
        check(pids, "no %s workers found under PID %d" % (name, c.pid(name)))
        hwm = [vm_kib(p) for p in pids]
        emit("rss_%s_workers" % name, len(hwm))
        emit("rss_%s_worker_max_kib" % name, max(hwm))
        emit("rss_%s_worker_mean_kib" % name, sum(hwm) // len(hwm))
        emit("rss_%s_master_kib" % name, vm_kib(c.pid(name)))
        # What the resident set is made of: private memory (heap, stacks) and file pages
        # (the LMDB map and the log: page cache shared with every other process).
        emit("rss_%s_worker_anon_max_kib" % name, max(vm_kib(p, "RssAnon") for p in pids))
        emit("rss_%s_worker_file_max_kib" % name, max(vm_kib(p, "RssFile") + vm_kib(p, "RssShmem") for p in pids))
        print("%s workers: peak RSS (VmHWM) max %d KiB, mean %d KiB over %d workers"
              % (name, max(hwm), sum(hwm) // len(hwm), len(hwm)), flush=True)
    if c.running("trivial"):
        hwm = [vm_kib(p) for p in c.worker_pids("trivial")]
        if hwm:
            emit("rss_trivial_worker_max_kib", max(hwm))
    check(c.running("tailer"), "the tailer is not running at the end of the load")
    emit("rss_tailer_kib", vm_kib(c.pid("tailer")))
    emit("rss_tailer_anon_kib", vm_kib(c.pid("tailer"), "RssAnon"))
    print("tailer: peak RSS (VmHWM) %d KiB" % vm_kib(c.pid("tailer")), flush=True)


def wrk(port, path, conns, script=None, env=None):
    """Runs wrk; returns (req/s, p50 ms, p99 ms, non-2xx+errors)."""
    argv = [WRK, "-t", str(min(2, conns)), "-c", str(conns), "-d", "%ds" % SECONDS, "--latency"]
    if script:
        argv += ["-s", os.path.join(HERE, script)]
    argv.append("http://127.0.0.1:%d%s" % (port, path))
    e = dict(os.environ)
    e.update(env or {})
    out = subprocess.run(argv, capture_output=True, text=True, env=e, timeout=SECONDS + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)\b" % p, out)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    bad = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        bad += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        bad += sum(int(x) for x in m.groups())
    return rps, pct(50), pct(99), bad


STAGES = ("append_lock_wait", "append_locked", "sync_wait")


def cpu_ticks():
    """(busy, total) jiffies of the whole machine, from the "cpu" line of /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return sum(v) - idle, sum(v)


def emit_cpu(name, conns, before, rps):
    """How busy the machine's CPUs were during one wrk run, and the machine CPU time per
    request (nginx, wrk, the programs and the kernel together)."""
    busy, total = (a - b for a, b in zip(cpu_ticks(), before))
    frac = busy / total if total else float("nan")
    emit("http_%s_c%d_cpu_busy" % (name, conns), "%.3f" % frac)
    emit("http_%s_c%d_cpu_us_per_request" % (name, conns),
         "%.1f" % (frac * os.cpu_count() * 1e6 / rps if rps else float("nan")))


def stage_totals(c):
    """{stage: (sum_seconds, count)} of eventfold_command_stage_seconds in /metrics."""
    cl = c.client()
    try:
        text = cl.get("/metrics").body.decode()
    finally:
        cl.close()
    out = {}
    for st in STAGES:
        s = re.search(r'eventfold_command_stage_seconds_sum\{stage="%s"\} ([0-9.]+)' % st, text)
        n = re.search(r'eventfold_command_stage_seconds_count\{stage="%s"\} (\d+)' % st, text)
        out[st] = (float(s.group(1)) if s else 0.0, int(n.group(1)) if n else 0)
    return out


def emit_stages(conns, before, after):
    """Mean time per command of each stage during one CreateOrder run (from /metrics)."""
    parts = []
    for st in STAGES:
        ds, dn = after[st][0] - before[st][0], after[st][1] - before[st][1]
        mean_ms = 1000 * ds / dn if dn else float("nan")
        emit("http_create_c%d_stage_%s_ms" % (conns, st), "%.4f" % mean_ms)
        parts.append("%s %.3f ms" % (st, mean_ms))
    print("  (CreateOrder c=%d, mean per command: %s)" % (conns, ", ".join(parts)), flush=True)


def row(label, conns, r, ceil=None):
    ratio = "" if not ceil else "  %5.1f%% of %s" % (100 * r[0] / ceil[1][0], ceil[0])
    print("%-34s c=%-3d %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms%s%s"
          % (label, conns, r[0], r[1], r[2], "  (%d errors)" % r[3] if r[3] else "", ratio), flush=True)


def start_trivial(c):
    """Starts bench/fcgi_trivial on TMP/trivial.sock if it was built; returns True if up."""
    exe = os.path.join(harness.BUILDDIR, "bench", "fcgi_trivial")
    if not os.access(exe, os.X_OK):
        print("(bench/fcgi_trivial not built: no FastCGI ceiling)", flush=True)
        return False
    sock = os.path.join(c.tmp, "trivial.sock")
    c._spawn("trivial", [exe, "--listen", "unix:" + sock, "--workers", str(WORKERS)])
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        if not c.running("trivial") or time.monotonic() > deadline:
            print("(bench/fcgi_trivial did not start: %s)" % c.log_text("trivial")[-300:], flush=True)
            return False
        time.sleep(0.05)
    return True


def seed(c, n_users=200, n_orders=400, n_items=200):
    cl = c.client()
    item = "bench-item"
    expect(cl.post("/api/items", {"item_id": item, "name": "Bench", "category": "bench", "price_cents": 100}), 201)
    for _ in range(5):
        expect(cl.post("/api/items/%s/restock" % item, {"quantity": 1000000}), 200)
    # The items of CreateOrder's lines (1 to 3 of them, as PostgreSQL's peer in pg_bench.py).
    items = ["bench-i%d" % i for i in range(1, n_items + 1)]
    for i in items:
        expect(cl.post("/api/items", {"item_id": i, "name": "Bench item " + i, "category": "bench",
                                      "price_cents": 100}), 201)
        for _ in range(5):
            expect(cl.post("/api/items/%s/restock" % i, {"quantity": 1000000}), 200)
    users = ["bench-u%d" % i for i in range(n_users)]
    orders = []
    for u in users:
        expect(cl.post("/api/users", {"user_id": u, "name": "Bench user " + u, "email": u + "@example.com"}), 201)
    for i in range(n_orders):
        r = expect(cl.post("/api/orders", {"user_id": users[i % n_users], "items": [{"item_id": item, "quantity": 1}]}), 201)
        orders.append(r.json["order_id"])
    c.wait_caught_up(timeout=60)
    return item, users, orders, items


def ryw_delay(c, ifile, ufile, users, samples=RYW_SAMPLES):
    """p50/p99 of command answered -> query with Min-Position answered, under a steady load of
    CreateOrder from wrk at RYW_LOAD_CONNS connections (a separate process, so the load does not
    compete with the sampling thread for the Python interpreter)."""
    argv = [WRK, "-t", "1", "-c", str(RYW_LOAD_CONNS), "-d", "600s", "-s",
            os.path.join(HERE, "http_create_order.lua"), "http://127.0.0.1:%d/" % c.port]
    env = dict(os.environ, EF_BENCH_USERS=ufile, EF_BENCH_ITEMS=ifile)
    # wrk in a session (autogroup) of its own, so that it does not take the sampler's CPU
    # share (see ryw_bench.py).
    load = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    k = c.client()
    d = []
    try:
        time.sleep(0.5)  # let the load settle
        if load.poll() is not None:
            raise harness.TestFailure("wrk (read-your-writes load) exited: %s" % load.communicate()[0][-300:])
        h0 = c.head()
        t_start = time.monotonic()
        for i in range(samples):
            w = expect(k.post("/api/users/%s/deposits" % users[i % len(users)], {"amount_cents": 1}), 200)
            t0 = time.monotonic()
            expect(k.get("/api/users/%s" % users[i % len(users)], headers={"Min-Position": str(w.position)}), 200)
            d.append((time.monotonic() - t0) * 1000)
        rate = (c.head() - h0 - samples) / (time.monotonic() - t_start)
    finally:
        k.close()
        if load.poll() is None:
            load.terminate()  # our own child, by its PID
        load.wait(timeout=30)
    d.sort()
    emit("ryw_samples", len(d))
    emit("ryw_load_conns", RYW_LOAD_CONNS)
    emit("ryw_load_commands_per_second", "%.0f" % rate)
    return d[len(d) // 2], d[int(len(d) * 0.99)]


def main():
    check(os.access(WRK, os.X_OK), "wrk not found (Debian: apt-get install wrk)")
    extra = """
        location = /static/user.json { default_type application/json; }
        location = /trivial { include @TMP@/fastcgi_params; fastcgi_pass unix:@TMP@/trivial.sock; }
"""
    with Cluster("bench", workers=WORKERS, extra_server_conf=extra) as c:
        item, users, orders, items = seed(c)
        os.makedirs(os.path.join(c.tmp, "www", "static"), exist_ok=True)
        ufile, ofile = os.path.join(c.tmp, "users.txt"), os.path.join(c.tmp, "orders.txt")
        ifile = os.path.join(c.tmp, "items.txt")
        with open(ifile, "w") as f:
            f.write("\n".join(items) + "\n")
        with open(ufile, "w") as f:
            f.write("\n".join(users) + "\n")
        with open(ofile, "w") as f:
            f.write("\n".join(orders) + "\n")
        sample = c.client().get("/api/users/" + users[0]).body
        with open(os.path.join(c.tmp, "www", "static", "user.json"), "wb") as f:
            f.write(sample)
        have_trivial = start_trivial(c)
        check(have_trivial or not os.environ.get("EF_BENCH_OUT"),
              "the report needs the FastCGI ceiling: build bench/fcgi_trivial")
        emit("http_seconds", SECONDS)
        emit("http_workers", WORKERS)
        emit("http_static_bytes", len(sample))
        print("eventfold HTTP benchmark: %d s per run, %d workers per program, nginx 2 workers, %d cores"
              % (SECONDS, WORKERS, os.cpu_count()), flush=True)
        res = {}
        for n in CONNS:
            run_conns(c, n, res, have_trivial, len(sample), ufile, ofile, ifile)
        p50, p99 = ryw_delay(c, ifile, ufile, users)
        emit("ryw_p50_ms", "%.3f" % p50)
        emit("ryw_p99_ms", "%.3f" % p99)
        print("read-your-writes delay under CreateOrder load from %d connections (answer -> Min-Position "
              "read answered): p50 %.2f ms, p99 %.2f ms" % (RYW_LOAD_CONNS, p50, p99), flush=True)
        emit_rss(c)
        emit("head_position", c.head())
        c.verify()
    out = os.environ.get("EF_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            f.write("".join("%s=%s\n" % kv for kv in RESULTS))


def command_rounds(c, n, res, tri, orders_env):
    """Issue 16's command ceiling: the trivial responder sent the very requests of
    CreateOrder (POST, the same JSON bodies). The machine's speed drifts by a quarter within
    seconds (a trivial run of 10 929 req/s and one of 13 722, 15 s apart, in one report), so
    the runs alternate, trivial first and last, CMD_ROUNDS CreateOrder runs between them:
    each CreateOrder run is set against the mean of the two trivial runs around it, and the
    target is judged on the median of those ratios. The CreateOrder figures of the table are
    the median round's; the CPU and stage figures are the first round's."""
    post_env = dict(orders_env, EF_BENCH_PATH="/trivial")
    trivial, create = [], []
    for i in range(CMD_ROUNDS + 1):
        t0 = cpu_ticks()
        r = wrk(c.port, "/", n, "http_create_order.lua", post_env)
        if i == 0:
            emit_cpu("trivial_post", n, t0, r[0])
        trivial.append(r)
        row("trivial responder, CreateOrder POSTs", n, r)
        if i == CMD_ROUNDS:
            break
        before = stage_totals(c)
        t0 = cpu_ticks()
        r = wrk(c.port, "/", n, "http_create_order.lua", orders_env)
        if i == 0:
            emit_cpu("create", n, t0, r[0])
            emit_stages(n, before, stage_totals(c))
        create.append(r)
        row("POST /api/orders (CreateOrder)", n, r, tri)
    brackets = [(trivial[i][0] + trivial[i + 1][0]) / 2 for i in range(CMD_ROUNDS)]
    ratios = [create[i][0] / brackets[i] for i in range(CMD_ROUNDS)]
    med = sorted(range(CMD_ROUNDS), key=lambda i: ratios[i])[CMD_ROUNDS // 2]
    res["create", n] = create[med]
    res["trivial_post", n] = (brackets[med],) + tuple(trivial[med][1:])
    emit("http_cmd_rounds", CMD_ROUNDS)
    emit("http_create_c%d_round_rps" % n, ",".join("%.0f" % r[0] for r in create))
    emit("http_trivial_post_c%d_round_rps" % n, ",".join("%.0f" % r[0] for r in trivial))
    emit("http_create_c%d_round_ratios" % n, ",".join("%.4f" % x for x in ratios))
    emit("http_create_c%d_ratio_median" % n, "%.4f" % ratios[med])
    # The stricter figure the report gave before: the median round against the best trivial run.
    emit("http_create_c%d_ratio_best_trivial" % n, "%.4f" % (create[med][0] / max(t[0] for t in trivial)))
    print("  (CreateOrder / trivial POSTs around it, by round: %s; median %.1f%%)"
          % (", ".join("%.1f%%" % (100 * x) for x in ratios), 100 * ratios[med]), flush=True)


def run_conns(c, n, res, have_trivial, sample_len, ufile, ofile, ifile):
    """One round at n connections: the ceilings, the real routes, the ceilings again. The
    machine is shared, so each ceiling is the better of the two runs that bracket the routes."""
    def ceilings(tag):
        res["static", n, tag] = wrk(c.port, "/static/user.json", n)
        row("static JSON (%d bytes)%s" % (sample_len, tag), n, res["static", n, tag])
        if have_trivial:
            t0 = cpu_ticks()
            res["trivial", n, tag] = wrk(c.port, "/trivial", n)
            if not tag:
                emit_cpu("trivial", n, t0, res["trivial", n, tag][0])
            row("trivial libfcgi responder%s" % tag, n, res["trivial", n, tag])
    ceilings("")
    tri = ("trivial", res["trivial", n, ""]) if have_trivial else None
    res["users", n] = wrk(c.port, "/", n, "http_get_ids.lua",
                          {"EF_BENCH_IDS": ufile, "EF_BENCH_PREFIX": "/api/users"})
    row("GET /api/users/{id}", n, res["users", n], ("static", res["static", n, ""]))
    if tri:
        row("  (same, vs trivial)", n, res["users", n], tri)
    res["orders", n] = wrk(c.port, "/", n, "http_get_ids.lua",
                           {"EF_BENCH_IDS": ofile, "EF_BENCH_PREFIX": "/api/orders"})
    row("GET /api/orders/{id}", n, res["orders", n], ("static", res["static", n, ""]))
    orders_env = {"EF_BENCH_USERS": ufile, "EF_BENCH_ITEMS": ifile}
    if have_trivial and n == 64:
        command_rounds(c, n, res, tri, orders_env)
    else:
        before = stage_totals(c)
        t0 = cpu_ticks()
        res["create", n] = wrk(c.port, "/", n, "http_create_order.lua", orders_env)
        emit_cpu("create", n, t0, res["create", n][0])
        row("POST /api/orders (CreateOrder)", n, res["create", n], tri)
        emit_stages(n, before, stage_totals(c))
    ceilings(" (again)")
    for name in ("static", "trivial"):
        if (name, n, "") in res:
            a, b = res[name, n, ""], res[name, n, " (again)"]
            emit("http_%s_c%d_rps_first" % (name, n), "%.3f" % a[0])
            emit("http_%s_c%d_rps_second" % (name, n), "%.3f" % b[0])
            res[name, n] = a if a[0] >= b[0] else b
    for name in ("static", "trivial", "trivial_post", "users", "orders", "create"):
        if (name, n) in res:
            emit_wrk(name, n, res[name, n])


if __name__ == "__main__":
    harness.run(main, budget=900)
