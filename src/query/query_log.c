#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log/log.h"
#include "query/query_int.h"
#include "readmodel/rmodel_asof.h"
#include "readmodel/rmodel_query.h"
#include "readmodel/rmodel_render.h"
#include "readmodel/rpos.h"
#include "util/clock.h"
#include "util/ef_error.h"
#include "util/eflog.h"

#define LOCS_CHUNK 256

/* Reads the record at loc (from the stream or position index) through rd, verified, and
 * checks it is the one the index names. */
static int read_at(struct query_worker *w, struct log_reader *rd, const struct rmodel_loc *loc,
                   uint64_t limit, struct log_record *rec)
{
    int rc = log_reader_seek(rd, loc->segment, loc->offset);
    if (rc == 0)
        rc = log_reader_next(rd, limit, rec);
    if (rc == 1 && rec->position == loc->position)
        return 0;
    EFLOG_ERROR("cannot read position=%" PRIu64 " segment=%" PRIu64 " offset=%" PRIu64 ": %s",
              loc->position, loc->segment, loc->offset,
              rc < 0 ? log_last_error(w->lg) : "index and log disagree");
    return rc < 0 ? rc : RMODEL_EFORMAT;
}

static void log_fail(struct qreq *q, int rc)
{
    char detail[160];
    snprintf(detail, sizeof detail, "the log could not be read: %s", ef_strerror(rc));
    server_respond_problem(q->req, 500, "internal_error", detail, NULL, q->headers);
}

typedef int (*record_fn)(struct qreq *q, const struct log_record *rec, void *arg);

/* Calls fn for each event of the order's stream (oldest first) with position <= upto.
 * Returns 0, RMODEL_ENOTFOUND for an unknown stream, or a negative code. */
static int each_order_event(struct qreq *q, uint64_t upto, record_fn fn, void *arg)
{
    char stream[160];
    int sn = snprintf(stream, sizeof stream, "order-%s", q->id);
    struct rmodel_loc locs[LOCS_CHUNK];
    struct log_reader *rd = NULL;
    uint64_t version = 1;
    int more = 1, rc = 0;
    while (more && rc == 0) {
        size_t n;
        rc = rmodel_stream_locs(q->txn, stream, (size_t)sn, version, locs, LOCS_CHUNK, &n, &more);
        if (rc)
            break;
        if (!rd) {
            if ((rc = log_reader_open(q->w->lg, locs[0].position, &rd)) != 0)
                break;
            log_reader_sparse(rd); /* one seek per record: no read-ahead */
        }
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (locs[i].position > upto) {
                more = 0;
                break;
            }
            struct log_record rec;
            rc = read_at(q->w, rd, &locs[i], q->position, &rec);
            if (rc == 0)
                rc = fn(q, &rec, arg);
        }
        version = locs[n - 1].version + 1;
    }
    log_reader_close(rd);
    return rc;
}

static int add_event(struct qreq *q, const struct log_record *rec, void *arg)
{
    (void)arg;
    if (q->body.data[q->body.len - 1] != '[')
        sbuf_putc(&q->body, ',');
    rmodel_render_event(rec, &q->body);
    return 0;
}

void query_order_events(struct qreq *q)
{
    sbuf_puts(&q->body, "{\"events\":[");
    int rc = each_order_event(q, UINT64_MAX, add_event, NULL);
    if (rc == RMODEL_ENOTFOUND) {
        query_fail(q, rc, "order");
        return;
    }
    if (rc) {
        log_fail(q, rc);
        return;
    }
    sbuf_puts(&q->body, "]}");
    query_ok(q, NULL);
}

static int apply_event(struct qreq *q, const struct log_record *rec, void *arg)
{
    /* An event the fold could not apply either (dead letter) is skipped here too. */
    int rc = rmodel_asof_apply(q->txn, arg, rec);
    return rc == 1 ? 0 : rc;
}

void query_order_as_of(struct qreq *q, uint64_t as_of)
{
    struct rmodel_asof *a = rmodel_asof_new();
    int rc = each_order_event(q, as_of, apply_event, a);
    uint64_t version = 0;
    if (rc == 0)
        rc = rmodel_asof_render(a, &q->body, &version);
    rmodel_asof_free(a);
    if (rc == RMODEL_ENOTFOUND) {
        query_fail(q, rc, "order");
        return;
    }
    if (rc) {
        log_fail(q, rc);
        return;
    }
    char etag[48];
    snprintf(etag, sizeof etag, "ETag: \"%" PRIu64 "\"\r\n", version);
    query_ok(q, etag);
}

/* Appends up to limit events after `after` (and <= q->position) to the body, stopping
 * before the page's events would pass QUERY_PAGE_BYTES (unless it is the first one). */
static int read_events(struct qreq *q, uint64_t after, uint64_t limit, uint64_t *last)
{
    size_t start = q->body.len;
    *last = after;
    if (q->position <= after)
        return 0;
    struct log_reader *rd;
    int rc = log_reader_open(q->w->lg, after + 1, &rd);
    if (rc)
        return rc;
    struct rmodel_loc loc;
    if (rmodel_position_loc(q->txn, after + 1, &loc) == 0) /* a hint: skip the in-segment scan */
        rc = log_reader_seek(rd, loc.segment, loc.offset);
    for (uint64_t n = 0; rc == 0 && n < limit;) {
        struct log_record rec;
        rc = log_reader_next(rd, q->position, &rec);
        if (rc <= 0)
            break;
        rc = 0;
        if (rec.position <= after)
            continue;
        size_t before = q->body.len;
        add_event(q, &rec, NULL);
        if (n > 0 && q->body.len - start > QUERY_PAGE_BYTES) {
            q->body.len = before; /* the page is full: this event starts the next one */
            q->body.data[before] = '\0';
            break;
        }
        *last = rec.position;
        n++;
    }
    log_reader_close(rd);
    return rc;
}

void query_events(struct qreq *q)
{
    const char *as = server_query_param(q->req, "after");
    const char *ls = server_query_param(q->req, "limit");
    uint64_t after = 0, limit = 100;
    if (as && query_parse_u64(as, &after)) {
        query_bad_param(q, "after", "must be a non-negative integer position");
        return;
    }
    if (ls && (query_parse_u64(ls, &limit) || limit < 1 || limit > 1000)) {
        query_bad_param(q, "limit", "must be an integer from 1 to 1000");
        return;
    }
    /* Long-poll: park until an event after `after` is published, or the request's
     * deadline (shared with its Min-Position wait); then answer what there is. */
    const char *prefer = server_header(q->req, "Prefer");
    if (prefer && strstr(prefer, "wait")) {
        uint64_t deadline;
        if (query_deadline(q, &deadline))
            return;
        if (after < UINT64_MAX && rpos_position(q->w->rp) <= after && ef_mono_ns() < deadline &&
            query_park(q, after + 1, deadline))
            return;
    }
    if (query_begin_at(q, 0))
        return;
    uint64_t last;
    sbuf_puts(&q->body, "{\"events\":[");
    int rc = read_events(q, after, limit, &last);
    if (rc) {
        log_fail(q, rc);
        return;
    }
    sbuf_printf(&q->body, "],\"last_position\":%" PRIu64 "}", last);
    query_ok(q, NULL);
}
