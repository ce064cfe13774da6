/* bench_fold: folding rate of the read side from position 1, and the tailer's peak RSS.
 *
 * Builds a log of EF_BENCH_FOLD_EVENTS events (default 1 000 000) in a temp dir: 1 000
 * users and 1 000 items, then orders that go through every transition (created, paid,
 * shipped, delivered, cancelled). Then runs the tailer (--once semantics) in a child
 * process from an empty read model and reports:
 *   fold_events=N fold_seconds=S fold_events_per_second=R fold_cpu_seconds=C
 *   fold_events_per_cpu_second=R2 tailer_peak_rss_kib=K
 * then a snapshot of that model (snapshot_ms snapshot_bytes; removed again), a rebuild from
 * scratch (rebuild_from_scratch_seconds) and a rebuild from a snapshot taken at 90% of the
 * log (rebuild_from_snapshot_seconds: restoring it and folding the last 10%; that model is
 * folded beforehand into a side directory). Each step also prints STEP_status=0 when it
 * worked. The temp dir is
 * removed at the end.
 *
 * Ceilings from the same run, for the ratios in bench/report.md:
 *   scan_seconds scan_events_per_second  reading the whole log back through a log_reader
 *       (framing and checksums, no folding): folding and rebuilding cannot beat it;
 *   raw_write_ms  writing snapshot_bytes sequentially to a new file plus fdatasync: taking
 *       or restoring a snapshot of that size cannot beat it.
 *
 * EF_BENCH_FOLD_BUILD_ONLY=DIR: only build the log, in DIR/log (DIR must not exist yet), and
 * keep it; bench/run.sh runs the real eventfold-tailer on it to measure its RSS.
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

#include "log/log.h"
#include "read/rdir.h"
#include "read/rebuild.h"
#include "read/rm.h"
#include "read/snapshot.h"
#include "read/tailer.h"
#include "util/clock.h"
#include "util/eflog.h"

/* The default read_map_bytes: the map starts where a deployment's does and grows as it would
 * (its blocks are reserved on disk, util/lmdb_map.h, so a larger start would cost disk). */
#define READ_MAP_BYTES (256ull << 20)

#define USERS 1000
#define ITEMS 1000

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

static void build_log(const char *dir, uint64_t n)
{
    struct log *lg;
    struct log_options lo = { .segment_bytes = 0 };
    if (log_open(dir, &lo, &lg) || log_append_begin(lg)) {
        fprintf(stderr, "bench_fold: cannot open the log: %s\n", log_last_error(NULL));
        exit(1);
    }
    char s[64], d[512];
    uint64_t count = 0;
    for (int i = 0; i < USERS; i++, count += 2) {
        snprintf(s, sizeof s, "user-u%d", i);
        snprintf(d, sizeof d, "{\"user_id\":\"u%d\",\"name\":\"User %d\",\"email\":null}", i, i);
        append(lg, s, 1, "UserRegistered", d);
        snprintf(d, sizeof d, "{\"user_id\":\"u%d\",\"amount_cents\":1000000000,\"balance_cents\":1000000000}", i);
        append(lg, s, 2, "FundsDeposited", d);
    }
    for (int i = 0; i < ITEMS; i++, count += 2) {
        snprintf(s, sizeof s, "item-i%d", i);
        snprintf(d, sizeof d, "{\"item_id\":\"i%d\",\"name\":\"Item %d\",\"category\":\"cat%d\",\"price_cents\":%d}",
                 i, i, i % 17, 100 + i);
        append(lg, s, 1, "ItemAdded", d);
        snprintf(d, sizeof d, "{\"item_id\":\"i%d\",\"quantity\":100000000,\"available\":100000000}", i);
        append(lg, s, 2, "ItemRestocked", d);
    }
    static const char *const steps[] = { "PaymentProcessed", "OrderShipped", "OrderDelivered" };
    for (uint64_t k = 0; count < n; k++) {
        int u = (int)(k % USERS), a = (int)(k % ITEMS), b = (int)((k * 7 + 3) % ITEMS);
        if (a == b)
            b = (b + 1) % ITEMS;
        int amount = 2 * (100 + a) + (100 + b);
        snprintf(s, sizeof s, "order-o%" PRIu64, k);
        snprintf(d, sizeof d,
                 "{\"order_id\":\"o%" PRIu64 "\",\"user_id\":\"u%d\",\"lines\":["
                 "{\"item_id\":\"i%d\",\"name\":\"Item %d\",\"category\":\"cat%d\",\"quantity\":2,\"price_cents\":%d},"
                 "{\"item_id\":\"i%d\",\"name\":\"Item %d\",\"category\":\"cat%d\",\"quantity\":1,\"price_cents\":%d}],"
                 "\"amount_cents\":%d}",
                 k, u, a, a, a % 17, 100 + a, b, b, b % 17, 100 + b, amount);
        append(lg, s, 1, "OrderCreated", d);
        count++;
        unsigned last = (unsigned)(k % 4); /* 0: cancelled, 1..3: paid/shipped/delivered */
        if (last == 0 && count < n) {
            snprintf(d, sizeof d, "{\"order_id\":\"o%" PRIu64 "\",\"user_id\":\"u%d\",\"reason\":null,"
                     "\"refunded_cents\":0,\"previous_status\":\"created\"}", k, u);
            append(lg, s, 2, "OrderCancelled", d);
            count++;
        }
        for (unsigned st = 0; st < last && count < n; st++, count++) {
            snprintf(d, sizeof d, "{\"order_id\":\"o%" PRIu64 "\",\"user_id\":\"u%d\",\"amount_cents\":%d,"
                     "\"balance_cents\":0}", k, u, amount);
            append(lg, s, 2 + st, steps[st], d);
        }
    }
    log_append_end(lg);
    if (log_sync(lg, log_head(lg))) {
        fprintf(stderr, "bench_fold: sync failed\n");
        exit(1);
    }
    log_close(lg);
}

/* Reads every record of the log in dir once; returns the count, the seconds in *secs and
 * the log's size in bytes in *bytes. */
static uint64_t scan_log(const char *dir, double *secs, uint64_t *bytes)
{
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
    while ((rc = log_reader_next(rd, log_head(lg), &rec)) == 1)
        n++;
    *secs = (double)(ef_mono_ns() - t0) / 1e9;
    if (rc < 0 || log_stats(lg, &st)) {
        fprintf(stderr, "bench_fold: log scan failed: %s\n", log_last_error(lg));
        exit(1);
    }
    *bytes = st.bytes;
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
    struct rm_env *e;
    struct rm_options ro = { READ_MAP_BYTES, 1 };
    struct snapshot_info info;
    if (mkdir(side, 0755) < 0 || run_child_tailer(data, side, pos, &rss, &cpu) != 0 || rm_env_open(side, &ro, &e)) {
        fprintf(stderr, "bench_fold: folding %" PRIu64 " events into %s failed\n", pos, side);
        return -1;
    }
    int rc = snapshot_take(data, e, 2, &info);
    rm_env_close(e);
    if (rc == 0)
        printf("rebuild_snapshot_position=%" PRIu64 "\n", info.position);
    return rc;
}

int main(void)
{
    eflog_init("bench_fold", EF_WARN);
    const char *env = getenv("EF_BENCH_FOLD_EVENTS");
    uint64_t n = env ? strtoull(env, NULL, 10) : 1000000;
    if (n < 5000)
        n = 5000;
    const char *only = getenv("EF_BENCH_FOLD_BUILD_ONLY");
    if (only && *only) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/log", only);
        if (mkdir(only, 0755) < 0) {
            perror(only);
            return 1;
        }
        build_log(dir, n);
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
    build_log(logdir, n);
    printf("log_events=%" PRIu64 " log_build_seconds=%.2f\n", n, (double)(ef_mono_ns() - t0) / 1e9);
    double scan_s;
    uint64_t log_bytes, scanned = scan_log(logdir, &scan_s, &log_bytes);
    printf("log_bytes=%" PRIu64 " scan_events=%" PRIu64 " scan_seconds=%.3f scan_events_per_second=%.0f\n",
           log_bytes, scanned, scan_s, scan_s > 0 ? (double)scanned / scan_s : 0);
    fflush(stdout);

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
    struct rm_env *e;
    struct rm_options ro = { READ_MAP_BYTES, 1 };
    struct snapshot_info info;
    rdir_path(tmp, "current", model, sizeof model);
    if (rc == 0 && rm_env_open(model, &ro, &e) == 0) {
        t0 = ef_mono_ns();
        rc = snapshot_take(tmp, e, 2, &info);
        printf("snapshot_ms=%.0f snapshot_bytes=%" PRIu64 " snapshot_status=%d\n",
               (double)(ef_mono_ns() - t0) / 1e6, rc ? 0 : info.bytes, rc);
        rm_env_close(e);
        if (rc == 0)
            printf("raw_write_ms=%.0f\n", raw_write_ms(tmp, info.bytes));
        rdir_path(tmp, "snapshots", model, sizeof model);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'/snap-*", model); /* in our mkdtemp dir only */
        if (rc == 0 && system(cmd) != 0)
            rc = -1;
    }
    for (int scratch = 1; scratch >= 0 && rc == 0; scratch--) {
        if (!scratch)
            rc = snapshot_at(tmp, n - n / 10);
        if (rc)
            break;
        struct rebuild_options ropt = { .data_dir = tmp, .map_bytes = READ_MAP_BYTES, .from_scratch = scratch };
        struct rebuild_result res;
        rc = rebuild_run(&ropt, &res);
        const char *what = scratch ? "from_scratch" : "from_snapshot";
        printf("rebuild_%s_seconds=%.2f rebuild_%s_from_position=%" PRIu64 " rebuild_%s_position=%" PRIu64
               " rebuild_%s_status=%d\n", what, res.seconds, what, res.from_position, what, res.position, what, rc);
        fflush(stdout);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp); /* our mkdtemp dir only */
    if (system(cmd) != 0)
        fprintf(stderr, "bench_fold: could not remove %s\n", tmp);
    return rc ? 1 : 0;
}
