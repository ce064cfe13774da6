#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log/log.h"
#include "query/query.h"
#include "query/query_int.h"
#include "readmodel/rmodel_query.h"
#include "readmodel/rpos.h"
#include "query/rstatus.h"
#include "relay/relay_state.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "util/path.h"

typedef void (*route_fn)(struct qreq *q);

enum { R_TXN = 1, R_API = 2 };

struct route {
    const char *pattern; /* '*' is one {id} segment */
    const char *label;   /* metrics route label */
    route_fn fn;
    unsigned flags;
};

static void h_order(struct qreq *q);
static void h_user(struct qreq *q);
static void h_user_orders(struct qreq *q);
static void h_item(struct qreq *q);
static void h_daily(struct qreq *q);
static void h_status(struct qreq *q);
static void h_metrics(struct qreq *q);

static const struct route routes[] = {
    { "/api/orders/*", "GET /api/orders/{id}", h_order, R_TXN | R_API },
    { "/api/orders/*/events", "GET /api/orders/{id}/events", query_order_events, R_TXN | R_API },
    { "/api/users/*", "GET /api/users/{id}", h_user, R_TXN | R_API },
    { "/api/users/*/orders", "GET /api/users/{id}/orders", h_user_orders, R_TXN | R_API },
    { "/api/items/*", "GET /api/items/{id}", h_item, R_TXN | R_API },
    { "/api/stats/daily", "GET /api/stats/daily", h_daily, R_TXN | R_API },
    { "/api/events", "GET /api/events", query_events, R_API },
    { "/api/status", "GET /api/status", h_status, R_TXN | R_API },
    { "/metrics", "GET /metrics", h_metrics, R_TXN },
};

/* Matches path against pattern segment by segment; a '*' segment is captured into q->id. */
static int match(const char *pattern, const char *path, struct qreq *q)
{
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '*') {
            size_t n = strcspn(s, "/");
            if (n == 0 || n >= sizeof q->id_buf)
                return 0;
            memcpy(q->id_buf, s, n);
            q->id_buf[n] = '\0';
            q->id = q->id_buf;
            q->id_len = n;
            s += n;
            p++;
        } else if (*p++ != *s++) {
            return 0;
        }
    }
    return *p == '\0' && *s == '\0';
}

static void not_caught_up(struct qreq *q, uint64_t want)
{
    char detail[128], headers[320];
    snprintf(detail, sizeof detail, "the read model has not reached position %" PRIu64 " yet", want);
    snprintf(headers, sizeof headers, "%sRetry-After: 1\r\n", q->headers);
    server_respond_problem(q->req, 503, "not_caught_up", detail, NULL, headers);
}

/* 503 not_caught_up with Retry-After for a model the tailer has yet to replace (rc says why). */
static void query_unavailable(struct qreq *q, int rc)
{
    char detail[200], headers[320];
    snprintf(detail, sizeof detail, "the read model cannot be read until the tailer replaces it: %s",
             rmodel_strerror(rc));
    snprintf(headers, sizeof headers, "%sRetry-After: 1\r\n", q->headers);
    server_respond_problem(q->req, 503, "not_caught_up", detail, NULL, headers);
}

static void too_many_waiting(struct qreq *q)
{
    char headers[320];
    snprintf(headers, sizeof headers, "%sRetry-After: 1\r\n", q->headers);
    server_respond_problem(q->req, 503, "too_many_waiting",
                           "too many requests are waiting for the read model already", NULL, headers);
}

int query_deadline(struct qreq *q, uint64_t *deadline_ns)
{
    if (!q->req->wait_deadline_ns) {
        int wait_ms = query_wait_ms(q->req, q->w->max_wait);
        if (wait_ms < 0) {
            query_bad_param(q, "Prefer", "wait must be a non-negative number of seconds");
            return -1;
        }
        /* From the request's arrival: the same on every run of a parked request. */
        q->req->wait_deadline_ns = q->req->started_ns + (uint64_t)wait_ms * 1000000u + 1;
    }
    *deadline_ns = q->req->wait_deadline_ns;
    return 0;
}

int query_park(struct qreq *q, uint64_t want, uint64_t wake_ns)
{
    int rc = server_park(q->req, want, wake_ns);
    if (rc == SERVER_PARKED)
        return 1;
    if (rc == SERVER_PARK_FULL) {
        too_many_waiting(q);
        return 1;
    }
    return 0;
}

/* Min-Position: parses it and, while the published position is below it, parks the
 * request until it is (or the request's deadline). *want is 0 when there is none.
 * Returns 0 to go on, -1 when the request was answered (400, 503) or parked. */
static int min_position(struct qreq *q, uint64_t *want)
{
    if (query_min_position(q->req, want)) {
        query_bad_param(q, "Min-Position", "must be a non-negative integer position");
        return -1;
    }
    if (*want == 0)
        return 0;
    /* Prefer is checked on every request with a Min-Position (doc/api.md), reached or not. */
    uint64_t deadline;
    if (query_deadline(q, &deadline))
        return -1;
    if (rpos_position(q->w->rp) >= *want)
        return 0;
    if (ef_mono_ns() < deadline && query_park(q, *want, deadline))
        return -1;
    not_caught_up(q, *want);
    return -1;
}

int query_begin_at(struct qreq *q, uint64_t want)
{
    int rc = query_begin(q);
    if (rc && !query_model_unavailable(rc)) {
        query_fail(q, rc, "read model");
        return -1;
    }
    if (rc == 0 && q->position >= want)
        return 0;
    if (rc == 0)
        query_end(q);
    /* Behind, or no model to read while the tailer replaces it: tried again shortly,
     * within the request's wait. */
    uint64_t deadline, now = ef_mono_ns();
    if (query_deadline(q, &deadline))
        return -1;
    uint64_t retry = now + 20 * 1000000u;
    if (now < deadline && query_park(q, UINT64_MAX, retry < deadline ? retry : deadline))
        return -1;
    if (rc)
        query_unavailable(q, rc);
    else
        not_caught_up(q, want);
    return -1;
}

void query_handle(struct server_request *req, void *ctx)
{
    struct qreq q;
    memset(&q, 0, sizeof q);
    q.req = req;
    q.w = ctx;
    snprintf(q.headers, sizeof q.headers, "Log-Position: %" PRIu64 "\r\n", rpos_position(q.w->rp));
    const struct route *r = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !r; i++)
        if (match(routes[i].pattern, req->path, &q))
            r = &routes[i];
    server_set_route(req, r ? r->label : "GET (unknown)");
    /* HEAD is answered like GET; the front end (nginx) drops the body. */
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        char headers[320];
        snprintf(headers, sizeof headers, "%sAllow: GET, HEAD\r\n", q.headers);
        server_respond_problem(req, 405, "method_not_allowed",
                               "the query service answers GET only; commands go to the command service",
                               NULL, headers);
        return;
    }
    if (!r) {
        server_respond_problem(req, 404, "not_found", "no such resource", NULL, q.headers);
        return;
    }
    if (q.id && !vocab_valid_id(q.id, q.id_len)) {
        query_bad_param(&q, "id", "must match " VOCAB_ID_PATTERN);
        return;
    }
    uint64_t want = 0;
    if ((r->flags & R_API) && min_position(&q, &want))
        return;
    if ((r->flags & R_TXN) && query_begin_at(&q, want))
        return;
    r->fn(&q);
    query_end(&q);
    sbuf_free(&q.body);
}

static void h_order(struct qreq *q)
{
    const char *as_of = server_query_param(q->req, "as_of");
    if (as_of) {
        uint64_t p;
        if (query_parse_u64(as_of, &p))
            query_bad_param(q, "as_of", "must be a non-negative integer position");
        else
            query_order_as_of(q, p);
        return;
    }
    uint64_t version;
    int rc = rmodel_render_order(q->txn, q->id, q->id_len, &q->body, &version);
    if (rc) {
        query_fail(q, rc, "order");
        return;
    }
    char etag[48];
    snprintf(etag, sizeof etag, "ETag: \"%" PRIu64 "\"\r\n", version);
    query_ok(q, etag);
}

static void h_user(struct qreq *q)
{
    int rc = rmodel_render_user(q->txn, q->id, q->id_len, &q->body);
    if (rc)
        query_fail(q, rc, "user");
    else
        query_ok(q, NULL);
}

static void h_user_orders(struct qreq *q)
{
    const char *ls = server_query_param(q->req, "limit");
    const char *cs = server_query_param(q->req, "cursor");
    uint64_t limit = 20, cursor = 0;
    if (ls && (query_parse_u64(ls, &limit) || limit < 1 || limit > 100)) {
        query_bad_param(q, "limit", "must be an integer from 1 to 100");
        return;
    }
    if (cs && (query_parse_u64(cs, &cursor) || cursor == 0)) {
        query_bad_param(q, "cursor", "must be a next_cursor value from a previous page");
        return;
    }
    int rc = rmodel_render_user_orders(q->txn, q->id, q->id_len, (unsigned)limit, cursor, &q->body);
    if (rc)
        query_fail(q, rc, "user");
    else
        query_ok(q, NULL);
}

static void h_item(struct qreq *q)
{
    int rc = rmodel_render_item(q->txn, q->id, q->id_len, &q->body);
    if (rc)
        query_fail(q, rc, "item");
    else
        query_ok(q, NULL);
}

static void h_daily(struct qreq *q)
{
    const char *from = server_query_param(q->req, "from");
    const char *to = server_query_param(q->req, "to");
    int64_t fms = 0, tms = 0;
    if (from && ef_parse_day(from, &fms)) {
        query_bad_param(q, "from", "must be a date YYYY-MM-DD");
        return;
    }
    if (to && ef_parse_day(to, &tms)) {
        query_bad_param(q, "to", "must be a date YYYY-MM-DD");
        return;
    }
    if (from && to && fms > tms) {
        query_bad_param(q, "from", "must not be after to");
        return;
    }
    int rc = rmodel_render_daily(q->txn, from ? from : "0000-01-01", to ? to : "9999-12-31", &q->body);
    if (rc)
        query_fail(q, rc, "stats");
    else
        query_ok(q, NULL);
}

static void h_status(struct qreq *q)
{
    struct rstatus st;
    int rc = rstatus_collect(q->w->lg, q->txn, q->w->data_dir, &st);
    if (rc == 0)
        rc = rstatus_render(&st, q->w->data_dir, &q->body);
    if (rc)
        query_fail(q, rc, "status");
    else
        query_ok(q, NULL);
}

static void h_metrics(struct qreq *q)
{
    struct rstatus st;
    int rc = rstatus_collect(q->w->lg, q->txn, q->w->data_dir, &st);
    if (rc) {
        query_fail(q, rc, "metrics");
        return;
    }
    struct sbuf *out = &q->body;
    /* The command program keeps its counters in DATA/command.metrics (it may run as
     * another process tree): one /metrics shows both, merged by route label. */
    char cmd_metrics[EF_PATH_MAX + 32];
    const char *const files[] = { cmd_metrics };
    if (ef_path_join(cmd_metrics, sizeof cmd_metrics, q->w->data_dir, "command.metrics") == 0)
        server_metrics_render_files(out, files, 1);
    server_metrics_gauge(out, "eventfold_log_head_position", "Highest published log position.",
                         (double)st.head);
    server_metrics_gauge(out, "eventfold_read_model_position",
                         "Log position the read model has applied.", (double)st.position);
    server_metrics_gauge(out, "eventfold_read_model_lag_events",
                         "Events published but not yet folded into the read model.",
                         (double)(st.head > st.position ? st.head - st.position : 0));
    server_metrics_gauge(out, "eventfold_dead_letters", "Events in the dead-letter list.",
                         (double)st.dead_letters);
    server_metrics_gauge(out, "eventfold_snapshots", "Read-model snapshots kept.",
                         (double)st.snapshots);
    if (st.replica) {
        server_metrics_gauge(out, "eventfold_mirror_position",
                             "Last position eventfold-mirror made durable in this replica's log.",
                             (double)st.mirror_position);
        server_metrics_gauge(out, "eventfold_mirror_lag_events",
                             "The stream's last sequence as the mirror saw it, minus this "
                             "replica's log head.", (double)st.replica_lag);
    }
    relay_state_render_metrics(q->w->data_dir, st.head, out);
    server_respond_take(q->req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, out);
}

uint64_t query_position(void *ctx)
{
    struct query_worker *w = ctx;
    return rpos_position(w->rp);
}

void query_wait_published(void *ctx, uint64_t after, int timeout_ms)
{
    struct query_worker *w = ctx;
    rpos_wait(w->rp, after, timeout_ms);
}

void query_housekeeping(void *ctx)
{
    query_reopen_if_switched(ctx);
}

const char *const query_park_headers[] = { "Min-Position", "Prefer", NULL };
