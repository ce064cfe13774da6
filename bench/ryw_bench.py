#!/usr/bin/env python3
"""ryw_bench: read-your-writes delay under a saturating mixed load, beside the idle case.

A private deployment (tests/integration/harness.py, EF_BENCH_WORKERS per program) seeded as
http_bench.py seeds it. A sampler (this process, one keep-alive connection) sends a deposit,
then at once a GET of the same user with Min-Position = the deposit's Log-Position, and
records the time from the command's answer to the query's answer, and its status. Two cases,
alternated over EF_BENCH_RYW_ROUNDS (2) rounds of EF_BENCH_RYW_SAMPLES / rounds samples each,
the samples of a case pooled:
  idle  CreateOrder paced to about EF_BENCH_RYW_RATE (500) commands/s in all (wrk,
        bench/http_create_order_paced.lua; the sampler's own deposits count towards it)
  busy  the same, plus EF_BENCH_RYW_GET_CONNS (16) connections of GET /api/users/{id} as fast
        as they are answered (wrk, bench/http_get_ids.lua): both cores busy
For each: p50, p99 and max of the delay, the number of 503 answers (not_caught_up: the
read model did not reach the position within the default wait of 2 s), the commands/s
reached and how busy the machine's CPUs were. Stops of the whole machine (a virtual
machine's CPUs not run by its host: bench/vm_stall_watch.py) are watched for during the
samples; the max is also given without the samples that overlapped one. The tailer's batches are read from its
/proc/PID/schedstat (CPU time, time waiting for a CPU, timeslices) around each case.

Environment: EF_BUILDDIR, EF_SRCDIR, EF_NGINX (as for the tests), EF_BENCH_WORKERS (4),
EF_BENCH_RYW_SAMPLES (1000), EF_BENCH_RYW_ROUNDS (2), EF_BENCH_RYW_RATE (500),
EF_BENCH_RYW_GET_CONNS (16), WRK, EF_BENCH_OUT (key=value results for bench/report.py)."""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from http_bench import WRK, WORKERS, RESULTS, emit, seed, cpu_ticks  # noqa: E402
import harness  # noqa: E402  (http_bench put tests/integration on the path)
from harness import Cluster, check, expect  # noqa: E402

SAMPLES = int(os.environ.get("EF_BENCH_RYW_SAMPLES", "1000"))
ROUNDS = max(1, int(os.environ.get("EF_BENCH_RYW_ROUNDS", "2")))
RATE = float(os.environ.get("EF_BENCH_RYW_RATE", "500"))
GET_CONNS = int(os.environ.get("EF_BENCH_RYW_GET_CONNS", "16"))
PACED_CONNS = 8
# Cases run, in order, each round: idle, busy; and, for A/B measurements, busyN: busy with
# the tailer at nice N (root only; e.g. busy-5), busy-shared: busy with the load generators
# in the sampler's own session.
CASES = os.environ.get("EF_BENCH_RYW_CASES", "idle busy").split()


def pct(d, p):
    return d[min(len(d) - 1, int(len(d) * p))]


def schedstat(pid):
    """(on-CPU ns, run-queue wait ns, timeslices) of every thread of pid."""
    tot = [0, 0, 0]
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                v = [int(x) for x in f.read().split()]
        except OSError:
            continue
        tot = [a + b for a, b in zip(tot, v)]
    return tot


def set_nice(pid, nice):
    """The tailer's nice, for its thread and for its autogroup (a session of its own under
    the harness, as under systemd: nice only orders threads inside one autogroup)."""
    os.setpriority(os.PRIO_PROCESS, pid, nice)
    if os.path.exists("/proc/%d/autogroup" % pid):
        with open("/proc/%d/autogroup" % pid, "w") as f:
            f.write(str(nice))


def start_wrk(c, conns, script, env, threads=1, own_session=True):
    argv = [WRK, "-t", str(threads), "-c", str(conns), "-d", "600s", "-s", os.path.join(HERE, script),
            "http://127.0.0.1:%d/" % c.port]
    # A session of its own, hence an autogroup of its own (kernel.sched_autogroup_enabled):
    # in the sampler's, wrk's busy threads would take the sampler's share of the CPU and
    # delay its reading of answers (on a real deployment the load comes from other machines).
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(os.environ, EF_BENCH_LUA_DIR=HERE, **env), start_new_session=own_session)
    return p


def stop_wrk(p):
    if p.poll() is None:
        p.terminate()  # our own child, by its PID
    try:
        p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate(timeout=30)


class StallWatch:
    """bench/vm_stall_watch.py on every CPU of this process, for as long as the with block
    runs; .stalls: the (start, end) of each stop seen (time.monotonic() seconds), .ok:
    whether every watcher could run (real-time priority needs root or CAP_SYS_NICE)."""

    def __enter__(self):
        self.procs, self.stalls, self.ok = [], [], True
        for cpu in sorted(os.sched_getaffinity(0)):
            p = subprocess.Popen([sys.executable, os.path.join(HERE, "vm_stall_watch.py"), str(cpu)],
                                 stdout=subprocess.PIPE, text=True)
            self.procs.append(p)
            if p.stdout.readline().strip() != "ready":
                self.ok = False
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()  # our own child, by its PID
            out = p.communicate(timeout=30)[0]
            for line in out.splitlines():
                f = line.split()
                if len(f) == 3 and f[0] == "STALL":
                    self.stalls.append((float(f[1]), float(f[2])))
        return False

    def overlaps(self, t0, t1):
        return any(s < t1 and e > t0 for s, e in self.stalls)

    def merged(self):
        """The stops, those seen on several CPUs at once counted once."""
        out = []
        for s, e in sorted(self.stalls):
            if out and s < out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], e))
            else:
                out.append((s, e))
        return out


def sample(c, users, n, sampler_rate):
    """n samples; returns (delays ms, 503 count, commands/s in all during them, plain GET
    delays ms, the (start, end) of each delay and of each plain GET, time.monotonic())."""
    k = c.client()
    d, n503, plain, spans, plain_spans = [], 0, [], [], []
    gap = 1.0 / sampler_rate
    try:
        h0, t_start = c.head(), time.monotonic()
        for i in range(n):
            t_next = time.monotonic() + gap
            u = users[i % len(users)]
            w = expect(k.post("/api/users/%s/deposits" % u, {"amount_cents": 1}), 200)
            t0 = time.monotonic()
            r = k.get("/api/users/%s" % u, headers={"Min-Position": str(w.position)})
            t1 = time.monotonic()
            if r.status == 503:
                n503 += 1
            else:
                expect(r, 200)
                check(r.position >= w.position, "read-your-writes broken: %r after %d" % (r, w.position))
            d.append((t1 - t0) * 1000)
            spans.append((t0, t1))
            # The floor: a plain GET (no Min-Position) of another user, right after.
            t0 = time.monotonic()
            expect(k.get("/api/users/%s" % users[(i + 1) % len(users)]), 200)
            t1 = time.monotonic()
            plain.append((t1 - t0) * 1000)
            plain_spans.append((t0, t1))
            pause = t_next - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        rate = (c.head() - h0) / (time.monotonic() - t_start)
    finally:
        k.close()
    return d, n503, rate, plain, spans, plain_spans


def run_case(c, name, users, ufile, ifile, ofile_users, n, acc):
    """One round of a case; adds to acc[name] = [delays, 503s, rates, cpu busy, tailer stats]."""
    sampler_rate = 100.0
    paced_rate = max(RATE - sampler_rate, 1.0)
    # Each paced connection waits delay ms before each request: about conns x 1000 / (delay +
    # latency) requests/s (a latency of about 1 ms taken off).
    delay = max(0, int(PACED_CONNS * 1000 / paced_rate) - 1)
    nice, own = None, True
    if name == "busy-shared":
        own = False  # A/B: the load generators in the sampler's session (autogroup)
    elif name.startswith("busy") and name != "busy":
        nice = int(name[4:])
    loads = [start_wrk(c, PACED_CONNS, "http_create_order_paced.lua",
                       {"EF_BENCH_USERS": ufile, "EF_BENCH_ITEMS": ifile, "EF_BENCH_DELAY_MS": str(delay)},
                       own_session=own)]
    if name.startswith("busy"):
        loads.append(start_wrk(c, GET_CONNS, "http_get_ids.lua",
                               {"EF_BENCH_IDS": ofile_users, "EF_BENCH_PREFIX": "/api/users"}, threads=2,
                               own_session=own))
    try:
        time.sleep(0.5)  # let the load settle
        for p in loads:
            if p.poll() is not None:
                raise harness.TestFailure("wrk exited: %s" % p.communicate()[0][-300:])
        tailer = c.pid("tailer")
        if nice is not None:
            set_nice(tailer, nice)
        s0, t0 = schedstat(tailer), cpu_ticks()
        with StallWatch() as sw:
            d, n503, rate, plain, spans, plain_spans = sample(c, users, n, sampler_rate)
        s1 = schedstat(tailer)
        busy, total = (a - b for a, b in zip(cpu_ticks(), t0))
    finally:
        for p in loads:
            stop_wrk(p)
        if nice is not None:
            set_nice(c.pid("tailer"), 0)
    a = acc.setdefault(name, [[], 0, [], [], [0, 0, 0], [], [], [], [], True])
    a[5] += plain
    a[0] += d
    # The delays of the samples that no stop of the machine overlapped.
    a[6] += [x for x, (t0, t1) in zip(d, spans) if not sw.overlaps(t0, t1)]
    a[7] += [x for x, (t0, t1) in zip(plain, plain_spans) if not sw.overlaps(t0, t1)]
    a[8] += sw.merged()
    a[9] = a[9] and sw.ok
    a[1] += n503
    a[2].append(rate)
    a[3].append(busy / total if total else float("nan"))
    a[4] = [x + y - z for x, y, z in zip(a[4], s1, s0)]
    stops = sw.merged()
    print("  %s round: %d samples, p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d x 503, %.0f commands/s, CPU %.0f%%; "
          "%s"
          % (name, len(d), pct(sorted(d), 0.5), pct(sorted(d), 0.99), max(d), n503, rate,
             100 * a[3][-1], ("machine stopped %d times (longest %.0f ms)"
                              % (len(stops), max((e - s) * 1000 for s, e in stops)) if stops else
                              "no stop of the machine") if sw.ok else "stops of the machine not watched"),
          flush=True)


def emit_stops(name, d, d_run, plain_run, stops, watched):
    """The stops of the machine seen during a case's samples, and the max of the samples
    that none of them overlapped."""
    emit("ryw_%s_vm_watched" % name, 1 if watched else 0)
    if not watched:
        print("%s: stops of the machine not watched (bench/vm_stall_watch.py needs real-time priority)"
              % name, flush=True)
        return
    longest = max([(e - s) * 1000 for s, e in stops] or [0])
    emit("ryw_%s_vm_stops" % name, len(stops))
    emit("ryw_%s_vm_stop_max_ms" % name, "%.1f" % longest)
    emit("ryw_%s_vm_stopped_samples" % name, len(d) - len(d_run))
    emit("ryw_%s_max_running_ms" % name, "%.3f" % max(d_run or [0]))
    emit("ryw_%s_plain_max_running_ms" % name, "%.3f" % max(plain_run or [0]))
    print("%s: the machine stopped %d times (longest %.1f ms), during %d samples; without them: "
          "read-your-writes max %.2f ms, plain GET max %.2f ms"
          % (name, len(stops), longest, len(d) - len(d_run), max(d_run or [0]), max(plain_run or [0])),
          flush=True)


def main():
    check(os.access(WRK, os.X_OK), "wrk not found (Debian: apt-get install wrk)")
    with Cluster("ryw", workers=WORKERS) as c:
        _, users, _, items = seed(c)
        ufile, ifile = os.path.join(c.tmp, "users.txt"), os.path.join(c.tmp, "items.txt")
        with open(ufile, "w") as f:
            f.write("\n".join(users) + "\n")
        with open(ifile, "w") as f:
            f.write("\n".join(items) + "\n")
        print("read-your-writes: %d samples per case in %d rounds, about %.0f commands/s; busy: plus "
              "%d connections of GET /api/users/{id}; %d workers per program, %d cores"
              % (SAMPLES, ROUNDS, RATE, GET_CONNS, WORKERS, os.cpu_count()), flush=True)
        emit("ryw_get_conns", GET_CONNS)
        emit("ryw_target_rate", "%.0f" % RATE)
        acc = {}
        per_round = max(1, SAMPLES // ROUNDS)
        for _ in range(ROUNDS):
            for name in CASES:
                run_case(c, name, users, ufile, ifile, ufile, per_round, acc)
        for name in CASES:
            d, n503, rates, cpu, st, plain, d_run, plain_run, stops, watched = acc[name]
            plain.sort()
            emit_stops(name, d, d_run, plain_run, stops, watched)
            emit("ryw_%s_plain_p50_ms" % name, "%.3f" % pct(plain, 0.5))
            emit("ryw_%s_plain_p99_ms" % name, "%.3f" % pct(plain, 0.99))
            emit("ryw_%s_plain_max_ms" % name, "%.3f" % plain[-1])
            print("%s: plain GET (no Min-Position) by the same client: p50 %.2f ms, p99 %.2f ms, max %.2f ms"
                  % (name, pct(plain, 0.5), pct(plain, 0.99), plain[-1]), flush=True)
            d.sort()
            emit("ryw_%s_samples" % name, len(d))
            emit("ryw_%s_p50_ms" % name, "%.3f" % pct(d, 0.5))
            emit("ryw_%s_p99_ms" % name, "%.3f" % pct(d, 0.99))
            emit("ryw_%s_max_ms" % name, "%.3f" % d[-1])
            emit("ryw_%s_503" % name, n503)
            emit("ryw_%s_commands_per_second" % name, "%.0f" % (sum(rates) / len(rates)))
            emit("ryw_%s_cpu_busy" % name, "%.3f" % (sum(cpu) / len(cpu)))
            slices = st[2] or 1
            emit("ryw_%s_tailer_cpu_ms" % name, "%.1f" % (st[0] / 1e6))
            emit("ryw_%s_tailer_runq_wait_ms" % name, "%.1f" % (st[1] / 1e6))
            emit("ryw_%s_tailer_runq_wait_per_slice_us" % name, "%.1f" % (st[1] / 1e3 / slices))
            print("%s: read-your-writes p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d x 503 (%d samples); tailer "
                  "on CPU %.0f ms, waited for a CPU %.0f ms (%.0f us per timeslice)"
                  % (name, pct(d, 0.5), pct(d, 0.99), d[-1], n503, len(d), st[0] / 1e6, st[1] / 1e6,
                     st[1] / 1e3 / slices), flush=True)
        c.verify()
    out = os.environ.get("EF_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            f.write("".join("%s=%s\n" % kv for kv in RESULTS))


if __name__ == "__main__":
    harness.run(main, budget=900)
