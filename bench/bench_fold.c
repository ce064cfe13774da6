/* bench_fold: folding rate of the read side from position 1, and the tailer's peak RSS.
 *
 * Builds a log of EF_BENCH_FOLD_EVENTS events (default 1 000 000) in a temp dir: 1 000
 * users and 1 000 items, then orders that go through every transition (created, paid,
 * shipped, delivered, cancelled). Then runs the tailer (--once semantics) in a child
 * process from an empty read model and reports:
 *   fold_events=N fold_seconds=S fold_events_per_second=R fold_cpu_seconds=C
 *   fold_events_per_cpu_second=R2 tailer_peak_rss_kib=K
 * then a snapshot of that model (snapshot_ms snapshot_bytes; removed again), rebuilds from
 * scratch (rebuild_from_scratch_seconds: the median of EF_BENCH_FOLD_REBUILDS runs, default
 * 3, each run's seconds in rebuild_from_scratch_runs) and a rebuild from a snapshot taken at 90% of the
 * log (rebuild_from_snapshot_seconds: restoring it and folding the last 10%; that model is
 * folded beforehand into a side directory). Each step also prints STEP_status=0 when it
 * worked. The temp dir is
 * removed at the end.
 *
 * Ceilings from the same run, for the ratios in bench/report.md:
 *   scan_seconds scan_events_per_second  reading the whole log back through a log_reader
 *       (framing and checksums, no folding): folding and rebuilding cannot beat it;
 *   parse_seconds parse_events_per_second  the same scan, each event's data parsed as the
 *       fold parses it (rmodel_ev_parse), nothing applied: the floor of any fold of this log;
 *   raw_write_ms  writing snapshot_bytes sequentially to a new file plus fdatasync: taking
 *       or restoring a snapshot of that size cannot beat it.
 *
 * EF_BENCH_FOLD_MIX=orders: the log is the all-OrderCreated mix instead (10 000 users and
 * 200 items registered and stocked, then only OrderCreated events of 1 to 3 lines); only
 * the scans and a rebuild from scratch run. Every rebuild also prints its events per second
 * (rebuild_*_events_per_second, wall clock) and its CPU time (rebuild_*_cpu_seconds).
 *
 * EF_BENCH_FOLD_IDS=uuid7 or uuid4: orders get ids of the shape the server generates (36
 * characters, time-ordered) or generated before (random) instead of "o<k>" (bench/README,
 * "Generated order ids that grow with time", says what each costs a rebuild).
 *
 * EF_BENCH_FOLD_BUILD_ONLY=DIR: only build the log (of either mix), in DIR/log (DIR must not
 * exist yet), and keep it; bench/run.sh runs the real eventfold-tailer on it to measure its
 * RSS.
 */
#include <config.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "log/log.h"
#include "readmodel/rdir.h"
#include "fold/rebuild.h"
#include "readmodel/rmodel_env.h"
#include "readmodel/rmodel_event.h"
#include "readmodel/rsnap.h"
#include "fold/tailer.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "util/uuid7.h"

/* The default read_map_bytes: the map starts where a deployment's does and grows as it would
 * (its blocks are reserved on disk, util/lmdb_map.h, so a larger start would cost disk). */
#define READ_MAP_BYTES (256ull << 20)

#define USERS 1000
#define ITEMS 1000
/* The all-OrderCreated mix (EF_BENCH_FOLD_MIX=orders). */
#define ORDERS_MIX_USERS 10000
#define ORDERS_MIX_ITEMS 200

static void append(struct log *lg, const char *stream, uint64_t ver, const char *type, const char *data)
{
    struct log_event ev = { stream, strlen(stream), type, strlen(type), 1, ver,
                            1767261600000LL + (int64_t)ver, "{}", 2, data, strlen(data) };
    if (strcmp(type, "OrderCreated") == 0)
        ev.schema_version = 2;
    uint64_t pos;
    int rc = log_append_record(lg, &ev, &pos);
    if (rc) {
        fprintf(stderr, "bench_fold: append: %s\n", log_strerror(rc));
        exit(1);
    }
}

static struct log *open_for_append(const char *dir)
{
    struct log *lg;
    struct log_options lo = { .segment_bytes = 0 };
    if (log_open(dir, &lo, &lg) || log_append_begin(lg)) {
        fprintf(stderr, "bench_fold: cannot open the log: %s\n", log_last_error(NULL));
        exit(1);
    }
    return lg;
}

static void close_after_append(struct log *lg)
{
    log_append_end(lg);
    if (log_sync(lg, log_head(lg))) {
        fprintf(stderr, "bench_fold: sync failed\n");
        exit(1);
    }
    log_close(lg);
}

/* Order k's id, as EF_BENCH_FOLD_IDS asks: "o<k>" by default; "uuid7", the ids the server
 * generates (util/uuid7.h: ten orders per millisecond from 2025-01-01); "uuid4", the random
 * ids it generated before. Random bits come from a fixed seed, so that a log is the same
 * from run to run. */
enum id_style { IDS_UNSET, IDS_SEQ, IDS_UUID7, IDS_UUID4 };

static const char *order_id(uint64_t k)
{
    static enum id_style style = IDS_UNSET;
    static char id[EF_UUID_TEXT_LEN + 1];
    if (style == IDS_UNSET) {
        const char *e = getenv("EF_BENCH_FOLD_IDS");
        style = !e || !*e ? IDS_SEQ : strcmp(e, "uuid7") == 0 ? IDS_UUID7
                : strcmp(e, "uuid4") == 0 ? IDS_UUID4 : IDS_UNSET;
        if (style == IDS_UNSET) {
            fprintf(stderr, "bench_fold: EF_BENCH_FOLD_IDS must be uuid7 or uuid4, not '%s'\n", e);
            exit(2);
        }
    }
    if (style == IDS_SEQ) {
        snprintf(id, sizeof id, "o%" PRIu64, k);
        return id;
    }
    uint64_t x = k + 0x9e3779b97f4a7c15ull; /* splitmix64 of k */
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    unsigned char rnd[8], u[16];
    for (int i = 0; i < 8; i++)
        rnd[i] = (unsigned char)(x >> (8 * i));
    ef_uuid7_bytes(u, 1735689600000ull * 1000000u + k * 100000u, rnd);
    if (style == IDS_UUID4) { /* the time part replaced by more random bits */
        uint64_t y = x * 0x2545f4914f6cdd1dull + k;
        for (int i = 0; i < 8; i++)
            u[i] = (unsigned char)(y >> (8 * i));
        u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    }
    uuid_unparse_lower(u, id);
    return id;
}

/* Registers and funds users u0..; adds and restocks items i0..; returns the events written. */
static uint64_t build_shop(struct log *lg, int users, int items)
{
    char s[64], d[512];
    uint64_t count = 0;
    for (int i = 0; i < users; i++, count += 2) {
        snprintf(s, sizeof s, "user-u%d", i);
        snprintf(d, sizeof d, "{\"user_id\":\"u%d\",\"name\":\"User %d\",\"email\":null}", i, i);
        append(lg, s, 1, "UserRegistered", d);
        snprintf(d, sizeof d, "{\"user_id\":\"u%d\",\"amount_cents\":1000000000,\"balance_cents\":1000000000}", i);
        append(lg, s, 2, "FundsDeposited", d);
    }
    for (int i = 0; i < items; i++, count += 2) {
        snprintf(s, sizeof s, "item-i%d", i);
        snprintf(d, sizeof d, "{\"item_id\":\"i%d\",\"name\":\"Item %d\",\"category\":\"cat%d\",\"price_cents\":%d}",
                 i, i, i % 17, 100 + i);
        append(lg, s, 1, "ItemAdded", d);
        snprintf(d, sizeof d, "{\"item_id\":\"i%d\",\"quantity\":100000000,\"available\":100000000}", i);
        append(lg, s, 2, "ItemRestocked", d);
    }
    return count;
}

/* The all-OrderCreated mix: the shop's users and items, then only OrderCreated events (one
 * new order each, 1 to 3 lines of distinct items), n events in all. */
static void build_orders_log(const char *dir, uint64_t n)
{
    struct log *lg = open_for_append(dir);
    uint64_t count = build_shop(lg, ORDERS_MIX_USERS, ORDERS_MIX_ITEMS);
    char s[64], d[1024];
    for (uint64_t k = 0; count < n; k++, count++) {
        int u = (int)(k * 7919 % ORDERS_MIX_USERS), nl = (int)(k % 3) + 1, amount = 0;
        const char *oid = order_id(k);
        int len = snprintf(d, sizeof d, "{\"order_id\":\"%s\",\"user_id\":\"u%d\",\"lines\":[", oid, u);
        for (int l = 0; l < nl; l++) {
            int it = (int)((k * 31 + (uint64_t)l * 67) % ORDERS_MIX_ITEMS), q = l + 1;
            amount += q * (100 + it);
            len += snprintf(d + len, sizeof d - (size_t)len,
                            "%s{\"item_id\":\"i%d\",\"name\":\"Item %d\",\"category\":\"cat%d\",\"quantity\":%d,"
                            "\"price_cents\":%d}", l ? "," : "", it, it, it % 17, q, 100 + it);
        }
        snprintf(d + len, sizeof d - (size_t)len, "],\"amount_cents\":%d}", amount);
        snprintf(s, sizeof s, "order-%s", oid);
        append(lg, s, 1, "OrderCreated", d);
    }
    close_after_append(lg);
}

static void build_log(const char *dir, uint64_t n)
{
    struct log *lg = open_for_append(dir);
    char s[64], d[512];
    uint64_t count = build_shop(lg, USERS, ITEMS);
    static const char *const steps[] = { "PaymentProcessed", "OrderShipped", "OrderDelivered" };
    for (uint64_t k = 0; count < n; k++) {
        int u = (int)(k % USERS), a = (int)(k % ITEMS), b = (int)((k * 7 + 3) % ITEMS);
        if (a == b)
            b = (b + 1) % ITEMS;
        int amount = 2 * (100 + a) + (100 + b);
        const char *oid = order_id(k);
        snprintf(s, sizeof s, "order-%s", oid);
        snprintf(d, sizeof d,
                 "{\"order_id\":\"%s\",\"user_id\":\"u%d\",\"lines\":["
                 "{\"item_id\":\"i%d\",\"name\":\"Item %d\",\"category\":\"cat%d\",\"quantity\":2,\"price_cents\":%d},"
                 "{\"item_id\":\"i%d\",\"name\":\"Item %d\",\"category\":\"cat%d\",\"quantity\":1,\"price_cents\":%d}],"
                 "\"amount_cents\":%d}",
                 oid, u, a, a, a % 17, 100 + a, b, b, b % 17, 100 + b, amount);
        append(lg, s, 1, "OrderCreated", d);
        count++;
        unsigned last = (unsigned)(k % 4); /* 0: cancelled, 1..3: paid/shipped/delivered */
        if (last == 0 && count < n) {
            snprintf(d, sizeof d, "{\"order_id\":\"%s\",\"user_id\":\"u%d\",\"reason\":null,"
                     "\"refunded_cents\":0,\"previous_status\":\"created\"}", oid, u);
            append(lg, s, 2, "OrderCancelled", d);
            count++;
        }
        for (unsigned st = 0; st < last && count < n; st++, count++) {
            snprintf(d, sizeof d, "{\"order_id\":\"%s\",\"user_id\":\"u%d\",\"amount_cents\":%d,"
                     "\"balance_cents\":0}", oid, u, amount);
            append(lg, s, 2 + st, steps[st], d);
        }
    }
    close_after_append(lg);
}

/* Reads every record of the log in dir once; returns the count, the seconds in *secs and
 * the log's size in bytes in *bytes. With parse, each record's data is also parsed as the
 * fold parses it (rmodel_ev_parse), and *bad counts those it refused. */
static uint64_t scan_log(const char *dir, int parse, double *secs, uint64_t *bytes, uint64_t *bad)
{
    struct rmodel_ev ev;
    struct sbuf reason = SBUF_INIT;
    memset(&ev, 0, sizeof ev);
    *bad = 0;
    struct log *lg;
    struct log_reader *rd;
    struct log_stats st;
    struct log_record rec;
    uint64_t n = 0, t0 = ef_mono_ns();
    if (log_open(dir, NULL, &lg) || log_reader_open(lg, 1, &rd)) {
        fprintf(stderr, "bench_fold: cannot read the log: %s\n", log_last_error(NULL));
        exit(1);
    }
    int rc;
    while ((rc = log_reader_next(rd, log_head(lg), &rec)) == 1) {
        n++;
        if (parse && rmodel_ev_parse(&ev, &rec, &reason) != 0)
            (*bad)++;
    }
    *secs = (double)(ef_mono_ns() - t0) / 1e9;
    if (rc < 0 || log_stats(lg, &st)) {
        fprintf(stderr, "bench_fold: log scan failed: %s\n", log_last_error(lg));
        exit(1);
    }
    *bytes = st.bytes;
    rmodel_ev_free(&ev);
    sbuf_free(&reason);
    log_reader_close(rd);
    log_close(lg);
    return n;
}

/* Milliseconds to write bytes sequentially (1 MiB writes) to a new file in dir and fdatasync
 * it; -1 on error. The file is removed. */
static double raw_write_ms(const char *dir, uint64_t bytes)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/raw-write", dir);
    static char buf[1 << 20];
    memset(buf, 's', sizeof buf);
    uint64_t t0 = ef_mono_ns();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    for (uint64_t off = 0; off < bytes;) {
        size_t k = bytes - off < sizeof buf ? (size_t)(bytes - off) : sizeof buf;
        ssize_t w = write(fd, buf, k);
        if (w <= 0) {
            close(fd);
            unlink(path);
            return -1;
        }
        off += (uint64_t)w;
    }
    int rc = fdatasync(fd);
    close(fd);
    double ms = (double)(ef_mono_ns() - t0) / 1e6;
    unlink(path);
    return rc < 0 ? -1 : ms;
}

/* Runs the tailer once in a child; returns its exit status, peak RSS in *rss_kib. */
static int run_child_tailer(const char *data, const char *model_dir, uint64_t max_records, long *rss_kib,
                            double *cpu_s)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        struct tailer_options o = { .data_dir = data, .once = 1, .map_bytes = READ_MAP_BYTES,
                                    .model_dir = model_dir, .max_records = max_records };
        _exit(tailer_run(&o) == 0 ? 0 : 1);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid)
        return -1;
    *rss_kib = ru.ru_maxrss;
    *cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
             ru.ru_stime.tv_usec / 1e6;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Folds the first `pos` events into a side model directory and snapshots it, so that a
 * rebuild from the newest snapshot has the rest of the log to fold. */
static int snapshot_at(const char *data, uint64_t pos)
{
    char side[4200];
    snprintf(side, sizeof side, "%s/side-model", data);
    long rss;
    double cpu;
    struct rmodel_env *e;
    struct rmodel_options ro = { READ_MAP_BYTES, 1 };
    struct snapshot_info info;
    if (mkdir(side, 0755) < 0 || run_child_tailer(data, side, pos, &rss, &cpu) != 0 || rmodel_env_open(side, &ro, &e)) {
        fprintf(stderr, "bench_fold: folding %" PRIu64 " events into %s failed\n", pos, side);
        return -1;
    }
    int rc = rsnap_take(data, e, 2, &info);
    rmodel_env_close(e);
    if (rc == 0)
        printf("rebuild_snapshot_position=%" PRIu64 "\n", info.position);
    return rc;
}

struct rebuild_figures {
    struct rebuild_result res;
    double cpu;
    int rc;
};

/* Rebuilds the read model of data dir `data` (from scratch, or from the newest snapshot). */
static struct rebuild_figures rebuild_measured(const char *data, int scratch)
{
    struct rebuild_options ropt = { .data_dir = data, .map_bytes = READ_MAP_BYTES, .from_scratch = scratch };
    struct rebuild_figures f = { 0 };
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    f.rc = rebuild_run(&ropt, &f.res);
    getrusage(RUSAGE_SELF, &r1);
    f.cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
            (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    return f;
}

static int by_seconds(const void *a, const void *b)
{
    double x = ((const struct rebuild_figures *)a)->res.seconds, y = ((const struct rebuild_figures *)b)->res.seconds;
    return (x > y) - (x < y);
}

/* Rebuilds `data` `runs` times (from scratch, or once from the newest snapshot) and prints
 * the figures of the median run, and every run's seconds (rebuild_*_runs); returns the
 * first failing rebuild_run code, or 0. A single rebuild's time moved by a fifth between
 * runs minutes apart on the shared machine: the median of three is the figure judged. */
static int rebuild_once(const char *data, int scratch, int runs)
{
    struct rebuild_figures f[9];
    if (runs < 1 || !scratch)
        runs = 1;
    if (runs > 9)
        runs = 9;
    char list[128] = "";
    int rc = 0;
    for (int i = 0; i < runs && rc == 0; i++) {
        f[i] = rebuild_measured(data, scratch);
        rc = f[i].rc;
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%.2f", i ? "," : "", f[i].res.seconds);
        if (rc)
            runs = i + 1;
    }
    /* A failed run is the one reported (its status fails the section); else the median. */
    const struct rebuild_figures *m = &f[runs - 1];
    if (rc == 0) {
        qsort(f, (size_t)runs, sizeof f[0], by_seconds);
        m = &f[runs / 2];
    }
    const char *what = scratch ? "from_scratch" : "from_snapshot";
    uint64_t folded = m->res.position - m->res.from_position;
    printf("rebuild_%s_seconds=%.2f rebuild_%s_from_position=%" PRIu64 " rebuild_%s_position=%" PRIu64
           " rebuild_%s_events_per_second=%.0f rebuild_%s_cpu_seconds=%.2f rebuild_%s_runs=%s rebuild_%s_status=%d\n",
           what, m->res.seconds, what, m->res.from_position, what, m->res.position, what,
           m->res.seconds > 0 ? (double)folded / m->res.seconds : 0, what, m->cpu, what, list, what, rc);
    fflush(stdout);
    return rc;
}

static void remove_tree(const char *tmp)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp); /* our mkdtemp dir only */
    if (system(cmd) != 0)
        fprintf(stderr, "bench_fold: could not remove %s\n", tmp);
}

int main(void)
{
    eflog_init("bench_fold", EF_WARN);
    const char *env = getenv("EF_BENCH_FOLD_EVENTS");
    uint64_t n = env ? strtoull(env, NULL, 10) : 1000000;
    const char *mix = getenv("EF_BENCH_FOLD_MIX");
    int orders_only = mix && strcmp(mix, "orders") == 0;
    if (mix && *mix && !orders_only && strcmp(mix, "lifecycle") != 0) {
        fprintf(stderr, "bench_fold: EF_BENCH_FOLD_MIX must be lifecycle or orders\n");
        return 2;
    }
    void (*build)(const char *, uint64_t) = orders_only ? build_orders_log : build_log;
    uint64_t least = orders_only ? 2 * (ORDERS_MIX_USERS + ORDERS_MIX_ITEMS) + 5000 : 5000;
    if (n < least)
        n = least;
    const char *runs_env = getenv("EF_BENCH_FOLD_REBUILDS");
    int rebuild_runs = runs_env && *runs_env ? atoi(runs_env) : 3;
    const char *only = getenv("EF_BENCH_FOLD_BUILD_ONLY");
    if (only && *only) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/log", only);
        if (mkdir(only, 0755) < 0) {
            perror(only);
            return 1;
        }
        build(dir, n);
        printf("log_events=%" PRIu64 " log_dir=%s\n", n, dir);
        return 0;
    }
    char tmp[] = "/tmp/bench_fold_XXXXXX", logdir[64];
    if (!mkdtemp(tmp)) {
        perror("bench_fold: mkdtemp");
        return 1;
    }
    snprintf(logdir, sizeof logdir, "%s/log", tmp);
    uint64_t t0 = ef_mono_ns();
    build(logdir, n);
    printf("fold_mix=%s log_events=%" PRIu64 " log_build_seconds=%.2f\n", orders_only ? "orders" : "lifecycle",
           n, (double)(ef_mono_ns() - t0) / 1e9);
    double scan_s, parse_s;
    uint64_t log_bytes, bad, scanned = scan_log(logdir, 0, &scan_s, &log_bytes, &bad);
    printf("log_bytes=%" PRIu64 " scan_events=%" PRIu64 " scan_seconds=%.3f scan_events_per_second=%.0f\n",
           log_bytes, scanned, scan_s, scan_s > 0 ? (double)scanned / scan_s : 0);
    uint64_t parsed = scan_log(logdir, 1, &parse_s, &log_bytes, &bad);
    printf("parse_seconds=%.3f parse_events_per_second=%.0f parse_refused=%" PRIu64 "\n", parse_s,
           parse_s > 0 ? (double)parsed / parse_s : 0, bad);
    fflush(stdout);
    if (orders_only) {
        int orc = rebuild_once(tmp, 1, rebuild_runs);
        remove_tree(tmp);
        return orc ? 1 : 0;
    }

    long rss = 0;
    double cpu = 0;
    t0 = ef_mono_ns();
    int rc = run_child_tailer(tmp, NULL, 0, &rss, &cpu);
    double secs = (double)(ef_mono_ns() - t0) / 1e9;
    /* The CPU-time rate is what one core sustains; the wall rate also counts waiting for
     * the CPU on a shared machine and for fdatasync. */
    printf("fold_events=%" PRIu64 " fold_seconds=%.2f fold_events_per_second=%.0f "
           "fold_cpu_seconds=%.2f fold_events_per_cpu_second=%.0f tailer_peak_rss_kib=%ld fold_status=%d\n",
           n, secs, (double)n / secs, cpu, cpu > 0 ? (double)n / cpu : 0, rss, rc);
    fflush(stdout);

    /* Snapshot of the live model (timed, then removed: the rebuild from a snapshot below
     * must find the one at 90%), then rebuilds from scratch and from a snapshot. */
    char model[RDIR_PATH_MAX], cmd[4400];
    struct rmodel_env *e;
    struct rmodel_options ro = { READ_MAP_BYTES, 1 };
    struct snapshot_info info;
    rdir_path(model, sizeof model, tmp, "current");
    if (rc == 0 && rmodel_env_open(model, &ro, &e) == 0) {
        t0 = ef_mono_ns();
        rc = rsnap_take(tmp, e, 2, &info);
        printf("snapshot_ms=%.0f snapshot_bytes=%" PRIu64 " snapshot_status=%d\n",
               (double)(ef_mono_ns() - t0) / 1e6, rc ? 0 : info.bytes, rc);
        rmodel_env_close(e);
        if (rc == 0)
            printf("raw_write_ms=%.0f\n", raw_write_ms(tmp, info.bytes));
        rdir_path(model, sizeof model, tmp, "snapshots");
        snprintf(cmd, sizeof cmd, "rm -rf '%s'/snap-*", model); /* in our mkdtemp dir only */
        if (rc == 0 && system(cmd) != 0)
            rc = -1;
    }
    for (int scratch = 1; scratch >= 0 && rc == 0; scratch--) {
        if (!scratch)
            rc = snapshot_at(tmp, n - n / 10);
        if (rc == 0)
            rc = rebuild_once(tmp, scratch, rebuild_runs);
    }
    remove_tree(tmp);
    return rc ? 1 : 0;
}
