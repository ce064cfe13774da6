#!/usr/bin/env python3
"""report: assembles bench/report.md and bench/report.png from the sections' results.

Reads OUT/{meta,log,fold,fold_orders,wsnap,kafka,tailer,http,pg,ryw,parked,relay,mirror,snapshot}.kv (key=value lines written by bench/run.sh and the
benchmark programs), writes the Markdown report (tables with each figure, its ceiling from the
same run, the ratio, the target and whether it is met), the gnuplot data and script
(OUT/report.dat, OUT/report.gp) and runs gnuplot to draw the PNG (pngcairo, else png).
Exits 1 naming what is missing if a figure a table needs was not measured. Stdlib only.

  report.py --out DIR --md FILE --png FILE [--gnuplot PROGRAM]
"""

import argparse
import os
import subprocess
import sys

SECTIONS = ("meta", "log", "fold", "fold_orders", "wsnap", "kafka", "tailer", "http", "pg", "ryw", "parked", "relay",
            "mirror", "snapshot")
CONNS = (1, 16, 64)
MIB = 1024.0

# The targets (bench/README.md says where each comes from).
QUERY_MIN_RATIO = 0.85      # of the trivial FastCGI responder (issue 16, target 5)
COMMAND_MIN_RATIO = 0.50    # of min(group-commit append ceiling, trivial FastCGI), at 64 connections
RYW_P99_MAX_MS = 5.0
# Read-your-writes under a saturating mixed load (about 500 commands/s and 16 connections of
# GET load, section ryw): p99 and max of the delay, and no 503.
RYW_BUSY_P99_MAX_MS = 10.0
RYW_BUSY_MAX_MAX_MS = 50.0
# Commands at 64 connections against each ceiling of the same run.
COMMAND_MIN_TRIVIAL = 0.65      # of the trivial FastCGI responder
COMMAND_MIN_GROUP_APPEND = 0.40  # of the raw group-commit append ceiling
FOLD_MIN_RATE = 200000.0
REBUILD_MIN_RATE = 1000000.0        # rebuild from scratch, bench_fold's lifecycle mix
REBUILD_ORDERS_MIN_RATE = 400000.0  # rebuild from scratch, all-OrderCreated mix
WORKER_RSS_MAX_KIB = 16 * 1024
TAILER_FLAT_MAX_GROWTH = 1.25  # peak RSS at the larger log / at the smaller one
MIRROR_LAG_P99_MAX_MS = 50.0   # leader answer -> replica read model, at 2000 commands/s
KAFKA_MIN_RATIO = 0.70  # relay into Kafka, of a plain librdkafka producer loop
PARKED_P99_MAX_RATIO = 1.5     # plain-query p99 with parked waits / without
RELAY_MIN_RATIO = 0.70  # relay throughput against the engine's async publish ceiling
SNAPSHOT_RYW_MAX_MS = 50.0     # read-your-writes max while a >= 1 GB read model is copied, no 503
SNAPSHOT_MODEL_MIN_BYTES = 1e9


class Missing(Exception):
    pass


class Results:
    def __init__(self, out):
        self.kv = {}
        for s in SECTIONS:
            path = os.path.join(out, s + ".kv")
            if not os.path.exists(path):
                raise Missing("no results from section '%s' (%s)" % (s, path))
            d = {}
            with open(path) as f:
                for line in f:
                    k, sep, v = line.strip().partition("=")
                    if sep:
                        d[k] = v
            self.kv[s] = d
        self.missing = []

    def get(self, section, key, conv=float):
        v = self.kv[section].get(key)
        if v is None:
            self.missing.append("%s.%s" % (section, key))
            return float("nan") if conv is float else ""
        return conv(v)


def fmt(v, digits=0):
    if v != v:  # NaN
        return "n/a"
    return "{:,.{}f}".format(v, digits).replace(",", " ")


def ratio(a, b):
    return a / b if b and b == b and a == a else float("nan")


def pct(r):
    return "n/a" if r != r else "%.0f%%" % (100 * r)


def met(ok):
    return "**yes**" if ok else "**NO**"


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def http_rows(R, targets):
    """The throughput/latency table: one row per workload and connection count."""
    h = lambda name, c, k: R.get("http", "http_%s_c%d_%s" % (name, c, k))
    raw1 = R.get("log", "raw_appends_per_second")
    rawg = R.get("log", "raw_group_appends_per_second")
    rows = []
    labels = (("static", "nginx static file (ceiling)"), ("trivial", "trivial libfcgi responder (ceiling)"),
              ("users", "GET /api/users/{id}"), ("orders", "GET /api/orders/{id}"),
              ("create", "POST /api/orders (CreateOrder)"))
    for name, label in labels:
        for c in CONNS:
            rps = h(name, c, "rps")
            tgt, ok, ceil_name, ceil = "", "", "", float("nan")
            if name == "trivial":
                ceil_name, ceil = "nginx static", h("static", c, "rps")
            elif name in ("users", "orders"):
                ceil_name, ceil = "trivial FastCGI", h("trivial", c, "rps")
                tgt = "≥ %d%% of trivial" % (100 * QUERY_MIN_RATIO)
                good = ratio(rps, ceil) >= QUERY_MIN_RATIO
                ok = met(good)
                targets.append(("queries %s c=%d" % (name, c), good))
            elif name == "create":
                append = raw1 if c == 1 else rawg
                tri = h("trivial", c, "rps")
                if append <= tri:
                    ceil_name = "raw append+fdatasync" + (" (single)" if c == 1 else ", group of 16")
                    ceil = append
                else:
                    ceil_name, ceil = "trivial FastCGI", tri
                if c == 64:
                    tgt = "≥ %d%% of min(group append, trivial)" % (100 * COMMAND_MIN_RATIO)
                    good = ratio(rps, ceil) >= COMMAND_MIN_RATIO
                    ok = met(good)
                    targets.append(("commands c=64", good))
            errors = int(h(name, c, "errors")) if h(name, c, "errors") == h(name, c, "errors") else "n/a"
            rows.append([label, c, fmt(rps), fmt(h(name, c, "p50_ms"), 2), fmt(h(name, c, "p99_ms"), 2),
                         errors, ceil_name or "—", fmt(ceil) if ceil_name else "—",
                         pct(ratio(rps, ceil)) if ceil_name else "—", tgt or "—", ok or "—"])
    return rows


def other_rows(R, targets):
    g = R.get
    rows = []
    # Read-your-writes: the floor is one no-op round trip through nginx (trivial responder, c=1).
    floor50, floor99 = g("http", "http_trivial_c1_p50_ms"), g("http", "http_trivial_c1_p99_ms")
    p50, p99 = g("http", "ryw_p50_ms"), g("http", "ryw_p99_ms")
    rows.append(["read-your-writes delay p50 (%s samples; steady CreateOrder load: %s connections, %s commands/s)"
                 % (g("http", "ryw_samples", str), g("http", "ryw_load_conns", str),
                    fmt(g("http", "ryw_load_commands_per_second"))),
                 "%s ms" % fmt(p50, 2), "trivial round trip p50 %s ms" % fmt(floor50, 2),
                 "%.1f×" % ratio(p50, floor50), "—", "—"])
    good = p99 < RYW_P99_MAX_MS
    targets.append(("RYW p99", good))
    rows.append(["read-your-writes delay p99", "%s ms" % fmt(p99, 2), "trivial round trip p99 %s ms" % fmt(floor99, 2),
                 "%.1f×" % ratio(p99, floor99), "< %g ms" % RYW_P99_MAX_MS, met(good)])
    rows += ryw_rows(R, targets)
    rows += command_rows(R, targets)
    # Where a command's time went at 64 connections (eventfold_command_stage_seconds).
    st = [g("http", "http_create_c64_stage_%s_ms" % s) for s in ("append_lock_wait", "append_locked", "sync_wait")]
    rows.append(["CreateOrder at 64 connections, mean per command: append lock wait / lock held / fdatasync wait",
                 "%s / %s / %s ms" % (fmt(st[0], 3), fmt(st[1], 3), fmt(st[2], 3)),
                 "p50 latency %s ms" % fmt(g("http", "http_create_c64_p50_ms"), 2), "—", "—", "—"])
    # Whether the machine had CPU to spare: /proc/stat around the wrk runs (nginx, wrk, the
    # programs and the kernel together, per request).
    rows.append(["CreateOrder at 64 connections: machine CPU busy, and machine CPU time per request",
                 "%s%%, %s µs" % (fmt(100 * g("http", "http_create_c64_cpu_busy")),
                                  fmt(g("http", "http_create_c64_cpu_us_per_request"))),
                 "trivial responder sent the same POSTs: %s%%, %s µs"
                 % (fmt(100 * g("http", "http_trivial_post_c64_cpu_busy")),
                    fmt(g("http", "http_trivial_post_c64_cpu_us_per_request"))),
                 "%.1f×" % ratio(g("http", "http_create_c64_cpu_us_per_request"),
                                 g("http", "http_trivial_post_c64_cpu_us_per_request")), "—", "—"])
    # Parked waits: plain queries with thousands of requests waiting, against none waiting.
    n = g("parked", "parked_count", str)
    idle99, busy99 = g("parked", "parked_idle_p99_ms"), g("parked", "parked_busy_p99_ms")
    rows.append(["GET /api/users/{id} at %s connections, p50 with %s parked waits"
                 % (g("parked", "parked_conns", str), n),
                 "%s ms (%s req/s)" % (fmt(g("parked", "parked_busy_p50_ms"), 2), fmt(g("parked", "parked_busy_rps"))),
                 "none waiting %s ms (%s req/s)" % (fmt(g("parked", "parked_idle_p50_ms"), 2),
                                                    fmt(g("parked", "parked_idle_rps"))),
                 "%.2f×" % ratio(g("parked", "parked_busy_p50_ms"), g("parked", "parked_idle_p50_ms")), "—", "—"])
    good = ratio(busy99, idle99) <= PARKED_P99_MAX_RATIO
    targets.append(("query p99 with parked waits", good))
    rows.append(["GET /api/users/{id} at %s connections, p99 with %s parked waits"
                 % (g("parked", "parked_conns", str), n), "%s ms" % fmt(busy99, 2),
                 "none waiting %s ms" % fmt(idle99, 2), "%.2f×" % ratio(busy99, idle99),
                 "≤ %.1f× of none waiting" % PARKED_P99_MAX_RATIO, met(good)])
    rows.append(["memory per parked wait (query workers' RSS delta / %s; RssAnon alone)" % n,
                 "%s bytes" % fmt(g("parked", "parked_bytes_each")),
                 "RssAnon %s bytes" % fmt(g("parked", "parked_anon_bytes_each")), "—", "—", "—"])
    rows.append(["publish → answer of a parked wait: one at a time, p50 / p99",
                 "%s / %s ms" % (fmt(g("parked", "parked_wake_one_p50_ms"), 2), fmt(g("parked", "parked_wake_one_p99_ms"), 2)),
                 "—", "—", "—", "—"])
    rows.append(["publish → answer of a parked wait: all %s woken by one publish, p50 / p99" % n,
                 "%s / %s ms" % (fmt(g("parked", "parked_wake_all_p50_ms"), 1), fmt(g("parked", "parked_wake_all_p99_ms"), 1)),
                 "—", "—", "—", "—"])
    # Folding and rebuilds: the ceiling is reading the log back (framing + checksums).
    n = g("fold", "log_events")
    fold, scan = g("fold", "fold_events_per_second"), g("fold", "scan_events_per_second")
    good = fold >= FOLD_MIN_RATE
    targets.append(("folding rate", good))
    rows.append(["folding rate from position 1, %s events (per CPU-second: %s)"
                 % (fmt(n), fmt(g("fold", "fold_events_per_cpu_second"))),
                 "%s events/s" % fmt(fold), "log scan %s events/s" % fmt(scan), pct(ratio(fold, scan)),
                 "≥ %s events/s" % fmt(FOLD_MIN_RATE), met(good)])
    # Rebuilds from scratch, both mixes: against the log scan and against the scan that also
    # parses every event (rmodel_ev_parse), the floor of any fold.
    for sec, name, label, floor in (
            ("fold", "lifecycle", "lifecycle mix (60% cheap transitions)", REBUILD_MIN_RATE),
            ("fold_orders", "all-OrderCreated", "all-OrderCreated mix (10 000 users, 200 items, 1-3 lines)",
             REBUILD_ORDERS_MIN_RATE)):
        rate = g(sec, "rebuild_from_scratch_events_per_second")
        cpu = g(sec, "rebuild_from_scratch_cpu_seconds")
        events = g(sec, "rebuild_from_scratch_position")
        good = rate >= floor
        targets.append(("rebuild from scratch, %s" % name, good))
        runs = R.kv[sec].get("rebuild_from_scratch_runs", "")
        rows.append(["rebuild from scratch, %s, %s events, %s s (%sper CPU-second: %s events)"
                     % (label, fmt(events), fmt(g(sec, "rebuild_from_scratch_seconds"), 2),
                        "median of runs of %s s; " % runs.replace(",", ", ") if "," in runs else "",
                        fmt(ratio(events, cpu))),
                     "%s events/s" % fmt(rate),
                     "log scan %s events/s; scan + parse %s events/s" % (fmt(g(sec, "scan_events_per_second")),
                                                                      fmt(g(sec, "parse_events_per_second"))),
                     "%s of scan, %s of scan + parse" % (pct(ratio(rate, g(sec, "scan_events_per_second"))),
                                                         pct(ratio(rate, g(sec, "parse_events_per_second")))),
                     "≥ %s events/s" % fmt(floor), met(good)])
    raw_ms = g("fold", "raw_write_ms")
    rsnap = g("fold", "rebuild_from_snapshot_seconds")
    spos = g("fold", "rebuild_snapshot_position")
    rows.append(["rebuild from a snapshot at position %s (restore, then fold the last %s events)"
                 % (fmt(spos), fmt(n - spos)), "%s s" % fmt(rsnap, 2),
                 "raw write of the full snapshot's size %s s" % fmt(raw_ms / 1000, 2),
                 pct(ratio(raw_ms / 1000, rsnap)), "—", "—"])
    snap_ms = g("fold", "snapshot_ms")
    rows.append(["snapshot time (model at the head)", "%s ms" % fmt(snap_ms), "raw write of snapshot size %s ms" % fmt(raw_ms),
                 pct(ratio(raw_ms, snap_ms)), "—", "—"])
    sb, lb = g("fold", "snapshot_bytes"), g("fold", "log_bytes")
    rows.append(["snapshot size", "%s MiB" % fmt(sb / MIB / MIB, 1), "log size %s MiB" % fmt(lb / MIB / MIB, 1),
                 "%.2f× the log" % ratio(sb, lb), "—", "—"])
    # The command side's start: a write-model snapshot plus the log after it, against a full replay.
    full, rest = g("wsnap", "full_replay_ms"), g("wsnap", "restore_ms")
    rows.append(["write model from a snapshot at position %s + the last %s events (log of %s)"
                 % (fmt(g("wsnap", "snapshot_position")), fmt(g("wsnap", "restore_replayed")),
                    fmt(g("wsnap", "wsnap_events"))),
                 "%s ms" % fmt(rest), "full replay of the log %s ms" % fmt(full),
                 "%.1f× faster" % ratio(full, rest), "—", "—"])
    rows.append(["write-model snapshot time / size", "%s ms / %s MiB" % (fmt(g("wsnap", "snapshot_ms")),
                 fmt(g("wsnap", "snapshot_bytes") / MIB / MIB, 1)), "—", "—", "—", "—"])
    # The Kafka sink: the real relay against a plain producer loop of the same messages.
    kr, kc = g("kafka", "kafka_relay_events_per_second"), g("kafka", "kafka_ceiling_events_per_second")
    good = ratio(kr, kc) >= KAFKA_MIN_RATIO
    targets.append(("relay to Kafka", good))
    rows.append(["eventfold-relay --sink kafka, %s events into the mock cluster (better of 2 runs)"
                 % fmt(g("kafka", "kafka_events")), "%s events/s" % fmt(kr),
                 "plain librdkafka producer loop %s events/s" % fmt(kc), pct(ratio(kr, kc)),
                 "≥ %d%% of the producer loop" % (100 * KAFKA_MIN_RATIO), met(good)])
    # Appends through the log vs the raw ceilings.
    rows.append(["log_append, single writer", "%s appends/s" % fmt(g("log", "log_single_appends_per_second")),
                 "raw pwrite+fdatasync %s /s" % fmt(g("log", "raw_appends_per_second")),
                 pct(ratio(g("log", "log_single_appends_per_second"), g("log", "raw_appends_per_second"))), "—", "—"])
    rows.append(["log_append, group commit, 16 processes (%s appends/fdatasync)"
                 % fmt(g("log", "log_group_appends_per_fdatasync"), 1),
                 "%s appends/s" % fmt(g("log", "log_group_appends_per_second")),
                 "raw group commit %s /s" % fmt(g("log", "raw_group_appends_per_second")),
                 pct(ratio(g("log", "log_group_appends_per_second"), g("log", "raw_group_appends_per_second"))),
                 "—", "—"])
    # Memory: VmHWM at the end of the HTTP load; the floor is the trivial responder's worker.
    triv = g("http", "rss_trivial_worker_max_kib")
    for prog in ("command", "query"):
        v = g("http", "rss_%s_worker_max_kib" % prog)
        good = v < WORKER_RSS_MAX_KIB
        targets.append(("%s worker RSS" % prog, good))
        rows.append(["%s workers: peak RSS, max of %s (VmHWM, end of load; now: private %s MiB, file-backed %s MiB)"
                     % (prog, g("http", "rss_%s_workers" % prog, str),
                        fmt(g("http", "rss_%s_worker_anon_max_kib" % prog) / MIB, 1),
                        fmt(g("http", "rss_%s_worker_file_max_kib" % prog) / MIB, 1)),
                     "%s MiB" % fmt(v / MIB, 1), "trivial responder worker %s MiB" % fmt(triv / MIB, 1),
                     "%.1f×" % ratio(v, triv), "< %d MiB" % (WORKER_RSS_MAX_KIB // 1024), met(good)])
        # The same limit on private memory alone, not counted as a target: the file-backed
        # part of the resident set is the LMDB map's page cache, shared with every process
        # that maps it and freed by the kernel under pressure, not memory of the worker.
        a = g("http", "rss_%s_worker_anon_max_kib" % prog)
        rows.append(["%s workers: private memory (RssAnon at the end of the load), max of %s"
                     % (prog, g("http", "rss_%s_workers" % prog, str)),
                     "%s MiB" % fmt(a / MIB, 1), "—", "—",
                     "(the same limit on private memory, not counted)",
                     "yes" if a < WORKER_RSS_MAX_KIB else "no"])
    rows.append(["tailer: peak RSS at the end of the HTTP load (%s events; anon now %s MiB)"
                 % (fmt(g("http", "head_position")), fmt(g("http", "rss_tailer_anon_kib") / MIB, 1)),
                 "%s MiB" % fmt(g("http", "rss_tailer_kib") / MIB, 1), "—", "—", "—", "—"])
    h1, h2 = g("tailer", "tailer_vmhwm_kib_1"), g("tailer", "tailer_vmhwm_kib_2")
    a1, a2 = g("tailer", "tailer_rss_anon_kib_1"), g("tailer", "tailer_rss_anon_kib_2")
    e1, e2 = g("tailer", "tailer_events_1"), g("tailer", "tailer_events_2")
    rows.append(["tailer: peak RSS after folding %s events (anon %s MiB)" % (fmt(e1), fmt(a1 / MIB, 1)),
                 "%s MiB" % fmt(h1 / MIB, 1), "—", "—", "—", "—"])
    good = ratio(h2, h1) <= TAILER_FLAT_MAX_GROWTH
    targets.append(("tailer RSS flat", good))
    rows.append(["tailer: peak RSS after folding %s events (anon %s MiB)" % (fmt(e2), fmt(a2 / MIB, 1)),
                 "%s MiB" % fmt(h2 / MIB, 1), "at %s events %s MiB" % (fmt(e1), fmt(h1 / MIB, 1)),
                 "%.2f×" % ratio(h2, h1), "flat (≤ %.2f×)" % TAILER_FLAT_MAX_GROWTH, met(good)])
    rows.append(["tailer: private memory (RssAnon) after folding %s events, against %s events"
                 % (fmt(e2), fmt(e1)), "%s MiB" % fmt(a2 / MIB, 1), "%s MiB" % fmt(a1 / MIB, 1),
                 "%.2f×" % ratio(a2, a1), "(the same limit on private memory, not counted)",
                 "yes" if ratio(a2, a1) <= TAILER_FLAT_MAX_GROWTH else "no"])
    rows += mirror_rows(R, targets)
    return rows


def ryw_rows(R, targets):
    """Read-your-writes at about 500 commands/s, without and with a GET load (section ryw);
    the floor is a plain GET (no Min-Position) sent by the same client right after."""
    g = R.get
    rows = []
    for case, what in (("idle", "no query load"), ("busy", "plus %s connections of GET load"
                                                   % g("ryw", "ryw_get_conns", str))):
        p50, p99, mx = (g("ryw", "ryw_%s_%s_ms" % (case, k)) for k in ("p50", "p99", "max"))
        f50, f99, fmx = (g("ryw", "ryw_%s_plain_%s_ms" % (case, k)) for k in ("p50", "p99", "max"))
        n503 = g("ryw", "ryw_%s_503" % case)
        label = ("read-your-writes delay, %s commands/s, %s (%s samples, machine CPU %s%% busy): p50 / p99 / max, "
                 "503s" % (fmt(g("ryw", "ryw_%s_commands_per_second" % case)), what,
                           g("ryw", "ryw_%s_samples" % case, str), fmt(100 * g("ryw", "ryw_%s_cpu_busy" % case))))
        tgt, ok = "—", "—"
        value = "%s / %s / %s ms, %s" % (fmt(p50, 2), fmt(p99, 2), fmt(mx, 1), fmt(n503))
        floor = "plain GET, same client: %s / %s / %s ms" % (fmt(f50, 2), fmt(f99, 2), fmt(fmx, 1))
        # Stops of the whole machine (its host not running it: bench/vm_stall_watch.py) stop
        # every process alike; the max is judged on the samples none of them overlapped, and
        # both are shown.
        mx_run, stops = mx, ""
        if g("ryw", "ryw_%s_vm_watched" % case) == 1:
            n_stops = g("ryw", "ryw_%s_vm_stops" % case)
            if n_stops:
                mx_run = g("ryw", "ryw_%s_max_running_ms" % case)
                stops = ("; the machine stopped %s times (longest %s ms), during %s samples: max %s ms "
                         "without them (plain GET %s ms)"
                         % (fmt(n_stops), fmt(g("ryw", "ryw_%s_vm_stop_max_ms" % case)),
                            fmt(g("ryw", "ryw_%s_vm_stopped_samples" % case)), fmt(mx_run, 1),
                            fmt(g("ryw", "ryw_%s_plain_max_running_ms" % case), 1)))
        else:
            stops = "; stops of the machine not watched"
        if case == "busy":
            good = p99 <= RYW_BUSY_P99_MAX_MS and mx_run <= RYW_BUSY_MAX_MAX_MS and n503 == 0
            targets.append(("RYW under mixed load", good))
            tgt, ok = ("p99 ≤ %g ms, max ≤ %g ms (outside stops of the machine), no 503"
                       % (RYW_BUSY_P99_MAX_MS, RYW_BUSY_MAX_MAX_MS), met(good))
        rows.append([label, value + stops, floor,
                     "%.2f× / %.2f× / %.2f×" % (ratio(p50, f50), ratio(p99, f99), ratio(mx, fmx)), tgt, ok])
    return rows


def command_rows(R, targets):
    """CreateOrder at 64 connections against the trivial responder, the raw group-commit
    append ceiling and PostgreSQL's own create-order transaction, all of the same run."""
    g = R.get
    rows = []
    rps = g("http", "http_create_c64_rps")
    tri, grp = g("http", "http_trivial_post_c64_rps"), g("log", "raw_group_appends_per_second")
    rounds = R.kv["http"].get("http_create_c64_round_ratios", "")
    if rounds:
        # Alternating runs (http_bench.py, command_rounds): the median round's ratio to the
        # mean of the trivial runs around it.
        ratios = [float(x) for x in rounds.split(",")]
        med = g("http", "http_create_c64_ratio_median")
        name = ("trivial FastCGI responder, 64 connections, sent the same POSTs (%d CreateOrder "
                "runs, each between two trivial runs: %s of the trivial runs around it, median "
                "kept; against the best trivial run of all %s; CreateOrder %s, trivial %s req/s)"
                % (len(ratios), ", ".join(pct(x) for x in ratios),
                   pct(g("http", "http_create_c64_ratio_best_trivial")),
                   R.kv["http"].get("http_create_c64_round_rps", "?").replace(",", ", "),
                   R.kv["http"].get("http_trivial_post_c64_round_rps", "?").replace(",", ", ")))
    else:
        med, name = ratio(rps, tri), "trivial FastCGI responder, 64 connections, sent the same POSTs"
    good = med >= COMMAND_MIN_TRIVIAL
    targets.append(("commands c=64 vs trivial FastCGI responder", good))
    rows.append(["CreateOrder at 64 connections against the %s" % name, "%s req/s" % fmt(rps),
                 "%s /s" % fmt(tri), pct(med), "≥ %d%%" % (100 * COMMAND_MIN_TRIVIAL), met(good)])
    good = ratio(rps, grp) >= COMMAND_MIN_GROUP_APPEND
    targets.append(("commands c=64 vs raw group-commit append ceiling", good))
    rows.append(["CreateOrder at 64 connections against the raw group-commit append ceiling",
                 "%s req/s" % fmt(rps), "%s /s" % fmt(grp), pct(ratio(rps, grp)),
                 "≥ %d%%" % (100 * COMMAND_MIN_GROUP_APPEND), met(good)])
    if R.get("pg", "pg_skipped", str) == "1":
        rows.append(["PostgreSQL create-order transaction (pgbench)", "skipped: %s"
                     % R.kv["pg"].get("pg_skip_reason", "?").replace("_", " "), "—", "—", "—", "—"])
        return rows
    pg = g("pg", "pg_tps")
    rows.append(["PostgreSQL %s create-order transaction (pgbench, %s clients, unix socket, fsync and "
                 "synchronous_commit on; %s failed; machine CPU %s µs per transaction)"
                 % (g("pg", "pg_version", str), g("pg", "pg_clients", str), fmt(g("pg", "pg_failed")),
                    fmt(g("pg", "pg_cpu_us_per_tx"))),
                 "%s tx/s" % fmt(pg), "—", "—", "—", "—"])
    rows.append(["CreateOrder at 64 connections (through nginx) against PostgreSQL's create-order "
                 "transaction (no HTTP)", "%s req/s" % fmt(rps), "%s tx/s" % fmt(pg),
                 "%.2f×" % ratio(rps, pg), "—", "—"])
    return rows


def mirror_rows(R, targets):
    """eventfold-mirror: catch-up against a plain consumer and the local append ceiling;
    replication lag under a steady load, with three NATS nodes and with one killed."""
    g = R.get
    rows = []
    rate, plain = g("mirror", "mirror_catchup_events_per_second"), g("mirror", "mirror_consume_events_per_second")
    rows.append(["mirror catch-up into an empty replica (%s events from a 3-replica stream: checked, "
                 "appended, fdatasync'd in batches)" % fmt(g("mirror", "mirror_events")),
                 "%s events/s" % fmt(rate), "plain ordered consumer %s events/s" % fmt(plain),
                 pct(ratio(rate, plain)), "—", "—"])
    group = g("log", "log_group_appends_per_second")
    rows.append(["mirror catch-up against the local append ceiling", "%s events/s" % fmt(rate),
                 "log_append group commit %s appends/s" % fmt(group), pct(ratio(rate, group)), "—", "—"])
    for tag, what in (("", "3 NATS nodes"), ("_one_node_down", "the stream's leader node killed, 2 of 3 left")):
        p50, p99 = g("mirror", "mirror_lag%s_p50_ms" % tag), g("mirror", "mirror_lag%s_p99_ms" % tag)
        good = p99 < MIRROR_LAG_P99_MAX_MS
        targets.append(("replication lag p99%s" % tag.replace("_", " "), good))
        rows.append(["replication lag, leader answer -> replica read model (Min-Position), %s; steady "
                     "CreateOrder load %s commands/s (aimed at %s), %s samples: p50 / p99"
                     % (what, fmt(g("mirror", "mirror_lag%s_load_commands_per_second" % tag)),
                        fmt(g("mirror", "mirror_lag_target_rate")), fmt(g("mirror", "mirror_lag%s_samples" % tag))),
                     "%s / %s ms" % (fmt(p50, 1), fmt(p99, 1)),
                     "leader read-your-writes p50 %s ms" % fmt(g("http", "ryw_p50_ms"), 2),
                     "%.1f×" % ratio(p50, g("http", "ryw_p50_ms")), "p99 < %g ms" % MIRROR_LAG_P99_MAX_MS,
                     met(good)])
    # The relay: eventfold-relay --sink nats against a plain async publish loop (same message
    # size and headers, same window) into an R3 stream of the same three-node cluster.
    rr, rc = g("relay", "relay_events_per_s"), g("relay", "ceiling_events_per_s")
    good = ratio(rr, rc) >= RELAY_MIN_RATIO
    targets.append(("relay to NATS", good))
    rows.append(["relay to an R3 JetStream stream, %s events of about %s bytes"
                 % (fmt(g("relay", "relay_events")), fmt(g("relay", "relay_body_bytes"))),
                 "%s events/s" % fmt(rr), "async publish loop %s msgs/s" % fmt(rc), pct(ratio(rr, rc)),
                 "≥ %d%%" % (100 * RELAY_MIN_RATIO), met(good)])
    return rows


def snapshot_rows(R, targets):
    """Read-your-writes while the tailer snapshots a large read model (bench/snapshot_pause.py),
    against the samples of the same run taken between snapshots."""
    g = R.get
    size = g("snapshot", "snapshot_model_bytes")
    big = size >= SNAPSHOT_MODEL_MIN_BYTES
    mx, n503 = g("snapshot", "ryw_snap_max_ms"), g("snapshot", "ryw_snap_503")
    # As for the read-your-writes section: the max is judged outside stops of the machine.
    mx_run, stops = mx, "; stops of the machine not watched"
    if g("snapshot", "ryw_snap_vm_watched") == 1:
        stops = ""
        if g("snapshot", "ryw_snap_vm_stops"):
            mx_run = g("snapshot", "ryw_snap_max_running_ms")
            stops = ("; the machine stopped %s times (longest %s ms), during %s of these samples: max %s ms "
                     "without them" % (fmt(g("snapshot", "ryw_snap_vm_stops")),
                                       fmt(g("snapshot", "ryw_snap_vm_stop_max_ms")),
                                       fmt(g("snapshot", "ryw_snap_vm_stopped_samples")), fmt(mx_run, 1)))
    good = big and mx_run < SNAPSHOT_RYW_MAX_MS and n503 == 0
    targets.append(("RYW max during a snapshot", good))
    what = ("read-your-writes while the tailer snapshots a %s MB read model (%s copies, the longest %s ms; "
            "steady CreateOrder load %s commands/s), %s samples overlapping a copy: p50 / p99 / max, 503s"
            % (fmt(size / 1e6), fmt(g("snapshot", "snapshot_count")), fmt(g("snapshot", "snapshot_copy_ms_max")),
               fmt(g("snapshot", "snapshot_load_commands_per_second")), fmt(g("snapshot", "ryw_snap_samples"))))
    rows = [[what,
             "%s / %s / %s ms, %s" % (fmt(g("snapshot", "ryw_snap_p50_ms"), 2), fmt(g("snapshot", "ryw_snap_p99_ms"), 2),
                                       fmt(mx, 1), fmt(n503)) + stops,
             "between snapshots (%s samples): %s / %s / %s ms, %s"
             % (fmt(g("snapshot", "ryw_between_samples")), fmt(g("snapshot", "ryw_between_p50_ms"), 2),
                fmt(g("snapshot", "ryw_between_p99_ms"), 2), fmt(g("snapshot", "ryw_between_max_ms"), 1),
                fmt(g("snapshot", "ryw_between_503"))),
             "max %.2f×" % ratio(mx, g("snapshot", "ryw_between_max_ms")),
             "max < %g ms (outside stops of the machine), no 503, model ≥ 1 GB%s"
             % (SNAPSHOT_RYW_MAX_MS, "" if big else " (smaller here)"),
             met(good)]]
    return rows


def ceiling_rows(R):
    g = R.get
    rows = []
    for name, label in (("static", "nginx serving a static file"), ("trivial", "trivial libfcgi responder")):
        rows.append([label + " (better of the runs before and after the routes)",
                     " / ".join("%s (%s, %s)" % (fmt(g("http", "http_%s_c%d_rps" % (name, c))),
                                                 fmt(g("http", "http_%s_c%d_rps_first" % (name, c))),
                                                 fmt(g("http", "http_%s_c%d_rps_second" % (name, c))))
                                for c in CONNS) + " req/s"])
    rows.append(["raw append+fdatasync, one record per fdatasync: better of growing file (%s) and "
                 "pre-allocated file (%s)" % (fmt(g("log", "raw_growing_appends_per_second")),
                                              fmt(g("log", "raw_prealloc_appends_per_second"))),
                 "%s /s" % fmt(g("log", "raw_appends_per_second"))])
    rows.append(["raw append+fdatasync with group commit: better of 16 records per fdatasync (%s) and "
                 "16 processes syncing at once (%s)" % (fmt(g("log", "raw_group_batched_appends_per_second")),
                                                        fmt(g("log", "raw_group_concurrent_appends_per_second"))),
                 "%s records/s" % fmt(g("log", "raw_group_appends_per_second"))])
    rows.append(["log scan (read back + checksums, no folding)", "%s events/s" % fmt(g("fold", "scan_events_per_second"))])
    rows.append(["log scan + parsing every event as the fold does (rmodel_ev_parse), lifecycle / all-OrderCreated mix",
                 "%s / %s events/s" % (fmt(g("fold", "parse_events_per_second")),
                                       fmt(g("fold_orders", "parse_events_per_second")))])
    rows.append(["raw sequential write + fdatasync of the snapshot's size", "%s ms" % fmt(g("fold", "raw_write_ms"))])
    rows.append(["plain ordered JetStream consumer (bench/bench_consume, no checks, no disk)",
                 "%s events/s" % fmt(g("mirror", "mirror_consume_events_per_second"))])
    return rows


def write_plot(R, out, png, gnuplot):
    dat = os.path.join(out, "report.dat")
    names = ("static", "trivial", "users", "orders", "create")
    with open(dat, "w") as f:
        f.write("# conns " + " ".join("%s_rps %s_p50 %s_p99" % (n, n, n) for n in names) + "\n")
        for c in CONNS:
            vals = []
            for n in names:
                vals += [R.get("http", "http_%s_c%d_%s" % (n, c, k)) for k in ("rps", "p50_ms", "p99_ms")]
            f.write("%d %s\n" % (c, " ".join("%.4g" % v for v in vals)))
    titles = ("nginx static file", "trivial libfcgi", "GET /api/users/{id}", "GET /api/orders/{id}",
              "POST /api/orders")
    colors = ("#888888", "#000000", "#1f77b4", "#2ca02c", "#d62728")
    term = "pngcairo size 1400,600 noenhanced font 'sans,10'"
    probe = subprocess.run([gnuplot, "-e", "set terminal pngcairo"], capture_output=True, text=True)
    if probe.returncode != 0 or "unknown" in probe.stderr.lower():
        term = "png size 1400,600 noenhanced"
    tput = ", ".join("'%s' using 1:%d with linespoints lw 2 pt 7 lc rgb '%s' title '%s'"
                     % (dat, 2 + 3 * i, colors[i], titles[i]) for i in range(len(names)))
    lat = ", ".join("'%s' using 1:%d with linespoints lw 2 pt 7 lc rgb '%s' title '%s p50', "
                    "'%s' using 1:%d with linespoints lw 1 dt 2 pt 6 lc rgb '%s' title '%s p99'"
                    % (dat, 3 + 3 * i, colors[i], titles[i], dat, 4 + 3 * i, colors[i], titles[i])
                    for i in range(len(names)))
    meta = R.kv["meta"]
    gp = os.path.join(out, "report.gp")
    with open(gp, "w") as f:
        f.write("""set terminal %s
set output '%s'
set multiplot layout 1,2 title 'eventfold through nginx, %s (%s CPUs, load %s at start), %s s per point'
set logscale x 2
set xtics (1, 16, 64)
set xrange [0.8:80]
set xlabel 'connections'
set logscale y
set grid
set key top left
set title 'throughput'
set ylabel 'requests/s'
plot %s
set title 'latency (p50 solid, p99 dashed)'
set ylabel 'ms'
set key top left font ',8'
plot %s
unset multiplot
""" % (term, png, meta.get("date", "?"), meta.get("cpus", "?"), meta.get("loadavg_start", "?"),
           R.kv["http"].get("http_seconds", "?"), tput, lat))
    p = subprocess.run([gnuplot, gp], capture_output=True, text=True)
    if p.returncode != 0 or not os.path.exists(png) or os.path.getsize(png) == 0:
        raise Missing("gnuplot failed (%s): %s" % (gp, p.stderr.strip()[-500:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--png", required=True)
    ap.add_argument("--gnuplot", default="gnuplot")
    a = ap.parse_args()
    try:
        R = Results(a.out)
        for sec, s in (("fold", "fold_status"), ("fold", "snapshot_status"), ("fold", "rebuild_from_scratch_status"),
                       ("fold", "rebuild_from_snapshot_status"), ("fold_orders", "rebuild_from_scratch_status")):
            if R.get(sec, s, str) not in ("0", ""):
                raise Missing("bench_fold: %s %s=%s" % (sec, s, R.kv[sec][s]))
        targets = []
        t1 = http_rows(R, targets)
        t2 = other_rows(R, targets) + snapshot_rows(R, targets)
        t3 = ceiling_rows(R)
        if R.missing:
            raise Missing("figures missing from the sections' output: " + ", ".join(sorted(set(R.missing))))
        write_plot(R, a.out, a.png, a.gnuplot)
    except Missing as e:
        print("report.py: " + str(e), file=sys.stderr)
        return 1
    m = R.kv["meta"]
    nmet = sum(1 for _, ok in targets if ok)
    lines = [
        "# eventfold benchmark report",
        "",
        "`make bench` on %s (%s CPUs), %s, commit %s%s. Wall time %s s. Load average %s at the start, "
        "%s at the end (other work on the machine makes figures noisy; every ratio is to a ceiling "
        "measured in this same run). %s s per wrk run, %s workers per program, nginx 2 workers."
        % (m.get("host"), m.get("cpus"), m.get("date"), m.get("commit"),
           ", **quick sizes**" if m.get("quick") == "1" else "", m.get("wall_seconds"),
           m.get("loadavg_start"), m.get("loadavg_end"), R.kv["http"].get("http_seconds"),
           R.kv["http"].get("http_workers")),
        "",
        "Targets met: **%d of %d**%s." % (nmet, len(targets),
                                         "" if nmet == len(targets) else " (not met: %s)"
                                         % ", ".join(n for n, ok in targets if not ok)),
        "",
        "## Throughput and latency through nginx",
        "",
        md_table(["workload", "conns", "req/s", "p50 ms", "p99 ms", "errors", "ceiling", "ceiling req/s",
                  "ratio", "target", "met?"], t1),
        "",
        "Ceilings are measured before and after the routes at each connection count; the better run "
        "is kept. Command ceiling: min(raw append+fdatasync ceiling, trivial FastCGI at the same "
        "connections); the append ceiling is one record per fdatasync at 1 connection, the raw "
        "group-commit ceiling at 16 and 64. A ratio above 100% means the machine's load changed "
        "between runs.",
        "",
        "## Read-your-writes, folding, snapshots, appends, memory, replicas",
        "",
        md_table(["figure", "value", "ceiling (same run)", "ratio", "target", "met?"], t2),
        "",
        "## Ceilings measured in this run",
        "",
        md_table(["ceiling", "value (1 / 16 / 64 connections where applicable)"], t3),
        "",
        "![throughput and latency against connections](report.png)",
        "",
    ]
    with open(a.md, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
