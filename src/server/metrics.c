#include <config.h>

#include "server/metrics.h"

#include "server/server.h"
#include "util/falloc.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATUS_MIN 100
#define STATUS_SLOTS 500 /* 100..599 */

/* Upper bounds of the histogram buckets in nanoseconds, with their Prometheus `le`
 * text. Stored counts are per bucket (not cumulative); the renderer accumulates. The
 * extra last slot counts durations above the largest bound (the +Inf bucket). */
static const uint64_t bucket_ns[] = {
    500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
    100000000, 250000000, 500000000, 1000000000, 2500000000u, 5000000000u,
};
static const char *const bucket_le[] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1", "0.25", "0.5", "1", "2.5", "5",
};
#define N_BUCKETS (sizeof bucket_ns / sizeof bucket_ns[0])

enum { SLOT_FREE = 0, SLOT_CLAIMING = 1, SLOT_READY = 2 };

/* Invariant: name is written only by the process that moved state FREE -> CLAIMING, and
 * read only after state is READY (release/acquire), so it is never seen half-written. */
struct metrics_route {
    _Atomic uint32_t state;
    char name[METRICS_ROUTE_LEN];
    _Atomic uint64_t status[STATUS_SLOTS];
    _Atomic uint64_t bucket[N_BUCKETS + 1];
    _Atomic uint64_t sum_ns;
};

#define METRICS_MAGIC 0x6566206d65747232ull /* "ef metr2": bump with the layout */

/* Invariant: magic is stored (release) only after slot 0 is ready, so a reader that
 * sees the magic sees an initialised region. */
struct metrics_shm {
    _Atomic uint64_t magic;
    struct metrics_route routes[METRICS_ROUTES];
    _Atomic uint64_t stage_count[METRICS_STAGES];
    _Atomic uint64_t stage_sum_ns[METRICS_STAGES];
};

static const char *const stage_names[METRICS_STAGES] = { "append_lock_wait", "append_locked", "sync_wait" };

static struct metrics_shm *shm;

static void region_init(struct metrics_shm *m)
{
    /* fresh mappings are zero-filled: every slot FREE, every counter 0 */
    memcpy(m->routes[0].name, "other", sizeof "other");
    atomic_store_explicit(&m->routes[0].state, SLOT_READY, memory_order_release);
    atomic_store_explicit(&m->magic, METRICS_MAGIC, memory_order_release);
}

int metrics_init(void)
{
    if (shm)
        return 0;
    void *p = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    shm = p;
    region_init(shm);
    return 0;
}


/* The region is built in a new file and renamed over path, so a reader never maps a
 * file that is being truncated (SIGBUS) and counters restart from zero with each master,
 * as Prometheus expects of a restarted process. */
int metrics_init_file(const char *path)
{
    if (shm)
        return 0;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    void *p = MAP_FAILED;
    if (fchmod(fd, 0644) < 0)
        rc = -errno;
    if (rc == 0)
        rc = ef_allocate(fd, (off_t)sizeof *shm); /* util/falloc.h: no SIGBUS on a full disk */
    if (rc == 0 && (p = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
        rc = -errno;
    if (rc == 0) {
        region_init(p);
        if (rename(tmp, path) < 0)
            rc = -errno;
    }
    close(fd);
    if (rc < 0) {
        if (p != MAP_FAILED)
            munmap(p, sizeof *shm);
        unlink(tmp);
        return rc;
    }
    shm = p;
    return 0;
}

void metrics_fini(void)
{
    if (shm)
        munmap(shm, sizeof *shm);
    shm = NULL;
}

/* Waits (bounded) for a slot another process is claiming; returns its final state. A
 * process killed between claim and publish leaves the slot CLAIMING forever: after the
 * bound the caller treats it as taken by an unknown label. */
static uint32_t settle(struct metrics_route *r)
{
    uint32_t st = atomic_load_explicit(&r->state, memory_order_acquire);
    for (int spins = 0; st == SLOT_CLAIMING && spins < 10000; spins++) {
        sched_yield();
        st = atomic_load_explicit(&r->state, memory_order_acquire);
    }
    return st;
}

int metrics_route_id(const char *route)
{
    if (!shm || !route || strlen(route) >= METRICS_ROUTE_LEN)
        return 0;
    for (int i = 1; i < METRICS_ROUTES; i++) {
        struct metrics_route *r = &shm->routes[i];
        uint32_t expected = SLOT_FREE;
        if (atomic_compare_exchange_strong_explicit(&r->state, &expected, SLOT_CLAIMING,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            memcpy(r->name, route, strlen(route) + 1);
            atomic_store_explicit(&r->state, SLOT_READY, memory_order_release);
            return i;
        }
        /* Slots are claimed in index order, so the label is either in an earlier or
         * this slot, or not registered yet. */
        if (settle(r) == SLOT_READY && strcmp(r->name, route) == 0)
            return i;
    }
    return 0;
}

void metrics_observe(int route_id, int status, uint64_t duration_ns)
{
    if (!shm)
        return;
    if (route_id < 0 || route_id >= METRICS_ROUTES)
        route_id = 0;
    if (status < STATUS_MIN || status >= STATUS_MIN + STATUS_SLOTS)
        status = 500;
    struct metrics_route *r = &shm->routes[route_id];
    size_t b = 0;
    while (b < N_BUCKETS && duration_ns > bucket_ns[b])
        b++;
    atomic_fetch_add_explicit(&r->status[status - STATUS_MIN], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->sum_ns, duration_ns, memory_order_relaxed);
}

void metrics_stage(enum metrics_stage stage, uint64_t duration_ns)
{
    if (!shm || (unsigned)stage >= METRICS_STAGES)
        return;
    atomic_fetch_add_explicit(&shm->stage_count[stage], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&shm->stage_sum_ns[stage], duration_ns, memory_order_relaxed);
}

/* Label values escape '\\', '"' and newline (text format 0.0.4). */
static void put_label(struct sbuf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            sbuf_putc(out, '\\');
        if (*s == '\n') {
            sbuf_puts(out, "\\n");
            continue;
        }
        sbuf_putc(out, *s);
    }
}

/* Rendering merges several regions (this program's and other programs' files): the
 * series of one route label are summed over every region that has it, so a family is
 * written once with one series per label set, as the text format requires. */
struct render_set {
    const struct metrics_shm *regions[1 + SERVER_METRICS_MAX_FILES];
    size_t n;
};

static int route_ready(const struct metrics_route *r)
{
    return atomic_load_explicit(&((struct metrics_route *)r)->state, memory_order_acquire) == SLOT_READY;
}

/* Whether route slot (region k, slot i) is the first occurrence of its label in the set;
 * later occurrences are summed into the first. */
static int first_occurrence(const struct render_set *rs, size_t k, int i)
{
    const char *name = rs->regions[k]->routes[i].name;
    for (size_t kk = 0; kk <= k; kk++)
        for (int ii = 0; ii < (kk == k ? i : METRICS_ROUTES); ii++) {
            const struct metrics_route *r = &rs->regions[kk]->routes[ii];
            if (route_ready(r) && strcmp(r->name, name) == 0)
                return 0;
        }
    return 1;
}

/* Calls fn for each distinct ready label with its first (region, slot). */
static void each_label(const struct render_set *rs, struct sbuf *out,
                       void (*fn)(const struct render_set *, struct sbuf *, const char *))
{
    for (size_t k = 0; k < rs->n; k++)
        for (int i = 0; i < METRICS_ROUTES; i++)
            if (route_ready(&rs->regions[k]->routes[i]) && first_occurrence(rs, k, i))
                fn(rs, out, rs->regions[k]->routes[i].name);
}

/* Sums, over the set, the counters of label into status[], bucket[] and *sum_ns. */
static void sum_label(const struct render_set *rs, const char *label, uint64_t *status,
                      uint64_t *bucket, uint64_t *sum_ns)
{
    memset(status, 0, STATUS_SLOTS * sizeof *status);
    memset(bucket, 0, (N_BUCKETS + 1) * sizeof *bucket);
    *sum_ns = 0;
    for (size_t k = 0; k < rs->n; k++)
        for (int i = 0; i < METRICS_ROUTES; i++) {
            struct metrics_route *r = (struct metrics_route *)&rs->regions[k]->routes[i];
            if (!route_ready(r) || strcmp(r->name, label) != 0)
                continue;
            for (int s = 0; s < STATUS_SLOTS; s++)
                status[s] += atomic_load_explicit(&r->status[s], memory_order_relaxed);
            for (size_t b = 0; b <= N_BUCKETS; b++)
                bucket[b] += atomic_load_explicit(&r->bucket[b], memory_order_relaxed);
            *sum_ns += atomic_load_explicit(&r->sum_ns, memory_order_relaxed);
        }
}

static void render_counters(const struct render_set *rs, struct sbuf *out, const char *label)
{
    uint64_t status[STATUS_SLOTS], bucket[N_BUCKETS + 1], sum_ns;
    sum_label(rs, label, status, bucket, &sum_ns);
    for (int s = 0; s < STATUS_SLOTS; s++) {
        if (status[s] == 0)
            continue;
        sbuf_puts(out, "eventfold_http_requests_total{route=\"");
        put_label(out, label);
        sbuf_printf(out, "\",status=\"%d\"} %llu\n", s + STATUS_MIN, (unsigned long long)status[s]);
    }
}

/* One route's histogram. _count is the cumulative +Inf bucket, so the series stay
 * consistent with each other even while other workers keep counting. */
static void render_histogram(const struct render_set *rs, struct sbuf *out, const char *label)
{
    uint64_t status[STATUS_SLOTS], counts[N_BUCKETS + 1], sum, total = 0;
    sum_label(rs, label, status, counts, &sum);
    for (size_t b = 0; b <= N_BUCKETS; b++)
        total += counts[b];
    if (total == 0)
        return;
    uint64_t cum = 0;
    for (size_t b = 0; b <= N_BUCKETS; b++) {
        cum += counts[b];
        sbuf_puts(out, "eventfold_http_request_duration_seconds_bucket{route=\"");
        put_label(out, label);
        sbuf_printf(out, "\",le=\"%s\"} %llu\n", b < N_BUCKETS ? bucket_le[b] : "+Inf",
                    (unsigned long long)cum);
    }
    sbuf_puts(out, "eventfold_http_request_duration_seconds_sum{route=\"");
    put_label(out, label);
    sbuf_printf(out, "\"} %llu.%09llu\n", (unsigned long long)(sum / 1000000000u),
                (unsigned long long)(sum % 1000000000u));
    sbuf_puts(out, "eventfold_http_request_duration_seconds_count{route=\"");
    put_label(out, label);
    sbuf_printf(out, "\"} %llu\n", (unsigned long long)total);
}

/* The stages of commands, summed over the set; nothing while no command was counted. */
static void render_stages(const struct render_set *rs, struct sbuf *out)
{
    uint64_t count[METRICS_STAGES] = { 0 }, sum[METRICS_STAGES] = { 0 }, any = 0;
    for (size_t k = 0; k < rs->n; k++)
        for (int s = 0; s < METRICS_STAGES; s++) {
            struct metrics_shm *m = (struct metrics_shm *)rs->regions[k];
            count[s] += atomic_load_explicit(&m->stage_count[s], memory_order_relaxed);
            sum[s] += atomic_load_explicit(&m->stage_sum_ns[s], memory_order_relaxed);
            any |= count[s];
        }
    if (!any)
        return;
    sbuf_puts(out, "# HELP eventfold_command_stage_seconds Time commands spent waiting for the append lock, "
                   "holding it, and waiting for their fdatasync.\n"
                   "# TYPE eventfold_command_stage_seconds summary\n");
    for (int s = 0; s < METRICS_STAGES; s++) {
        sbuf_printf(out, "eventfold_command_stage_seconds_sum{stage=\"%s\"} %llu.%09llu\n", stage_names[s],
                    (unsigned long long)(sum[s] / 1000000000u), (unsigned long long)(sum[s] % 1000000000u));
        sbuf_printf(out, "eventfold_command_stage_seconds_count{stage=\"%s\"} %llu\n", stage_names[s],
                    (unsigned long long)count[s]);
    }
}

/* Maps another program's region read-only; NULL if it is absent or not a region of
 * this layout (that program has not started yet, or is another version). */
static const struct metrics_shm *map_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    void *p = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size == (off_t)sizeof(struct metrics_shm))
        p = mmap(NULL, sizeof(struct metrics_shm), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return NULL;
    const struct metrics_shm *m = p;
    if (atomic_load_explicit(&((struct metrics_shm *)p)->magic, memory_order_acquire) != METRICS_MAGIC) {
        munmap(p, sizeof *m);
        return NULL;
    }
    return m;
}

void server_metrics_render_files(struct sbuf *out, const char *const *paths, size_t npaths)
{
    struct render_set rs = { .n = 0 };
    if (shm)
        rs.regions[rs.n++] = shm;
    for (size_t i = 0; i < npaths && i < SERVER_METRICS_MAX_FILES; i++) {
        const struct metrics_shm *m = map_file(paths[i]);
        if (m)
            rs.regions[rs.n++] = m;
    }
    sbuf_puts(out, "# HELP eventfold_http_requests_total HTTP requests answered, by route and status.\n"
                   "# TYPE eventfold_http_requests_total counter\n");
    each_label(&rs, out, render_counters);
    sbuf_puts(out, "# HELP eventfold_http_request_duration_seconds Time from accepting a request to its answer, by route.\n"
                   "# TYPE eventfold_http_request_duration_seconds histogram\n");
    each_label(&rs, out, render_histogram);
    render_stages(&rs, out);
    for (size_t k = 0; k < rs.n; k++)
        if (rs.regions[k] != shm)
            munmap((void *)rs.regions[k], sizeof(struct metrics_shm));
}

void server_metrics_render(struct sbuf *out) { server_metrics_render_files(out, NULL, 0); }

void server_metrics_gauge(struct sbuf *out, const char *name, const char *help, double value)
{
    sbuf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    if (isnan(value))
        sbuf_printf(out, "%s NaN\n", name);
    else if (isinf(value))
        sbuf_printf(out, "%s %sInf\n", name, value > 0 ? "+" : "-");
    else if (value == trunc(value) && fabs(value) < 9.0e15)
        sbuf_printf(out, "%s %lld\n", name, (long long)value); /* exact: below 2^53 */
    else
        sbuf_printf(out, "%s %.17g\n", name, value);
}
