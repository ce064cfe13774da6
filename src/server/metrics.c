#include "config.h"

#include "server/metrics.h"

#include "server/server.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

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

struct metrics_shm {
    struct metrics_route routes[METRICS_ROUTES];
};

static struct metrics_shm *shm;

int metrics_init(void)
{
    if (shm)
        return 0;
    void *p = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    shm = p; /* anonymous mappings are zero-filled: every slot FREE, every counter 0 */
    memcpy(shm->routes[0].name, "other", sizeof "other");
    atomic_store_explicit(&shm->routes[0].state, SLOT_READY, memory_order_release);
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

static void render_counters(struct sbuf *out)
{
    sbuf_puts(out, "# HELP eventfold_http_requests_total HTTP requests answered, by route and status.\n"
                   "# TYPE eventfold_http_requests_total counter\n");
    for (int i = 0; i < METRICS_ROUTES; i++) {
        struct metrics_route *r = &shm->routes[i];
        if (atomic_load_explicit(&r->state, memory_order_acquire) != SLOT_READY)
            continue;
        for (int s = 0; s < STATUS_SLOTS; s++) {
            uint64_t n = atomic_load_explicit(&r->status[s], memory_order_relaxed);
            if (n == 0)
                continue;
            sbuf_puts(out, "eventfold_http_requests_total{route=\"");
            put_label(out, r->name);
            sbuf_printf(out, "\",status=\"%d\"} %llu\n", s + STATUS_MIN, (unsigned long long)n);
        }
    }
}

/* One route's histogram. _count is the cumulative +Inf bucket, so the series stay
 * consistent with each other even while other workers keep counting. */
static void render_histogram(struct sbuf *out, struct metrics_route *r)
{
    uint64_t counts[N_BUCKETS + 1], total = 0;
    for (size_t b = 0; b <= N_BUCKETS; b++) {
        counts[b] = atomic_load_explicit(&r->bucket[b], memory_order_relaxed);
        total += counts[b];
    }
    if (total == 0)
        return;
    uint64_t cum = 0;
    for (size_t b = 0; b <= N_BUCKETS; b++) {
        cum += counts[b];
        sbuf_puts(out, "eventfold_http_request_duration_seconds_bucket{route=\"");
        put_label(out, r->name);
        sbuf_printf(out, "\",le=\"%s\"} %llu\n", b < N_BUCKETS ? bucket_le[b] : "+Inf",
                    (unsigned long long)cum);
    }
    uint64_t sum = atomic_load_explicit(&r->sum_ns, memory_order_relaxed);
    sbuf_puts(out, "eventfold_http_request_duration_seconds_sum{route=\"");
    put_label(out, r->name);
    sbuf_printf(out, "\"} %llu.%09llu\n", (unsigned long long)(sum / 1000000000u),
                (unsigned long long)(sum % 1000000000u));
    sbuf_puts(out, "eventfold_http_request_duration_seconds_count{route=\"");
    put_label(out, r->name);
    sbuf_printf(out, "\"} %llu\n", (unsigned long long)total);
}

void server_metrics_render(struct sbuf *out)
{
    if (!shm)
        return;
    render_counters(out);
    sbuf_puts(out, "# HELP eventfold_http_request_duration_seconds Time from accepting a request to its answer, by route.\n"
                   "# TYPE eventfold_http_request_duration_seconds histogram\n");
    for (int i = 0; i < METRICS_ROUTES; i++)
        if (atomic_load_explicit(&shm->routes[i].state, memory_order_acquire) == SLOT_READY)
            render_histogram(out, &shm->routes[i]);
}

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
