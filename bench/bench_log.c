/* bench_log: what an acknowledged append costs, and what group commit buys.
 *
 * One run measures, in one directory (default: a fresh one under /tmp; EF_BENCH_DIR to
 * choose the file system):
 *   single   one process, log_append (one fdatasync per append, nobody to share it with)
 *   group    16 processes appending at once through log_append (shared fdatasyncs)
 *   raw      the ceiling: pwrite + fdatasync of the same record size to a growing file
 *   prealloc the same loop on a zero-filled, synced, pre-allocated file
 *   rawgroup the group-commit ceiling, the better of: the raw loop writing GROUP_PROCS
 *            records with one pwrite and one fdatasync (perfect batching of 16 appenders, one
 *            sync at a time), and GROUP_PROCS processes each appending (O_APPEND) and
 *            fdatasyncing on their own (the file system overlaps their syncs)
 * and prints appends per second and the ratios, then the same figures as key=value lines
 * (bench/run.sh collects those into bench/out/log.kv). EF_BENCH_N scales the work (the number of
 * single-writer appends; the others are sized from it), EF_BENCH_SECONDS caps each
 * measurement (default 3 s: the rate is then over what was done in time), EF_BENCH_ROUNDS
 * the repetitions (default 3; medians are reported). Not part of `make check`.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log/io.h"
#include "log/log.h"
#include "util/clock.h"
#include "util/xalloc.h"

enum { GROUP_PROCS = 16 };

/* Each measurement stops after n operations or when this monotonic deadline passes (a
 * slow, shared disk must not stretch `make bench` past a minute). */
static uint64_t budget_ns = 3ull * 1000000000u;

static char payload[256];

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_log: %s: %s\n", what, detail);
    exit(1);
}

static struct log_event make_event(uint64_t i)
{
    static char stream[32];
    int n = snprintf(stream, sizeof stream, "order-%" PRIu64, i % 1000);
    struct log_event ev = { .stream = stream, .stream_len = (size_t)n, .type = "OrderCreated", .type_len = 12,
                            .schema_version = 2, .stream_version = i, .timestamp_ms = ef_now_ms(),
                            .meta = "{}", .meta_len = 2, .data = payload, .data_len = sizeof payload - 1 };
    return ev;
}

static size_t record_size(void)
{
    struct log_event ev = make_event(1);
    return record_encoded_size(&ev);
}

/* fdatasyncs issued by this process (counted through the io table). */
static uint64_t syncs;
static int counting_fdatasync(int fd)
{
    syncs++;
    return fdatasync(fd);
}

static struct log *open_log(const char *dir)
{
    struct log *lg = NULL;
    if (log_open(dir, NULL, &lg) != 0)
        die("log_open", log_last_error(NULL));
    return lg;
}

/* Appends up to n events, stopping at deadline (monotonic ns; 0: none). Returns how many. */
static uint64_t append_n(struct log *lg, uint64_t n, uint64_t deadline)
{
    uint64_t i;
    for (i = 0; i < n && (!deadline || ef_mono_ns() < deadline); i++) {
        struct log_event ev = make_event(i);
        int err = log_append(lg, &ev, NULL);
        if (err)
            die("log_append", log_strerror(err));
    }
    return i;
}

static double bench_single(const char *dir, uint64_t n)
{
    struct log *lg = open_log(dir);
    append_n(lg, n / 10 + 1, ef_mono_ns() + budget_ns / 10); /* warm up: segment, page cache */
    uint64_t t0 = ef_mono_ns();
    uint64_t done = append_n(lg, n, t0 + budget_ns);
    double secs = (double)(ef_mono_ns() - t0) / 1e9;
    log_close(lg);
    return (double)done / secs;
}

/* Children wait on `go` (released when the parent closes it), append, and report their
 * append and fdatasync counts on `out`. The deadline is shared: CLOCK_MONOTONIC is the
 * same in every process. */
static double bench_group(const char *dir, uint64_t per_proc, double *per_sync)
{
    struct log *lg = open_log(dir); /* keeps the control block alive across the children */
    int go[2], out[2];
    if (pipe(go) < 0 || pipe(out) < 0)
        die("pipe", strerror(errno));
    pid_t pids[GROUP_PROCS];
    for (int k = 0; k < GROUP_PROCS; k++) {
        pids[k] = fork();
        if (pids[k] < 0)
            die("fork", strerror(errno));
        if (pids[k] == 0) {
            close(go[1]);
            struct log *c = open_log(dir);
            log_io.fdatasync = counting_fdatasync;
            char b;
            if (read(go[0], &b, 1) < 0)
                _exit(1);
            uint64_t counts[2] = { append_n(c, per_proc, ef_mono_ns() + budget_ns), 0 };
            counts[1] = syncs;
            log_close(c);
            _exit(write(out[1], counts, sizeof counts) == sizeof counts ? 0 : 1);
        }
    }
    close(go[0]);
    close(out[1]);
    usleep(100 * 1000); /* let every child open the log */
    uint64_t t0 = ef_mono_ns();
    close(go[1]);
    uint64_t total_syncs = 0, n = 0, counts[2];
    for (int k = 0; k < GROUP_PROCS; k++) {
        int st;
        if (waitpid(pids[k], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            die("group child", "failed");
    }
    double secs = (double)(ef_mono_ns() - t0) / 1e9;
    while (read(out[0], counts, sizeof counts) == sizeof counts)
        n += counts[0], total_syncs += counts[1];
    close(out[0]);
    log_close(lg);
    *per_sync = total_syncs ? (double)n / (double)total_syncs : 0;
    return (double)n / secs;
}

/* The ceiling: write + fdatasync of rec * batch bytes, n times, to a growing or pre-allocated
 * file. Returns records (not writes) per second. */
static double bench_raw(const char *dir, uint64_t n, size_t rec, int prealloc, unsigned batch)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/raw-%s", dir, prealloc ? "prealloc" : "growing");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die(path, strerror(errno));
    unsigned char *buf = xcalloc(1, 1 << 20);
    uint64_t total = (n + n / 10 + 1) * rec;
    if (prealloc) {
        for (uint64_t off = 0; off < total; off += 1 << 20) {
            size_t k = total - off < (1u << 20) ? (size_t)(total - off) : 1u << 20;
            if (pwrite(fd, buf, k, (off_t)off) != (ssize_t)k)
                die("prealloc", strerror(errno));
        }
        if (fsync(fd) < 0)
            die("fsync", strerror(errno));
    }
    rec *= batch; /* one write of batch records (batch * rec <= 16 * 336 bytes < 1 MiB) */
    memset(buf, 'r', rec);
    uint64_t off = 0, t0 = ef_mono_ns(), done = 0, warm = n / 10 + 1;
    for (uint64_t i = 0; i < n + warm; i++) {
        if (i == warm) /* same warm-up as the log */
            t0 = ef_mono_ns();
        else if (i > warm && ef_mono_ns() > t0 + budget_ns)
            break;
        if (pwrite(fd, buf, rec, (off_t)off) != (ssize_t)rec || fdatasync(fd) < 0)
            die("raw write", strerror(errno));
        off += rec;
        done += i >= warm;
    }
    double secs = (double)(ef_mono_ns() - t0) / 1e9;
    close(fd);
    unlink(path);
    free(buf);
    return (double)done * batch / secs;
}

/* GROUP_PROCS processes, each write(O_APPEND) + fdatasync of rec bytes to one shared file,
 * per_proc times or until the budget; returns records per second over all of them. */
static double bench_raw_concurrent(const char *dir, uint64_t per_proc, size_t rec)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/raw-concurrent", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    int out[2];
    if (fd < 0 || pipe(out) < 0)
        die("raw concurrent", strerror(errno));
    char buf[4096];
    memset(buf, 'c', sizeof buf);
    if (rec > sizeof buf)
        rec = sizeof buf;
    uint64_t t0 = ef_mono_ns(), deadline = t0 + budget_ns;
    pid_t pids[GROUP_PROCS];
    for (int k = 0; k < GROUP_PROCS; k++) {
        pids[k] = fork();
        if (pids[k] < 0)
            die("fork", strerror(errno));
        if (pids[k] == 0) {
            uint64_t i;
            for (i = 0; i < per_proc && ef_mono_ns() < deadline; i++)
                if (write(fd, buf, rec) != (ssize_t)rec || fdatasync(fd) < 0)
                    _exit(1);
            _exit(write(out[1], &i, sizeof i) == sizeof i ? 0 : 1);
        }
    }
    close(out[1]);
    for (int k = 0; k < GROUP_PROCS; k++) {
        int st;
        if (waitpid(pids[k], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            die("raw concurrent child", "failed");
    }
    double secs = (double)(ef_mono_ns() - t0) / 1e9;
    uint64_t n = 0, c;
    while (read(out[0], &c, sizeof c) == sizeof c)
        n += c;
    close(out[0]);
    close(fd);
    unlink(path);
    return (double)n / secs;
}

static int rmodel_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

static char *make_dir(const char *name)
{
    const char *parent = getenv("EF_BENCH_DIR");
    char tmpl[4200];
    snprintf(tmpl, sizeof tmpl, "%s/eventfold-bench-%s-XXXXXX", parent && *parent ? parent : "/tmp", name);
    if (!mkdtemp(tmpl))
        die("mkdtemp", strerror(errno));
    return xstrdup(tmpl);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

enum { MAX_ROUNDS = 9 };

int main(void)
{
    const char *ns = getenv("EF_BENCH_N"), *rs = getenv("EF_BENCH_ROUNDS"), *bs = getenv("EF_BENCH_SECONDS");
    if (bs && *bs && atof(bs) > 0)
        budget_ns = (uint64_t)(atof(bs) * 1e9);
    uint64_t n = ns && *ns ? strtoull(ns, NULL, 10) : 2000;
    int rounds = rs && *rs ? atoi(rs) : 3;
    if (n < 10)
        n = 10;
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 3;
    memset(payload, 'p', sizeof payload - 1);
    size_t rec = record_size();

    /* The disk is shared and noisy: the four measurements are interleaved, repeated, and
     * each reported as its median. */
    double single[MAX_ROUNDS], group[MAX_ROUNDS], per_sync[MAX_ROUNDS], raw[MAX_ROUNDS], pre[MAX_ROUNDS];
    double rawg[MAX_ROUNDS], rawc[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        char *d1 = make_dir("single"), *d2 = make_dir("group"), *d3 = make_dir("raw");
        /* sync() first, so that no measurement pays for the write-back of the previous. */
        sync();
        raw[r] = bench_raw(d3, n, rec, 0, 1);
        sync();
        pre[r] = bench_raw(d3, n, rec, 1, 1);
        sync();
        rawg[r] = bench_raw(d3, n / 4 + 1, rec, 0, GROUP_PROCS);
        sync();
        rawc[r] = bench_raw_concurrent(d3, (n * 4) / GROUP_PROCS + 1, rec);
        sync();
        single[r] = bench_single(d1, n);
        sync();
        group[r] = bench_group(d2, (n * 4) / GROUP_PROCS + 1, &per_sync[r]);
        nftw(d1, rmodel_one, 16, FTW_DEPTH | FTW_PHYS);
        nftw(d2, rmodel_one, 16, FTW_DEPTH | FTW_PHYS);
        nftw(d3, rmodel_one, 16, FTW_DEPTH | FTW_PHYS);
        free(d1), free(d2), free(d3);
    }
    double s = median(single, rounds), g = median(group, rounds), ps = median(per_sync, rounds);
    double w = median(raw, rounds), p = median(pre, rounds), rg = median(rawg, rounds);
    double rc = median(rawc, rounds);

#ifdef __SANITIZE_ADDRESS__
    printf("note: built with AddressSanitizer; CPU-bound figures are pessimistic\n");
#endif
    printf("record %zu bytes; medians of %d rounds; dir %s\n", rec, rounds,
           getenv("EF_BENCH_DIR") && *getenv("EF_BENCH_DIR") ? getenv("EF_BENCH_DIR") : "/tmp");
    printf("single writer, one fdatasync per append  %8.0f appends/s\n", s);
    printf("group commit, %d appending processes     %8.0f appends/s  (%.1f appends per fdatasync)\n",
           GROUP_PROCS, g, ps);
    printf("raw ceiling: pwrite+fdatasync, growing   %8.0f writes/s\n", w);
    printf("raw: pwrite+fdatasync, pre-allocated     %8.0f writes/s\n", p);
    printf("raw group ceiling: %d records/fdatasync  %8.0f records/s\n", GROUP_PROCS, rg);
    printf("raw: %d processes append+fdatasync      %8.0f records/s\n", GROUP_PROCS, rc);
    printf("ratios: single/raw %.2f  group/raw %.2f  group/single %.2f  pre-allocated/growing %.2f  "
           "group/raw-group %.2f\n", s / w, g / w, g / s, p / w, g / (rg > rc ? rg : rc));
    printf("log_record_bytes=%zu\nlog_rounds=%d\nlog_group_procs=%d\n", rec, rounds, GROUP_PROCS);
    printf("log_single_appends_per_second=%.0f\nlog_group_appends_per_second=%.0f\n", s, g);
    printf("log_group_appends_per_fdatasync=%.2f\n", ps);
    printf("raw_growing_appends_per_second=%.0f\nraw_prealloc_appends_per_second=%.0f\n", w, p);
    printf("raw_group_batched_appends_per_second=%.0f\n", rg);
    printf("raw_group_concurrent_appends_per_second=%.0f\n", rc);
    /* The ceilings the report uses: the better of the ways to get there. */
    printf("raw_appends_per_second=%.0f\n", w > p ? w : p);
    printf("raw_group_appends_per_second=%.0f\n", rg > rc ? rg : rc);
    return 0;
}
