#!/usr/bin/env python3
"""pg_bench: PostgreSQL's own create-order transaction, the peer of eventfold's CreateOrder.

Starts a private PostgreSQL cluster (initdb in a temporary directory, listening on a unix
socket in it only, no TCP port), seeds it with the shapes http_bench.py gives eventfold
(200 users, 200 items with ample stock), runs bench/pg_create_order.sql with pgbench at
EF_BENCH_PG_CLIENTS (64) clients for EF_BENCH_SECONDS, twice after a warm-up run (the better run kept, as the
HTTP ceilings are), checks that what was committed adds up (orders, lines, stock), then
stops the server by its PID and removes the directory. Durability as shipped: fsync,
synchronous_commit and full_page_writes on; READ COMMITTED with row locks: one call of a
PL/pgSQL function per transaction (see the script and create_order() below).

Run as root (CI), the server runs as an unprivileged user, EF_BENCH_PG_USER (nobody), since
PostgreSQL refuses to run as root. Without PostgreSQL's programs (Debian: postgresql,
whose postgresql-15 has initdb, pg_ctl and pgbench), it prints why and writes pg_skipped=1,
which the report shows instead of the ratio.

Environment: EF_BENCH_SECONDS (5), EF_BENCH_PG_CLIENTS (64), EF_BENCH_PG_USER (nobody),
EF_BENCH_DIR (parent of the temporary directory; /tmp), EF_SRCDIR, EF_BENCH_OUT (key=value
results for bench/report.py)."""

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SECONDS = int(os.environ.get("EF_BENCH_SECONDS", "5"))
CLIENTS = int(os.environ.get("EF_BENCH_PG_CLIENTS", "64"))
USERS, ITEMS, STOCK = 200, 200, 1000000000
RUNS = 2
RESULTS = []


def emit(key, value):
    RESULTS.append((key, value))
    print("%s=%s" % (key, value), flush=True)


def write_out():
    out = os.environ.get("EF_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            f.write("".join("%s=%s\n" % kv for kv in RESULTS))


def skip(reason):
    print("pg: skipped: %s" % reason, flush=True)
    emit("pg_skipped", 1)
    emit("pg_skip_reason", reason.replace(" ", "_"))
    write_out()
    sys.exit(0)


def find_bindir():
    """The newest /usr/lib/postgresql/VERSION/bin with every program needed."""
    need = ("initdb", "postgres", "pgbench", "psql")
    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
            if all(os.access(os.path.join(d, p), os.X_OK) for p in need)]
    dirs.sort(key=lambda d: int(re.sub(r"\D", "", d.split("/")[-2]) or 0))
    return dirs[-1] if dirs else None


def cpu_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


class Server:
    """A private cluster in tmp, run as user (None: as ourselves); stopped by its PID."""

    def __init__(self, bindir, tmp, user):
        self.bindir, self.tmp, self.user = bindir, tmp, user
        self.data = os.path.join(tmp, "data")
        self.proc = None
        self.run_as = {}
        if user is not None:
            self.run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def prog(self, name):
        return os.path.join(self.bindir, name)

    def start(self):
        subprocess.run([self.prog("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--locale=C", "--no-sync"], check=True, capture_output=True,
                       cwd=self.tmp, timeout=120, **self.run_as)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            # Unix socket in our own directory only: no port to collide with anything.
            f.write("listen_addresses = ''\nunix_socket_directories = '%s'\n" % self.tmp)
            f.write("max_connections = %d\nshared_buffers = 128MB\n" % (CLIENTS + 16))
            # The durable defaults, stated: a commit is answered after its WAL is on disk.
            f.write("fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n")
        log = open(os.path.join(self.tmp, "postgres.log"), "w")
        self.proc = subprocess.Popen([self.prog("postgres"), "-D", self.data], stdout=log,
                                     stderr=subprocess.STDOUT, cwd=self.tmp, **self.run_as)
        log.close()
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: " + self.log_tail())
            if self.psql("SELECT 1", check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not accept connections in 60 s: " + self.log_tail())
            time.sleep(0.2)

    def log_tail(self):
        try:
            with open(os.path.join(self.tmp, "postgres.log")) as f:
                return f.read()[-500:]
        except OSError:
            return "(no log)"

    def psql(self, sql, check=True):
        return subprocess.run([self.prog("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                               "-h", self.tmp, "-U", "postgres", "-d", "postgres", "-f", "-"],
                              input=sql, capture_output=True, text=True, check=check, timeout=300)

    def stop(self):
        """Fast shutdown (SIGINT) of our postmaster, by its PID; SIGKILL after 30 s."""
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


SCHEMA = """
CREATE TABLE users (user_id text PRIMARY KEY, name text NOT NULL, email text NOT NULL);
CREATE TABLE items (item_id text PRIMARY KEY, name text NOT NULL, category text NOT NULL,
                    price_cents bigint NOT NULL, stock bigint NOT NULL);
CREATE TABLE orders (order_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text NOT NULL,
                     amount_cents bigint NOT NULL, status text NOT NULL DEFAULT 'created',
                     created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE order_lines (order_id uuid NOT NULL, item_id text NOT NULL, name text NOT NULL,
                          category text NOT NULL, quantity bigint NOT NULL,
                          price_cents bigint NOT NULL, PRIMARY KEY (order_id, item_id));
INSERT INTO users SELECT 'bench-u' || i, 'Bench user ' || i, 'bench-u' || i || '@example.com'
  FROM generate_series(1, %(users)d) i;
INSERT INTO items SELECT 'bench-i' || i, 'Bench item ' || i, 'bench', 100, %(stock)d
  FROM generate_series(1, %(items)d) i;
-- The command's checks and writes: the user exists, every item exists and has the stock
-- (the item rows locked in item order, so that concurrent orders cannot deadlock), then the
-- stock is decremented and the order and its lines inserted with the names, prices and the
-- amount. Returns the new order's id, or NULL when a check fails (nothing written).
CREATE FUNCTION create_order(p_user text, p_items text[]) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    n int;
    amount bigint;
    short int;
    oid uuid;
BEGIN
    PERFORM 1 FROM users WHERE user_id = p_user;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT count(*), sum(price_cents), count(*) FILTER (WHERE stock < 1) INTO n, amount, short
      FROM (SELECT price_cents, stock FROM items WHERE item_id = ANY (p_items)
             ORDER BY item_id FOR UPDATE) AS locked;
    IF n <> cardinality(p_items) OR short > 0 THEN
        RETURN NULL;
    END IF;
    UPDATE items SET stock = stock - 1 WHERE item_id = ANY (p_items);
    INSERT INTO orders (user_id, amount_cents) VALUES (p_user, amount) RETURNING order_id INTO oid;
    INSERT INTO order_lines (order_id, item_id, name, category, quantity, price_cents)
    SELECT oid, item_id, name, category, 1, price_cents FROM items WHERE item_id = ANY (p_items);
    RETURN oid;
END $$;
VACUUM ANALYZE;
CHECKPOINT;
""" % {"users": USERS, "items": ITEMS, "stock": STOCK}


def pgbench(srv, script, seconds=SECONDS):
    """One pgbench run; returns (tps, mean latency ms, failed transactions, machine CPU us/tx)."""
    argv = [srv.prog("pgbench"), "-n", "-M", "prepared", "-c", str(CLIENTS), "-j", str(min(2, CLIENTS)),
            "-T", str(seconds), "-D", "users=%d" % USERS, "-D", "items=%d" % ITEMS, "-f", script,
            "-h", srv.tmp, "-U", "postgres", "postgres"] + os.environ.get("EF_BENCH_PG_EXTRA", "").split()
    t0 = cpu_ticks()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    busy, total = (a - b for a, b in zip(cpu_ticks(), t0))
    if os.environ.get("EF_BENCH_PG_VERBOSE"):
        print(p.stdout, flush=True)
    if p.returncode != 0:
        raise RuntimeError("pgbench failed (%d): %s" % (p.returncode, (p.stderr + p.stdout)[-800:]))
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", p.stdout)
    lat = re.search(r"latency average = ([\d.]+) ms", p.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", p.stdout)
    if not m and not re.search(r"number of transactions actually processed: 0\b", p.stdout):
        raise RuntimeError("no tps in pgbench's output: " + p.stdout[-800:])
    tps = float(m.group(1)) if m else 0.0  # none committed in the run (a starved machine)
    cpu_us = (busy / total) * os.cpu_count() * 1e6 / tps if total and tps else float("nan")
    return tps, float(lat.group(1)) if lat else float("nan"), int(failed.group(1)) if failed else 0, cpu_us


def check_consistent(srv):
    """What was committed adds up: every order has its lines, and the stock taken is the
    number of lines (quantity 1 each). Returns the number of orders."""
    q = ("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_lines),"
         " (SELECT %d::bigint * %d - sum(stock) FROM items),"
         " (SELECT count(*) FROM orders o WHERE amount_cents <>"
         "   (SELECT sum(price_cents * quantity) FROM order_lines l WHERE l.order_id = o.order_id))"
         % (STOCK, ITEMS))
    orders, lines, taken, bad = (int(x) for x in srv.psql(q).stdout.strip().split("|"))
    if lines != taken or bad != 0 or not (orders <= lines <= 3 * orders):
        raise RuntimeError("inconsistent result: orders=%d lines=%d stock_taken=%d bad_amounts=%d"
                           % (orders, lines, taken, bad))
    return orders


def main():
    bindir = find_bindir()
    if not bindir:
        skip("no PostgreSQL programs in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)")
    user = None
    if os.geteuid() == 0:
        name = os.environ.get("EF_BENCH_PG_USER", "nobody")
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            skip("running as root and there is no user '%s' to run PostgreSQL as (EF_BENCH_PG_USER)" % name)
    tmp = tempfile.mkdtemp(prefix="ef-bench-pg-", dir=os.environ.get("EF_BENCH_DIR") or None)
    srv = Server(bindir, tmp, user)
    try:
        os.chmod(tmp, 0o755)
        if user is not None:
            os.chown(tmp, user.pw_uid, user.pw_gid)
        srv.start()
        version = srv.psql("SHOW server_version").stdout.strip().split()[0]
        srv.psql(SCHEMA)
        script = os.path.join(HERE, "pg_create_order.sql")
        print("PostgreSQL %s create-order transaction: pgbench, %d clients, %d s per run, %d runs, "
              "fsync and synchronous_commit on" % (version, CLIENTS, SECONDS, RUNS), flush=True)
        # A warm-up run, not counted: 64 backends starting, their catalog and plan caches
        # filling (the HTTP section's programs are warm from its seeding).
        pgbench(srv, script, 2)
        runs = []
        for i in range(RUNS):
            r = pgbench(srv, script)
            print("  run %d: %.0f tx/s, mean latency %.2f ms, %d failed, machine CPU %.0f us/tx"
                  % (i + 1, r[0], r[1], r[2], r[3]), flush=True)
            runs.append(r)
        orders = check_consistent(srv)
        best = max(runs, key=lambda r: r[0])
        if best[0] <= 0:
            raise RuntimeError("no transaction committed in %d runs of %d s" % (RUNS, SECONDS))
        emit("pg_version", version)
        emit("pg_clients", CLIENTS)
        emit("pg_seconds", SECONDS)
        emit("pg_tps", "%.1f" % best[0])
        emit("pg_tps_first", "%.1f" % runs[0][0])
        emit("pg_tps_second", "%.1f" % runs[-1][0])
        emit("pg_latency_ms", "%.3f" % best[1])
        emit("pg_failed", sum(r[2] for r in runs))
        emit("pg_cpu_us_per_tx", "%.1f" % best[3])
        emit("pg_orders", orders)
        emit("pg_skipped", 0)
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        detail = getattr(e, "stderr", "") or ""
        print("pg: FAILED: %s %s" % (e, detail[-500:] if isinstance(detail, str) else ""), file=sys.stderr)
        return 1
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    write_out()
    return 0


if __name__ == "__main__":
    sys.exit(main())
