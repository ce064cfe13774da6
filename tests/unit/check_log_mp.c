/* check_log_mp: the event log across processes and threads: concurrent appenders with
 * group commit, threads sharing one handle, an append-lock holder killed mid-write, futex
 * wake-ups of log_wait_durable, a crash loop of SIGKILLed appenders, and follow mode (a
 * reader process that writes nothing yet sees a writer's appends). Every child is waited for (and killed by PID on timeout). */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log/io.h"
#include "log/log.h"
#include "log/log_int.h"
#include "log_testutil.h"
#include "testdir.h"
#include "util/clock.h"
#include "util/xalloc.h"

static char *base;

static void base_setup(void) { base = lt_mkdtemp("check_log_mp"); }
static void base_teardown(void)
{
    td_rmtree(base);
    free(base);
    base = NULL;
}

static const char *newdir(const char *name)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", base, name);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    return path;
}

/* Waits for pid until deadline (monotonic ns); kills it on timeout. Returns the status. */
static int wait_child(pid_t pid, uint64_t deadline)
{
    int status;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            return status;
        ck_assert_int_eq(w, 0);
        if (ef_mono_ns() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            ck_abort_msg("child %d timed out", (int)pid);
        }
        usleep(5000);
    }
}

static void expect_clean(const char *dir, uint64_t records)
{
    struct log_options opt = { .read_only = 1 };
    struct log *ro = NULL;
    ck_assert_int_eq(log_open(dir, &opt, &ro), 0);
    uint64_t count;
    ck_assert_msg(log_verify(ro, &count) == 0, "verify: %s", log_last_error(ro));
    ck_assert_uint_eq(count, records);
    log_close(ro);
}

/* --- 4 processes x 10 000 appends ------------------------------------------------------ */

enum { PROCS = 4, PER_PROC = 10000 };

/* Children first drop the parent's handle they inherited (its memory, fds and mapping;
 * the parent's flock stays, it belongs to the parent's open file description too). */
static void appender_child(const char *dir, int k, struct log *inherited)
{
    log_close(inherited);
    struct log_options opt = { .segment_bytes = 256 << 10 };
    struct log *lg = NULL;
    if (log_open(dir, &opt, &lg) != 0) {
        fprintf(stderr, "child %d: open: %s\n", k, log_last_error(NULL));
        _exit(1);
    }
    char stream[32], data[64];
    int sl = snprintf(stream, sizeof stream, "proc-%d", k);
    for (uint64_t i = 1; i <= PER_PROC; i++) {
        int dl = snprintf(data, sizeof data, "{\"p\":%d,\"i\":%" PRIu64 "}", k, i);
        struct log_event ev = { .stream = stream, .stream_len = (size_t)sl, .type = "Tick", .type_len = 4,
                                .schema_version = 1, .stream_version = i, .timestamp_ms = (int64_t)i,
                                .data = data, .data_len = (size_t)dl };
        uint64_t pos;
        int err = log_append(lg, &ev, &pos);
        if (err || log_durable(lg) < pos) {
            fprintf(stderr, "child %d: append %" PRIu64 ": %s\n", k, i, log_last_error(lg));
            _exit(1);
        }
    }
    log_close(lg);
    _exit(0);
}

START_TEST(test_concurrent_appenders)
{
    const char *dir = newdir("concurrent");
    /* The parent keeps the log open too, so the children attach to its control block. */
    struct log *lg = lt_open(dir, 256 << 10);
    pid_t pids[PROCS];
    uint64_t t0 = ef_mono_ns();
    for (int k = 0; k < PROCS; k++) {
        pids[k] = fork();
        ck_assert_int_ge(pids[k], 0);
        if (pids[k] == 0)
            appender_child(dir, k, lg);
    }
    uint64_t deadline = ef_mono_ns() + 120ull * 1000000000u;
    for (int k = 0; k < PROCS; k++) {
        int st = wait_child(pids[k], deadline);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d failed", k);
    }
    double secs = (double)(ef_mono_ns() - t0) / 1e9;
    fprintf(stderr, "check_log_mp: %d appends by %d processes in %.2f s (%.0f appends/s)\n", PROCS * PER_PROC,
            PROCS, secs, PROCS * PER_PROC / secs);
    ck_assert_uint_eq(log_head(lg), PROCS * PER_PROC);
    ck_assert_uint_eq(log_durable(lg), PROCS * PER_PROC);

    struct log_reader *rd = NULL;
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    struct log_record rec;
    uint64_t next[PROCS] = { 1, 1, 1, 1 }, pos = 0;
    int r;
    while ((r = log_reader_next(rd, log_head(lg), &rec)) == 1) {
        ck_assert_uint_eq(rec.position, ++pos);
        int k = -1;
        ck_assert_int_eq(sscanf(rec.stream, "proc-%d", &k), 1);
        ck_assert(k >= 0 && k < PROCS);
        /* Each process's own records are all there, in its order. */
        ck_assert_uint_eq(rec.stream_version, next[k]);
        next[k]++;
    }
    ck_assert_int_eq(r, 0);
    ck_assert_uint_eq(pos, PROCS * PER_PROC);
    for (int k = 0; k < PROCS; k++)
        ck_assert_uint_eq(next[k], PER_PROC + 1);
    log_reader_close(rd);
    log_close(lg);
    expect_clean(dir, PROCS * PER_PROC);
}
END_TEST

/* --- threads of one process sharing a handle ------------------------------------------ */

enum { THREADS = 8, PER_THREAD = 500 };

struct thread_arg {
    struct log *lg;
    int k;
    int err;
    int per_thread; /* appends; PER_THREAD when 0 */
};

static void *appender_thread(void *p)
{
    struct thread_arg *a = p;
    char stream[32];
    int sl = snprintf(stream, sizeof stream, "thread-%d", a->k);
    uint64_t n = a->per_thread ? (uint64_t)a->per_thread : PER_THREAD;
    for (uint64_t i = 1; i <= n && !a->err; i++) {
        struct log_event ev = { .stream = stream, .stream_len = (size_t)sl, .type = "Tick", .type_len = 4,
                                .stream_version = i, .data = "{}", .data_len = 2 };
        uint64_t pos;
        a->err = log_append(a->lg, &ev, &pos);
        if (!a->err && log_durable(a->lg) < pos)
            a->err = -1;
    }
    return NULL;
}

START_TEST(test_threads_share_handle)
{
    const char *dir = newdir("threads");
    struct log *lg = lt_open(dir, 16 << 10);
    pthread_t th[THREADS];
    struct thread_arg args[THREADS];
    for (int k = 0; k < THREADS; k++) {
        args[k] = (struct thread_arg){ .lg = lg, .k = k };
        ck_assert_int_eq(pthread_create(&th[k], NULL, appender_thread, &args[k]), 0);
    }
    for (int k = 0; k < THREADS; k++) {
        pthread_join(th[k], NULL);
        ck_assert_msg(args[k].err == 0, "thread %d: %s", k, log_strerror(args[k].err));
    }
    struct log_reader *rd = NULL;
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    struct log_record rec;
    uint64_t next[THREADS], pos = 0;
    for (int k = 0; k < THREADS; k++)
        next[k] = 1;
    while (log_reader_next(rd, log_head(lg), &rec) == 1) {
        ck_assert_uint_eq(rec.position, ++pos);
        int k = -1;
        ck_assert_int_eq(sscanf(rec.stream, "thread-%d", &k), 1);
        ck_assert(k >= 0 && k < THREADS);
        ck_assert_uint_eq(rec.stream_version, next[k]++);
    }
    ck_assert_uint_eq(pos, THREADS * PER_THREAD);
    log_reader_close(rd);
    log_close(lg);
    expect_clean(dir, THREADS * PER_THREAD);
}
END_TEST

/* --- processes of several threads each ------------------------------------------------ */

/* The command workers' shape: several processes, each with threads sharing one handle, all
 * appending and syncing at once. Group-commit leaders go on for several rounds and wake
 * only the waiters a round covered (a futex bitset per position mod 32, so waiters of
 * positions 32 apart share a bit): every append must still return durable, none may
 * sleep forever, and the log must hold every record once, in each thread's order. */
enum { MIX_PROCS = 3, MIX_THREADS = 6, MIX_PER_THREAD = 300 };

static void mixed_child(const char *dir, int p, struct log *inherited)
{
    log_close(inherited);
    struct log_options opt = { .segment_bytes = 64 << 10 };
    struct log *lg = NULL;
    if (log_open(dir, &opt, &lg) != 0)
        _exit(1);
    pthread_t th[MIX_THREADS];
    struct thread_arg args[MIX_THREADS];
    for (int k = 0; k < MIX_THREADS; k++) {
        args[k] = (struct thread_arg){ .lg = lg, .k = p * MIX_THREADS + k, .per_thread = MIX_PER_THREAD };
        if (pthread_create(&th[k], NULL, appender_thread, &args[k]) != 0)
            _exit(1);
    }
    int bad = 0;
    for (int k = 0; k < MIX_THREADS; k++) {
        pthread_join(th[k], NULL);
        if (args[k].err) {
            fprintf(stderr, "process %d thread %d: %s\n", p, k, log_strerror(args[k].err));
            bad = 1;
        }
    }
    log_close(lg);
    _exit(bad);
}

START_TEST(test_procs_of_threads)
{
    const char *dir = newdir("mixed");
    struct log *lg = lt_open(dir, 64 << 10);
    pid_t pids[MIX_PROCS];
    for (int p = 0; p < MIX_PROCS; p++) {
        pids[p] = fork();
        ck_assert_int_ge(pids[p], 0);
        if (pids[p] == 0)
            mixed_child(dir, p, lg);
    }
    uint64_t deadline = ef_mono_ns() + 120ull * 1000000000u;
    for (int p = 0; p < MIX_PROCS; p++) {
        int st = wait_child(pids[p], deadline);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "process %d failed", p);
    }
    enum { N = MIX_PROCS * MIX_THREADS };
    ck_assert_uint_eq(log_head(lg), N * MIX_PER_THREAD);
    ck_assert_uint_eq(log_durable(lg), N * MIX_PER_THREAD);
    struct log_reader *rd = NULL;
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    struct log_record rec;
    uint64_t next[N], pos = 0;
    for (int k = 0; k < N; k++)
        next[k] = 1;
    while (log_reader_next(rd, log_head(lg), &rec) == 1) {
        ck_assert_uint_eq(rec.position, ++pos);
        int k = -1;
        ck_assert_int_eq(sscanf(rec.stream, "thread-%d", &k), 1);
        ck_assert(k >= 0 && k < N);
        ck_assert_uint_eq(rec.stream_version, next[k]++);
    }
    ck_assert_uint_eq(pos, N * MIX_PER_THREAD);
    log_reader_close(rd);
    log_close(lg);
    expect_clean(dir, N * MIX_PER_THREAD);
}
END_TEST

/* The waiters a round wakes: bit (P mod 32) of every position P it made durable. */
START_TEST(test_sync_wake_bits)
{
    ck_assert_uint_eq(log_sync_wake_bits(5, 5), 0);
    ck_assert_uint_eq(log_sync_wake_bits(6, 5), 0);
    ck_assert_uint_eq(log_sync_wake_bits(0, 1), 1u << 1);
    ck_assert_uint_eq(log_sync_wake_bits(3, 6), (1u << 4) | (1u << 5) | (1u << 6));
    ck_assert_uint_eq(log_sync_wake_bits(30, 33), (1u << 31) | 1u | (1u << 1));
    ck_assert_uint_eq(log_sync_wake_bits(63, 64), 1u);
    ck_assert_uint_eq(log_sync_wake_bits(1, 32), 0xffffffffu & ~(1u << 1));
    ck_assert_uint_eq(log_sync_wake_bits(1, 33), 0xffffffffu);
    ck_assert_uint_eq(log_sync_wake_bits(100, 100000), 0xffffffffu);
}
END_TEST

/* --- an append-lock holder dies ------------------------------------------------------ */

/* pwrite hook of the dying child: half the record reaches the file, then SIGKILL. */
static ssize_t half_then_die(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t r = pwrite(fd, buf, n / 2, off);
    (void)r;
    kill(getpid(), SIGKILL);
    return -1;
}

/* Forks a child that opens dir and dies holding the append lock: after writing half a
 * record when `half`, else right after taking the lock. */
static void die_holding_lock(const char *dir, uint64_t segment_bytes, int half)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct log_options opt = { .segment_bytes = segment_bytes };
        struct log *lg = NULL;
        if (log_open(dir, &opt, &lg) != 0)
            _exit(1);
        char buf[1024];
        struct log_event ev;
        lt_event(99, 300, buf, &ev);
        if (half) {
            log_io.pwrite = half_then_die;
            log_append(lg, &ev, NULL);
        } else if (log_append_begin(lg) == 0) {
            kill(getpid(), SIGKILL);
        }
        _exit(1);
    }
    int st = wait_child(pid, ef_mono_ns() + 30ull * 1000000000u);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child did not die by SIGKILL");
}

START_TEST(test_holder_killed)
{
    const char *dir = newdir("killed");
    struct log *lg = lt_open(dir, 0);
    lt_append_n(lg, 1, 3, 50);
    char seg[4200];
    snprintf(seg, sizeof seg, "%s", lt_seg(dir, 1));
    uint64_t size = lt_data_size(seg);

    die_holding_lock(dir, 0, 1);
    uint64_t half = lt_data_size(seg) - size;
    ck_assert_uint_gt(half, 0); /* the half record is there */
    ck_assert_uint_eq(log_head(lg), 3);
    lt_stderr_begin();
    lt_append_n(lg, 4, 1, 50);
    const char *report = lt_stderr_end();
    /* The half record is counted, not the zeros written ahead after it. */
    char want[64];
    snprintf(want, sizeof want, "bytes=%" PRIu64 " zero_bytes=", half);
    ck_assert_msg(strstr(report, "cut unpublished tail") && strstr(report, want), "report: %s", report);

    die_holding_lock(dir, 0, 0); /* dies with the lock and nothing written */
    lt_append_n(lg, 5, 2, 50);
    log_close(lg);
    expect_clean(dir, 6);
}
END_TEST

START_TEST(test_holder_killed_while_rolling)
{
    const char *dir = newdir("killedroll");
    const uint64_t seg_bytes = 1024;
    struct log *lg = lt_open(dir, seg_bytes);
    lt_append_n(lg, 1, 1, 0);
    /* Fill segment 1 until the dying child's record no longer fits, so that it must roll
     * (the parent's own records are smaller, so they do not roll meanwhile). */
    char buf[1024];
    struct log_event ev;
    lt_event(99, 300, buf, &ev);
    uint64_t pos = 2, child_size = record_encoded_size(&ev);
    while (lt_data_size(lt_seg(dir, 1)) + child_size <= seg_bytes)
        lt_append_n(lg, pos++, 1, 0);
    ck_assert_uint_eq(lt_count_segments(dir), 1);
    size_t nseg = lt_count_segments(dir);
    die_holding_lock(dir, seg_bytes, 1);
    ck_assert_uint_eq(lt_count_segments(dir), nseg + 1); /* it created the new segment */
    lt_append_n(lg, pos, 1, 0);
    lt_append_n(lg, pos + 1, 30, 100);
    log_close(lg);
    expect_clean(dir, pos + 30);
}
END_TEST

/* --- log_wait_durable across processes ------------------------------------------------ */

START_TEST(test_wait_durable)
{
    const char *dir = newdir("wait");
    struct log *lg = lt_open(dir, 0);
    char buf[1024];
    struct log_event ev;
    lt_event(1, 0, buf, &ev);
    uint64_t pos;
    ck_assert_int_eq(log_append_begin(lg), 0);
    ck_assert_int_eq(log_append_record(lg, &ev, &pos), 0);
    log_append_end(lg);
    ck_assert_uint_eq(log_durable(lg), 0);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        log_close(lg);
        usleep(200 * 1000);
        struct log *c = NULL;
        struct log_options opt = { 0 };
        int ok = log_open(dir, &opt, &c) == 0 && log_sync(c, 1) == 0;
        log_close(c);
        _exit(ok ? 0 : 1);
    }
    uint64_t t0 = ef_mono_ns();
    ck_assert_int_eq(log_wait_durable(lg, 0, 20000), 1);
    uint64_t waited = ef_mono_ns() - t0;
    ck_assert_uint_ge(log_durable(lg), 1);
    ck_assert_msg(waited < 15ull * 1000000000u, "woke only after %" PRIu64 " ns", waited);
    int st = wait_child(pid, ef_mono_ns() + 30ull * 1000000000u);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* Nothing moves: a timeout, not before it is due. */
    t0 = ef_mono_ns();
    ck_assert_int_eq(log_wait_durable(lg, log_durable(lg), 150), 0);
    ck_assert_uint_ge(ef_mono_ns() - t0, 140ull * 1000000u);
    ck_assert_int_eq(log_wait_durable(lg, 0, 0), 1);
    log_close(lg);
}
END_TEST

/* --- crash loop ----------------------------------------------------------------------- */

/* Appends forever, reporting each acknowledged (durable) position on fd. Each event's
 * stream_version is the position it expects, so a record landing at another position
 * is caught by the parent. */
static void crash_child(const char *dir, int fd)
{
    struct log_options opt = { .segment_bytes = 32 << 10 };
    struct log *lg = NULL;
    if (log_open(dir, &opt, &lg) != 0)
        _exit(1);
    char buf[1024];
    for (;;) {
        struct log_event ev;
        uint64_t expect = log_head(lg) + 1, pos;
        lt_event(expect, 200, buf, &ev);
        if (log_append(lg, &ev, &pos) != 0 || pos != expect)
            _exit(1);
        if (write(fd, &pos, sizeof pos) != sizeof pos)
            _exit(1);
    }
}

START_TEST(test_crash_loop)
{
    const char *dir = newdir("crash");
    unsigned seed = 12345;
    uint64_t acked = 0;
    for (int round = 0; round < 50; round++) {
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(p[0]);
            crash_child(dir, p[1]);
        }
        close(p[1]);
        /* The kill comes at a random time after the child's first acknowledgement, not
         * after its start: so every round appends, however slow the machine is (loaded,
         * or a sanitizer build), and the total below does not depend on timing. */
        uint64_t pos;
        if (read(p[0], &pos, sizeof pos) == sizeof pos) {
            ck_assert_uint_eq(pos, acked + 1);
            acked = pos;
        }
        usleep(5000 + (useconds_t)(rand_r(&seed) % 40000));
        kill(pid, SIGKILL);
        int st = wait_child(pid, ef_mono_ns() + 30ull * 1000000000u);
        ck_assert_msg(WIFSIGNALED(st), "crash child exited on its own (status %d)", st);
        while (read(p[0], &pos, sizeof pos) == sizeof pos) {
            ck_assert_uint_eq(pos, acked + 1);
            acked = pos;
        }
        close(p[0]);

        /* Sole opener: recovery from the files. Everything acknowledged is there. */
        struct log *lg = lt_open(dir, 32 << 10);
        ck_assert_int_eq(log_recovered(lg), 1);
        ck_assert_uint_ge(log_head(lg), acked);
        struct log_reader *rd = NULL;
        ck_assert_int_eq(log_reader_open(lg, acked > 20 ? acked - 20 : 1, &rd), 0);
        struct log_record rec;
        int r;
        while ((r = log_reader_next(rd, log_head(lg), &rec)) == 1)
            ck_assert_uint_eq(rec.stream_version, rec.position);
        ck_assert_int_eq(r, 0);
        log_reader_close(rd);
        acked = log_head(lg); /* unacknowledged but complete records stay */
        log_close(lg);
        expect_clean(dir, acked);
    }
    ck_assert_uint_ge(acked, 50); /* at least one acknowledged append per round */
}
END_TEST

/* --- follow mode: read-only in fact ------------------------------------------------------ */

static struct log *follow_open(const char *dir)
{
    struct log_options opt = { .follow = 1 };
    struct log *lg = NULL;
    int err = log_open(dir, &opt, &lg);
    ck_assert_msg(err == 0, "follow open: %s", log_last_error(NULL));
    return lg;
}

/* Counts the records readable up to limit from position 1, checking their sequence. */
static uint64_t read_count(struct log *lg, uint64_t limit)
{
    struct log_reader *rd;
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    struct log_record rec;
    uint64_t n = 0;
    int r;
    while ((r = log_reader_next(rd, limit, &rec)) == 1)
        ck_assert_uint_eq(rec.position, ++n);
    ck_assert_msg(r == 0, "reader: %s", log_last_error(lg));
    log_reader_close(rd);
    return n;
}

/* A child in follow mode sees a writer's appends as they become durable (futex wake-ups
 * through its read-only mapping) and reads them all; its durable position never moves
 * past what the writer made durable. */
START_TEST(test_follow_writer)
{
    const char *dir = newdir("follow");
    struct log *lg = lt_open(dir, 4096); /* small segments: the child crosses into new ones */
    lt_append_n(lg, 1, 3, 0);
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    const uint64_t total = 40;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        log_close(lg);
        struct log *f = follow_open(dir);
        int ok = log_head(f) == 3 && log_durable(f) == 3;
        ok = ok && write(ready[1], "r", 1) == 1;
        uint64_t deadline = ef_mono_ns() + 60ull * 1000000000u, seen = 3;
        while (ok && seen < total && ef_mono_ns() < deadline) {
            log_wait_durable(f, seen, 1000);
            uint64_t d = log_durable(f);
            ok = d >= seen && d <= total;
            seen = d;
        }
        ok = ok && seen == total && read_count(f, log_durable(f)) == total;
        log_close(f);
        _exit(ok ? 0 : 1);
    }
    char c;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    lt_append_n(lg, 4, total - 3, 300);
    int st = wait_child(pid, ef_mono_ns() + 90ull * 1000000000u);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "follower failed");
    close(ready[0]);
    close(ready[1]);
    log_close(lg);
}
END_TEST

struct file_state {
    char name[256];
    struct stat st;
};

/* Every entry of dir with its stat: the evidence that nothing was written. */
static size_t dir_state(const char *dir, struct file_state *out, size_t cap)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "ls -A '%s'", dir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = 0;
    while (n < cap && fgets(out[n].name, sizeof out[n].name, p)) {
        out[n].name[strcspn(out[n].name, "\n")] = 0;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, out[n].name);
        ck_assert_int_eq(stat(path, &out[n].st), 0);
        n++;
    }
    pclose(p);
    return n;
}

static void expect_same_state(const char *dir, const struct file_state *before, size_t n)
{
    struct file_state after[32];
    size_t m = dir_state(dir, after, 32);
    ck_assert_uint_eq(m, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(after[i].name, before[i].name);
        ck_assert_msg(after[i].st.st_size == before[i].st.st_size &&
                      after[i].st.st_mtim.tv_sec == before[i].st.st_mtim.tv_sec &&
                      after[i].st.st_mtim.tv_nsec == before[i].st.st_mtim.tv_nsec &&
                      after[i].st.st_ctim.tv_nsec == before[i].st.st_ctim.tv_nsec,
                      "%s was modified", after[i].name);
    }
}

/* With nobody else on the log, a follow open finds the head on disk, ignores a torn tail
 * without cutting it, stops at a sync-failure marker, and modifies no file; a writer that
 * then starts recovers (it was not fooled into attaching) and the follower picks it up. */
START_TEST(test_follow_writes_nothing)
{
    const char *dir = newdir("follow-ro");
    struct log *lg = lt_open(dir, 0);
    lt_append_n(lg, 1, 5, 0);
    log_close(lg);
    /* A torn tail: half a record's worth of garbage after the last one. */
    int fd = open(lt_seg(dir, 1), O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "\x01\x02\x03\x04\x05\x06\x07\x08garbage!", 16), 16);
    close(fd);
    struct file_state before[32];
    size_t n = dir_state(dir, before, 32);
    usleep(20 * 1000); /* a write now would move an mtime */

    struct log *f = follow_open(dir);
    ck_assert_uint_eq(log_head(f), 5);
    ck_assert_uint_eq(log_durable(f), 5);
    ck_assert_uint_eq(read_count(f, log_durable(f)), 5);
    struct log_event ev;
    char buf[1024];
    lt_event(6, 0, buf, &ev);
    ck_assert_int_eq(log_append_begin(f), LOG_EREADONLY);
    ck_assert_int_eq(log_wait_durable(f, 5, 50), 0);
    expect_same_state(dir, before, n);

    /* A failed fdatasync had left position 3 as the last durable one. */
    char marker[4400];
    snprintf(marker, sizeof marker, "%s/sync-failed", dir);
    lt_write_file(marker, "3\n", 2);
    struct log *g = follow_open(dir);
    ck_assert_uint_eq(log_durable(g), 3);
    log_close(g);
    ck_assert_int_eq(unlink(marker), 0);

    /* A writer now finds itself alone (the follower holds no lock): it recovers, cutting
     * the torn tail, and the follower follows its appends. */
    lg = lt_open(dir, 0);
    ck_assert_int_eq(log_recovered(lg), 1);
    lt_append_n(lg, 6, 2, 0);
    uint64_t deadline = ef_mono_ns() + 20ull * 1000000000u;
    while (log_durable(f) < 7 && ef_mono_ns() < deadline)
        log_wait_durable(f, log_durable(f), 500);
    ck_assert_uint_eq(log_durable(f), 7);
    ck_assert_uint_eq(log_head(f), 7);
    ck_assert_uint_eq(read_count(f, 7), 7);

    /* Every writer leaves and a new one re-initializes the block: positions never go back. */
    log_close(lg);
    ck_assert_uint_eq(log_durable(f), 7);
    lg = lt_open(dir, 0);
    ck_assert_int_eq(log_recovered(lg), 1);
    ck_assert_uint_eq(log_durable(f), 7);
    lt_append_n(lg, 8, 1, 0);
    ck_assert_uint_eq(log_durable(f), 8);
    log_close(lg);
    log_close(f);
}
END_TEST

/* A follower on a log nobody ever opened (no directory yet) is an empty log, and never
 * creates anything. */
START_TEST(test_follow_empty)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/follow-none", base);
    struct log *f = follow_open(dir);
    ck_assert_uint_eq(log_head(f), 0);
    ck_assert_int_eq(log_wait_durable(f, 0, 30), 0);
    ck_assert_int_eq(access(dir, F_OK), -1);
    ck_assert_int_eq(errno, ENOENT);
    log_close(f);
}
END_TEST

static Suite *log_mp_suite(void)
{
    Suite *s = suite_create("log_mp");
    TCase *tc = tcase_create("processes");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_set_timeout(tc, 150);
    tcase_add_test(tc, test_concurrent_appenders);
    tcase_add_test(tc, test_threads_share_handle);
    tcase_add_test(tc, test_procs_of_threads);
    tcase_add_test(tc, test_sync_wake_bits);
    tcase_add_test(tc, test_holder_killed);
    tcase_add_test(tc, test_holder_killed_while_rolling);
    tcase_add_test(tc, test_wait_durable);
    tcase_add_test(tc, test_crash_loop);
    tcase_add_test(tc, test_follow_writer);
    tcase_add_test(tc, test_follow_writes_nothing);
    tcase_add_test(tc, test_follow_empty);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_mp_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
