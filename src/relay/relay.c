#include <config.h>

#include "relay/relay.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "readmodel/rmodel_render.h"
#include "relay/relay_state.h"
#include "util/clock.h"
#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/path.h"
#include "util/xalloc.h"

/* --- rendering ---------------------------------------------------------------------- */

/* Header values must be printable ASCII (no CR/LF, no control bytes): NATS and Kafka
 * headers carry them as they are. */
static int header_safe(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
            return 0;
    return 1;
}

/* Copies n bytes into *buf (grown as needed) as a C string. */
static char *copy_cstr(char **buf, size_t *cap, const char *p, size_t n)
{
    if (*cap < n + 1) {
        *cap = n + 1 > 64 ? n + 1 : 64;
        *buf = xrealloc(*buf, *cap);
    }
    memcpy(*buf, p, n);
    (*buf)[n] = '\0';
    return *buf;
}

/* The CRC32C the record carries: re-encoding a verified record reproduces its bytes. */
static uint32_t record_crc(const struct log_record *rec, struct sbuf *enc)
{
    const struct log_event e = {
        .stream = rec->stream, .stream_len = rec->stream_len,
        .type = rec->type, .type_len = rec->type_len,
        .schema_version = rec->schema_version, .stream_version = rec->stream_version,
        .timestamp_ms = rec->timestamp_ms,
        .meta = rec->meta, .meta_len = rec->meta_len,
        .data = rec->data, .data_len = rec->data_len,
    };
    size_t n = record_encoded_size(&e);
    assert(n >= LOG_HEADER_SIZE); /* it was decoded from at most LOG_RECORD_MAX bytes */
    sbuf_reset(enc);
    sbuf_reserve(enc, n);
    record_encode(&e, rec->position, enc->data);
    const unsigned char *b = (const unsigned char *)enc->data + 8;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

const char *relay_strerror(int err)
{
    switch (err) {
    case RELAY_ERETRY: return "the destination failed for now: retrying";
    case RELAY_EFATAL: return "the destination disagrees with the log, or bad configuration";
    default: return ef_strerror_except(EF_ERR_RELAY, err);
    }
}

int relay_render_event(const struct log_record *rec, struct relay_render *r, struct relay_event *ev,
                       char *err, size_t errlen)
{
    if (!header_safe(rec->stream, rec->stream_len) || !header_safe(rec->type, rec->type_len) ||
        !header_safe(rec->meta, rec->meta_len)) {
        snprintf(err, errlen, "position %" PRIu64 ": the record's stream, type or meta has bytes a "
                 "message header cannot carry", rec->position);
        return RELAY_EFATAL;
    }
    memset(ev, 0, sizeof *ev);
    ev->position = rec->position;
    ev->rec = rec;
    sbuf_reset(&r->body);
    rmodel_render_event(rec, &r->body);
    ev->body = r->body.data;
    ev->body_len = r->body.len;
    ev->record_crc = record_crc(rec, &r->encoded);
    snprintf(r->position, sizeof r->position, "%" PRIu64, rec->position);
    snprintf(r->schema, sizeof r->schema, "%u", (unsigned)rec->schema_version);
    snprintf(r->stream_version, sizeof r->stream_version, "%" PRIu64, rec->stream_version);
    snprintf(r->timestamp, sizeof r->timestamp, "%" PRId64, rec->timestamp_ms);
    snprintf(r->crc, sizeof r->crc, "%08" PRIx32, ev->record_crc);
    const struct relay_header h[RELAY_HEADERS] = {
        { "Eventfold-Position", r->position },
        { "Eventfold-Stream", copy_cstr(&r->stream, &r->stream_cap, rec->stream, rec->stream_len) },
        { "Eventfold-Type", copy_cstr(&r->type, &r->type_cap, rec->type, rec->type_len) },
        { "Eventfold-Schema-Version", r->schema },
        { "Eventfold-Stream-Version", r->stream_version },
        { "Eventfold-Timestamp-Ms", r->timestamp },
        { "Eventfold-Meta", copy_cstr(&r->meta, &r->meta_cap, rec->meta ? rec->meta : "", rec->meta_len) },
        { "Eventfold-Crc32c", r->crc },
    };
    memcpy(ev->headers, h, sizeof h);
    /* The category points into r's copy of the stream, so that it outlives rec. */
    const char *dash = memchr(r->stream, '-', rec->stream_len);
    ev->category = r->stream;
    ev->category_len = dash ? (size_t)(dash - r->stream) : rec->stream_len;
    return 0;
}

void relay_render_free(struct relay_render *r)
{
    if (!r)
        return;
    sbuf_free(&r->body);
    sbuf_free(&r->encoded);
    free(r->stream);
    free(r->type);
    free(r->meta);
    memset(r, 0, sizeof *r);
}

const char *relay_event_header(const struct relay_event *ev, const char *name)
{
    for (int i = 0; i < RELAY_HEADERS; i++)
        if (ev->headers[i].name && strcmp(ev->headers[i].name, name) == 0)
            return ev->headers[i].value;
    return NULL;
}

int relay_render_position(struct log *lg, uint64_t position, struct relay_render *r,
                          struct relay_event *ev, char *err, size_t errlen)
{
    uint64_t durable = log_durable(lg);
    if (position == 0 || position > durable) {
        snprintf(err, errlen, "position %" PRIu64 " is beyond the log's durable head %" PRIu64,
                 position, durable);
        return RELAY_EFATAL;
    }
    struct log_reader *rd = NULL;
    struct log_record rec;
    int rc = log_reader_open(lg, position, &rd);
    if (rc == 0)
        rc = log_reader_next(rd, durable, &rec);
    if (rc == 1 && rec.position != position)
        rc = LOG_ESEQUENCE;
    if (rc == 1)
        rc = relay_render_event(&rec, r, ev, err, errlen);
    else
        snprintf(err, errlen, "reading position %" PRIu64 " from the log: %s", position,
                 rc == 0 ? "not found" : log_last_error(lg));
    /* The rendered event points into r, except ev->rec (the reader's buffer): clear it. */
    ev->rec = NULL;
    log_reader_close(rd);
    return rc == 0 ? 0 : rc < 0 ? rc : LOG_ECORRUPT;
}

/* --- the run ------------------------------------------------------------------------- */

struct relay {
    const struct relay_options *opt;
    const struct relay_sink_ops *ops;
    void *sink;
    struct log *lg;
    struct log_reader *rd;
    struct relay_render render;
    int lock_fd;
    uint64_t published; /* highest position handed to the sink since the last resume */
    uint64_t confirmed; /* highest position the sink confirmed */
    struct relay_state state;
    uint64_t state_written_ns;
    /* Failure reporting: one line when failing starts, one when it ends. */
    int failing;
    unsigned failures;
    char last_err[512];
    int backoff_ms;
};

static int stopping(const struct relay *r)
{
    return *r->opt->stop != 0;
}

static void write_state(struct relay *r, int force)
{
    uint64_t now = ef_mono_ns();
    if (!force && (r->state.position == r->confirmed ||
                   now - r->state_written_ns < (uint64_t)RELAY_STATE_MS * 1000000u))
        return;
    r->state.position = r->confirmed;
    r->state.updated_ms = ef_now_ms();
    r->state_written_ns = now;
    int rc = relay_state_write(r->opt->data_dir, &r->state);
    if (rc)
        EFLOG_WARN("cannot write the relay's state file in %s: %s", r->opt->data_dir, strerror(-rc));
}

/* Sleeps ms unless a stop comes first (a signal interrupts nanosleep: no SA_RESTART). */
static void sleep_ms(const struct relay *r, int ms)
{
    uint64_t end = ef_mono_ns() + (uint64_t)ms * 1000000u;
    while (!stopping(r)) {
        uint64_t now = ef_mono_ns();
        if (now >= end)
            return;
        uint64_t left = end - now;
        struct timespec ts = { (time_t)(left / 1000000000u), (long)(left % 1000000000u) };
        nanosleep(&ts, NULL);
    }
}

static void note_failure(struct relay *r, const char *msg)
{
    r->failures++;
    if (!r->failing) {
        EFLOG_WARN("relay to %s failing, retrying with backoff: %s", r->ops->name, msg);
        r->failing = 1;
    } else {
        EFLOG_DEBUG("relay to %s still failing: %s", r->ops->name, msg);
    }
    snprintf(r->last_err, sizeof r->last_err, "%s", msg);
    sleep_ms(r, r->backoff_ms);
    r->backoff_ms = r->backoff_ms * 2 > RELAY_BACKOFF_MAX_MS ? RELAY_BACKOFF_MAX_MS : r->backoff_ms * 2;
}

static void note_resumed(struct relay *r, uint64_t last)
{
    if (r->failing)
        EFLOG_INFO("relay to %s recovered after %u failed attempts; resuming after position %" PRIu64,
                 r->ops->name, r->failures, last);
    else
        EFLOG_INFO("relay to %s resuming after position %" PRIu64 " (durable head %" PRIu64 ")",
                 r->ops->name, last, log_durable(r->lg));
    r->failing = 0;
    r->failures = 0;
    r->backoff_ms = RELAY_BACKOFF_MIN_MS;
}

static int sink_confirmed(struct relay *r, int timeout_ms, char *err, size_t errlen)
{
    uint64_t c = r->confirmed;
    int rc = r->ops->confirmed(r->sink, timeout_ms, &c, err, errlen);
    /* A sink reports what it has, also with an error; it can only grow within a resume. */
    if (c > r->confirmed && c <= r->published)
        r->confirmed = c;
    write_state(r, 0);
    return rc;
}

/* Publishes durable records up to the head, in batches, checking confirmations between
 * batches; returns when a stop is asked (0) or on an error. */
static int pump(struct relay *r, char *err, size_t errlen)
{
    struct log_record rec;
    while (!stopping(r)) {
        uint64_t durable = log_durable(r->lg);
        for (int n = 0; n < RELAY_BATCH && r->published < durable && !stopping(r); n++) {
            int rc = log_reader_next(r->rd, durable, &rec);
            if (rc == 0)
                break;
            if (rc < 0) {
                snprintf(err, errlen, "reading the log after position %" PRIu64 ": %s", r->published,
                         log_last_error(r->lg));
                return rc;
            }
            if (rec.position != r->published + 1) {
                snprintf(err, errlen, "the log returned position %" PRIu64 " where %" PRIu64 " was next",
                         rec.position, r->published + 1);
                return LOG_ESEQUENCE;
            }
            struct relay_event ev;
            if ((rc = relay_render_event(&rec, &r->render, &ev, err, errlen)) != 0)
                return rc;
            if ((rc = r->ops->publish(r->sink, &ev, RELAY_PUBLISH_TIMEOUT_MS, err, errlen)) != 0)
                return rc;
            r->published = rec.position;
        }
        int caught_up = r->published >= log_durable(r->lg);
        /* Caught up: wait a little for the window to drain rather than polling. */
        int rc = sink_confirmed(r, caught_up && r->confirmed < r->published ? 100 : 0, err, errlen);
        if (rc)
            return rc;
        if (caught_up && r->confirmed == r->published) {
            if (r->state.position != r->confirmed)
                write_state(r, 1);
            log_wait_durable(r->lg, r->published, 500);
        }
    }
    return 0;
}

/* One connection epoch: resume, then pump until an error or a stop. */
static int run_once(struct relay *r, char *err, size_t errlen)
{
    uint64_t last = 0;
    int rc = r->ops->resume(r->sink, r->lg, &last, err, errlen);
    if (rc)
        return rc;
    if (last > log_durable(r->lg)) {
        /* A sink checks this itself; the relay never publishes past its own log. */
        snprintf(err, errlen, "the %s destination holds position %" PRIu64 ", beyond the log's "
                 "durable head %" PRIu64, r->ops->name, last, log_durable(r->lg));
        return RELAY_EFATAL;
    }
    note_resumed(r, last);
    r->published = r->confirmed = last;
    write_state(r, 1);
    log_reader_close(r->rd);
    r->rd = NULL;
    if ((rc = log_reader_open(r->lg, last + 1, &r->rd)) != 0) {
        snprintf(err, errlen, "opening the log at position %" PRIu64 ": %s", last + 1, log_last_error(r->lg));
        return rc;
    }
    return pump(r, err, errlen);
}

static int open_all(struct relay *r, char *err, size_t errlen)
{
    const struct relay_options *o = r->opt;
    int rc = relay_state_lock(o->data_dir, r->ops->name, &r->lock_fd);
    if (rc == -EBUSY) {
        snprintf(err, errlen, "another eventfold-relay --sink %s is running on %s", r->ops->name, o->data_dir);
        return rc;
    }
    if (rc) {
        snprintf(err, errlen, "cannot lock %s/relay-%s.lock: %s", o->data_dir, r->ops->name, strerror(-rc));
        return rc;
    }
    char path[EF_PATH_MAX];
    if (ef_path_join(path, sizeof path, o->data_dir, "log")) {
        snprintf(err, errlen, "data directory path too long");
        return -ENAMETOOLONG;
    }
    struct log_options lo = { .segment_bytes = o->cfg->segment_bytes };
    if ((rc = log_open(path, &lo, &r->lg)) != 0) {
        snprintf(err, errlen, "cannot open the log %s: %s", path, log_last_error(NULL));
        return rc;
    }
    snprintf(r->state.sink, sizeof r->state.sink, "%s", r->ops->name);
    r->state.pid = (int64_t)getpid();
    return r->ops->open(o->cfg, &r->sink, err, errlen);
}

/* On a stop: give what is in flight a moment to be confirmed, so the state file (and the
 * next start's work) is as far along as it can be. */
static void drain(struct relay *r)
{
    if (!r->sink || r->published == r->confirmed)
        return;
    char err[256];
    uint64_t end = ef_mono_ns() + (uint64_t)RELAY_STOP_WAIT_MS * 1000000u;
    while (r->confirmed < r->published && ef_mono_ns() < end)
        if (sink_confirmed(r, 100, err, sizeof err) != 0)
            break;
}

int relay_run(const struct relay_options *opt, char *err, size_t errlen)
{
    struct relay r = { .opt = opt, .ops = opt->sink, .lock_fd = -1, .backoff_ms = RELAY_BACKOFF_MIN_MS };
    err[0] = '\0';
    int rc = open_all(&r, err, errlen);
    while (rc == 0 && !stopping(&r)) {
        rc = run_once(&r, err, errlen);
        if (rc == RELAY_ERETRY) {
            note_failure(&r, err);
            rc = 0;
        }
    }
    if (rc == 0 && r.sink) {
        drain(&r);
        write_state(&r, 1);
        EFLOG_INFO("relay to %s stopped at position %" PRIu64, r.ops->name, r.confirmed);
    }
    if (r.ops && r.sink)
        r.ops->close(r.sink);
    log_reader_close(r.rd);
    log_close(r.lg);
    relay_render_free(&r.render);
    if (r.lock_fd >= 0)
        close(r.lock_fd);
    return rc;
}
