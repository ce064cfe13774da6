/* sink_nats: the NATS JetStream sink (API.md section 9).
 *
 * Stream sequence == log position, enforced by the server: every message carries
 * Nats-Expected-Last-Sequence = position - 1 (as a header, so that 0 is sent for position
 * 1 and an empty stream is required) and Nats-Msg-Id = position, so the stream refuses a
 * gap and a duplicate. The relay only ever publishes position last + 1, last + 2, ... after
 * resume() read `last` from the stream's info; anything else fails and is retried.
 *
 * Publishes are asynchronous (js_PublishMsgAsync) within a window of NATS_WINDOW messages
 * (jsOptions.PublishAsync.MaxPending); the ack handler records the highest sequence
 * acknowledged, which is what confirmed() reports: an ack for position P proves 1..P are
 * stored, since P was only accepted with P - 1 as the stream's last sequence. The first
 * failed ack (wrong last sequence, timeout, no responders during an election, a lost
 * connection) makes every later call return RELAY_ERETRY until resume(), which drops
 * whatever is still pending and reads the stream's state afresh.
 *
 * resume() checks the stream against the log: its subjects must cover PREFIX.>, its last
 * sequence must not be beyond the log's durable head, and its last message must be the
 * log's record at that position (position and CRC32C headers, subject and body). A stream
 * that lost its tail (nats-server 2.9 fsyncs in the background) simply resumes lower and
 * is refilled from the log.
 *
 * The connection reconnects by itself (no limit on attempts, NATS_RECONNECT_WAIT_MS
 * apart); while it is down, resume() fails fast with RELAY_ERETRY and the relay backs off.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>
#include <yajl/yajl_tree.h>

#include "log/log.h"
#include "relay/relay.h"
#include "bus/nats_options.h"
#include "relay/sink.h"
#include "util/eflog.h"
#include "util/sbuf.h"
#include "util/xalloc.h"

#define NATS_WINDOW 4096           /* asynchronous publishes in flight at most */
#define NATS_ACK_WAIT_MS 5000      /* an ack not back by then fails the publish */
#define NATS_API_WAIT_MS 5000      /* JetStream API requests (stream info, get message) */

struct nats_sink {
    char stream[EF_TEXT_MAX];
    char prefix[EF_TEXT_MAX];
    char filter[EF_TEXT_MAX + 4]; /* PREFIX.> */
    char url[EF_TEXT_MAX];
    int replicas;
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    int js_published; /* js has published asynchronously (see drop_pending) */
    int closing; /* set (atomically) by close(): the disconnection then is ours */
    struct relay_render check; /* the log's record for the resume check */
    char subject[EF_TEXT_MAX + 2 * LOG_TYPE_MAX + LOG_STREAM_MAX];
    /* Shared with the ack handler (a libnats thread). */
    pthread_mutex_t mu;
    uint64_t acked; /* highest sequence acknowledged since resume() */
    int failed;     /* RELAY_ERETRY or RELAY_EFATAL once an ack failed; 0 otherwise */
    char fail_msg[512];
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* libnats' own description of the last failure in this thread, or the status text. */
static const char *nats_text(natsStatus st)
{
    natsStatus last = NATS_OK;
    const char *t = nats_GetLastError(&last);
    return t && *t && last == st ? t : natsStatus_GetText(st);
}

/* A subject token: non-empty, no '.', wildcard or whitespace. */
static int token_ok(const char *p, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '.' || p[i] == '*' || p[i] == '>' || (unsigned char)p[i] <= ' ' || p[i] == 0x7f)
            return 0;
    return 1;
}

static int prefix_ok(const char *prefix)
{
    const char *p = prefix;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (!token_ok(p, n))
            return 0;
        if (!dot)
            return 1;
        p = dot + 1;
    }
}

/* 1 if every subject PREFIX.x.y... matches the stream subject pattern `pat` (tokens; '*'
 * one token, '>' one or more). */
static int pattern_covers(const char *pat, const char *prefix)
{
    const char *p = pat, *t = prefix;
    for (;;) {
        size_t pn = strcspn(p, "."), tn = strcspn(t, ".");
        if (pn == 1 && p[0] == '>')
            return 1; /* covers the rest, and PREFIX.> has at least one token more */
        if (tn == 0)
            return 0; /* prefix exhausted: `pat` has a literal or '*' for PREFIX.>'s '>' */
        if (!(pn == 1 && p[0] == '*') && (pn != tn || memcmp(p, t, pn) != 0))
            return 0;
        if (p[pn] == '\0')
            return 0; /* pattern ends where PREFIX.> goes on */
        p += pn + 1;
        t += tn;
        if (*t == '.')
            t++;
    }
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    const struct nats_sink *s = closure;
    if (!__atomic_load_n(&s->closing, __ATOMIC_ACQUIRE))
        EFLOG_INFO("nats: disconnected; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)closure;
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    EFLOG_INFO("nats: connected to %s", url);
}

static int make_options(struct nats_sink *s, char *err, size_t errlen)
{
    const struct ef_nats_callbacks cb = { .connected = on_reconnected,
                                          .disconnected = on_disconnected, .closure = s };
    return ef_nats_options("eventfold-relay", s->url, &cb, &s->opts, err, errlen) ? RELAY_EFATAL : 0;
}

static int nats_open(const struct ef_config *cfg, void **out, char *err, size_t errlen)
{
    struct nats_sink *s = xcalloc(1, sizeof *s);
    snprintf(s->stream, sizeof s->stream, "%s", cfg->nats_stream);
    snprintf(s->prefix, sizeof s->prefix, "%s", cfg->nats_subject_prefix);
    snprintf(s->filter, sizeof s->filter, "%s.>", cfg->nats_subject_prefix);
    snprintf(s->url, sizeof s->url, "%s", cfg->nats_url);
    s->replicas = cfg->nats_replicas;
    pthread_mutex_init(&s->mu, NULL);
    int rc = 0;
    if (!prefix_ok(s->prefix)) {
        set_err(err, errlen, "nats_subject_prefix '%s' is not a valid subject prefix", s->prefix);
        rc = RELAY_EFATAL;
    } else if (!token_ok(s->stream, strlen(s->stream)) || strchr(s->stream, '/')) {
        set_err(err, errlen, "nats_stream '%s' is not a valid stream name", s->stream);
        rc = RELAY_EFATAL;
    }
    if (rc == 0)
        rc = make_options(s, err, errlen);
    if (rc) {
        natsOptions_Destroy(s->opts);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Ack handler (libnats thread): success raises `acked`; the first failure is recorded. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    struct nats_sink *s = closure;
    const char *pos_s = NULL;
    natsMsgHeader_Get(msg, "Eventfold-Position", &pos_s);
    uint64_t pos = pos_s ? strtoull(pos_s, NULL, 10) : 0;
    pthread_mutex_lock(&s->mu);
    if (pa && pa->Sequence != pos) {
        /* Cannot happen with the expected-last-sequence header; if it does, the stream's
         * sequence no longer equals the position. */
        if (s->failed != RELAY_EFATAL)
            snprintf(s->fail_msg, sizeof s->fail_msg, "stream %.200s stored position %" PRIu64
                     " at sequence %" PRIu64, s->stream, pos, pa->Sequence);
        s->failed = RELAY_EFATAL;
    } else if (pa) {
        if (pos > s->acked)
            s->acked = pos;
    } else if (pae && !s->failed) {
        s->failed = RELAY_ERETRY;
        snprintf(s->fail_msg, sizeof s->fail_msg, "publishing position %" PRIu64 " to stream %.200s: %.200s (%s, code %d)",
                 pos, s->stream, pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err),
                 natsStatus_GetText(pae->Err), (int)pae->ErrCode);
    }
    pthread_mutex_unlock(&s->mu);
    natsMsg_Destroy(msg);
}

/* Forgets every publish still waiting for its ack (their acks, if any come, are dropped
 * by libnats). What the server did with them, resume() reads from the stream. */
static void drop_pending(struct nats_sink *s)
{
    /* libnats 3.4 crashes in js_PublishAsyncGetPendingList on a context that never
     * published asynchronously (its pending table does not exist yet). */
    if (!s->js || !s->js_published)
        return;
    natsMsgList pending;
    if (js_PublishAsyncGetPendingList(&pending, s->js) == NATS_OK)
        natsMsgList_Destroy(&pending);
}

static int connect_js(struct nats_sink *s, char *err, size_t errlen)
{
    if (!s->nc) {
        natsStatus st = natsConnection_Connect(&s->nc, s->opts);
        if (st != NATS_OK && st != NATS_NOT_YET_CONNECTED) {
            natsConnection_Destroy(s->nc);
            s->nc = NULL;
            set_err(err, errlen, "cannot connect to %s: %s", s->url, nats_text(st));
            return RELAY_ERETRY;
        }
    }
    if (!s->js) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = NATS_API_WAIT_MS;
        jo.PublishAsync.MaxPending = NATS_WINDOW;
        jo.PublishAsync.AckHandler = on_ack;
        jo.PublishAsync.AckHandlerClosure = s;
        jo.PublishAsync.StallWait = RELAY_PUBLISH_TIMEOUT_MS;
        natsStatus st = natsConnection_JetStream(&s->js, s->nc, &jo);
        if (st != NATS_OK) {
            set_err(err, errlen, "JetStream context: %s", nats_text(st));
            return RELAY_ERETRY;
        }
    }
    if (natsConnection_Status(s->nc) != NATS_CONN_STATUS_CONNECTED) {
        set_err(err, errlen, "not connected to %s", s->url);
        return RELAY_ERETRY;
    }
    return 0;
}

static int create_stream(struct nats_sink *s, jsStreamInfo **si, char *err, size_t errlen)
{
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[1] = { s->filter };
    sc.Name = s->stream;
    sc.Description = "eventfold log: stream sequence = log position";
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_LimitsPolicy; /* no limits set: nothing is ever removed */
    sc.Discard = js_DiscardOld;
    sc.Storage = js_FileStorage;
    sc.Replicas = s->replicas;
    sc.DenyDelete = true;
    sc.DenyPurge = true;
    jsErrCode jerr = 0;
    natsStatus st = js_AddStream(si, s->js, &sc, NULL, &jerr);
    if (st == NATS_OK) {
        EFLOG_INFO("nats: created stream %s (subjects %s, %d replicas, file storage)", s->stream, s->filter,
                 s->replicas);
        return 0;
    }
    set_err(err, errlen, "cannot create stream %s (%d replicas): %s (code %d)", s->stream, s->replicas,
            nats_text(st), (int)jerr);
    return RELAY_ERETRY; /* e.g. too few servers up for the replicas now: retried */
}

static int check_subjects(struct nats_sink *s, const jsStreamInfo *si, char *err, size_t errlen)
{
    const jsStreamConfig *c = si->Config;
    for (int i = 0; c && i < c->SubjectsLen; i++)
        if (pattern_covers(c->Subjects[i], s->prefix))
            return 0;
    char list[512] = "";
    size_t used = 0;
    for (int i = 0; c && i < c->SubjectsLen && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? " " : "", c->Subjects[i]);
    set_err(err, errlen, "stream %s exists with subjects [%s], which do not cover %s", s->stream, list,
            s->filter);
    return RELAY_EFATAL;
}

/* Reads the stream's info, creating the stream if it does not exist. */
static int stream_info(struct nats_sink *s, jsStreamInfo **si, char *err, size_t errlen)
{
    jsErrCode jerr = 0;
    natsStatus st = js_GetStreamInfo(si, s->js, s->stream, NULL, &jerr);
    if (st == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
        return create_stream(s, si, err, errlen);
    if (st != NATS_OK) {
        set_err(err, errlen, "stream %s info: %s (code %d)", s->stream, nats_text(st), (int)jerr);
        return RELAY_ERETRY;
    }
    return 0;
}

/* --- reading one stored message ($JS.API.STREAM.MSG.GET) -------------------------------
 * A plain request rather than js_GetMsg: libnats 3.4's js_GetMsg was seen timing out
 * for minutes after a stream leader change while the same request, sent by hand on
 * another connection to the same server, was answered at once. */

struct stored_msg {
    uint64_t seq;
    struct sbuf subject, hdrs, data;
};

static int b64_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 (padding optional) into out; -1 on a bad character. */
static int b64_decode(const char *in, struct sbuf *out)
{
    uint32_t acc = 0;
    int bits = 0;
    sbuf_reset(out);
    for (; *in && *in != '='; in++) {
        int v = b64_value((unsigned char)*in);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            sbuf_putc(out, (char)(acc >> bits & 0xff));
        }
    }
    return 0;
}

/* The value of header `name` in a NATS/1.0 header block, copied into out (NUL-terminated);
 * NULL when absent. */
static const char *hdr_get(const struct sbuf *hdrs, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = hdrs->data, *end = hdrs->data + hdrs->len;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        if ((size_t)(le - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < le && *v == ' ')
                v++;
            size_t n = (size_t)(le - v);
            if (n && v[n - 1] == '\r')
                n--;
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return out;
        }
        p = eol ? eol + 1 : NULL;
    }
    return NULL;
}

static int parse_stored(const char *json, struct stored_msg *m, char *why, size_t whylen)
{
    char ebuf[128];
    yajl_val root = yajl_tree_parse(json, ebuf, sizeof ebuf);
    if (!root) {
        snprintf(why, whylen, "answer is not JSON");
        return -1;
    }
    const char *err_desc[] = { "error", "description", NULL };
    const char *p_subj[] = { "message", "subject", NULL };
    const char *p_seq[] = { "message", "seq", NULL };
    const char *p_hdrs[] = { "message", "hdrs", NULL };
    const char *p_data[] = { "message", "data", NULL };
    int rc = -1;
    yajl_val e = yajl_tree_get(root, err_desc, yajl_t_string);
    yajl_val subj = yajl_tree_get(root, p_subj, yajl_t_string);
    yajl_val seq = yajl_tree_get(root, p_seq, yajl_t_number);
    yajl_val hdrs = yajl_tree_get(root, p_hdrs, yajl_t_string);
    yajl_val data = yajl_tree_get(root, p_data, yajl_t_string);
    if (e)
        snprintf(why, whylen, "%s", YAJL_GET_STRING(e));
    else if (!subj || !seq || !YAJL_IS_INTEGER(seq))
        snprintf(why, whylen, "answer without message subject or seq");
    else if ((hdrs && b64_decode(YAJL_GET_STRING(hdrs), &m->hdrs) != 0) ||
             (data && b64_decode(YAJL_GET_STRING(data), &m->data) != 0))
        snprintf(why, whylen, "bad base64 in the answer");
    else
        rc = 0;
    if (rc == 0) {
        m->seq = (uint64_t)YAJL_GET_INTEGER(seq);
        sbuf_reset(&m->subject);
        sbuf_puts(&m->subject, YAJL_GET_STRING(subj));
        if (!hdrs)
            sbuf_reset(&m->hdrs);
        if (!data)
            sbuf_reset(&m->data);
    }
    yajl_tree_free(root);
    return rc;
}

static int stream_get(struct nats_sink *s, uint64_t seq, struct stored_msg *m, char *err, size_t errlen)
{
    char subj[EF_TEXT_MAX + 32], req[48];
    snprintf(subj, sizeof subj, "$JS.API.STREAM.MSG.GET.%s", s->stream);
    int n = snprintf(req, sizeof req, "{\"seq\":%" PRIu64 "}", seq);
    natsMsg *reply = NULL;
    natsStatus st = natsConnection_Request(&reply, s->nc, subj, req, n, NATS_API_WAIT_MS);
    char url[256] = "", why[256];
    if (st != NATS_OK) {
        natsConnection_GetConnectedUrl(s->nc, url, sizeof url);
        set_err(err, errlen, "stream %s: getting message %" PRIu64 " through %s: %s", s->stream, seq,
                url, nats_text(st));
        return RELAY_ERETRY;
    }
    struct sbuf json = SBUF_INIT;
    sbuf_append(&json, natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply));
    natsMsg_Destroy(reply);
    int rc = parse_stored(sbuf_str(&json), m, why, sizeof why);
    sbuf_free(&json);
    if (rc) {
        set_err(err, errlen, "stream %s: getting message %" PRIu64 ": %s", s->stream, seq, why);
        return RELAY_ERETRY;
    }
    return 0;
}

/* The stream's message `seq` must be the log's record at that position. */
static int check_message(struct nats_sink *s, struct log *lg, uint64_t seq, char *err, size_t errlen)
{
    struct stored_msg m = { 0 };
    int rc = stream_get(s, seq, &m, err, errlen);
    struct relay_event ev;
    if (rc == 0 && (rc = relay_render_position(lg, seq, &s->check, &ev, err, errlen)) != 0)
        rc = RELAY_EFATAL;
    if (rc == 0) {
        char pos[32], crc[32];
        const char *why = NULL;
        const char *hp = hdr_get(&m.hdrs, "Eventfold-Position", pos, sizeof pos);
        const char *hc = hdr_get(&m.hdrs, "Eventfold-Crc32c", crc, sizeof crc);
        snprintf(s->subject, sizeof s->subject, "%s.%.*s.%s", s->prefix, (int)ev.category_len, ev.category,
                 relay_event_header(&ev, "Eventfold-Type"));
        if (m.seq != seq)
            why = "the server returned another sequence";
        else if (!hp || strcmp(hp, relay_event_header(&ev, "Eventfold-Position")) != 0)
            why = "its Eventfold-Position header differs";
        else if (!hc || strcmp(hc, relay_event_header(&ev, "Eventfold-Crc32c")) != 0)
            why = "its Eventfold-Crc32c header differs from the record's CRC";
        else if (strcmp(sbuf_str(&m.subject), s->subject) != 0)
            why = "its subject differs";
        else if (m.data.len != ev.body_len || memcmp(m.data.data, ev.body, ev.body_len) != 0)
            why = "its body differs from the event";
        if (why) {
            set_err(err, errlen, "stream %s disagrees with the log at position %" PRIu64 ": %s (message "
                    "position %s, crc %s; log crc %s)", s->stream, seq, why, hp ? hp : "none", hc ? hc : "none",
                    relay_event_header(&ev, "Eventfold-Crc32c"));
            rc = RELAY_EFATAL;
        }
    }
    sbuf_free(&m.subject);
    sbuf_free(&m.hdrs);
    sbuf_free(&m.data);
    return rc;
}

/* resume(): forgets what was in flight, (re)connects, makes sure the stream exists and
 * covers our subjects, and checks its last message against the log. */
static int resume_checked(struct nats_sink *s, struct log *lg, uint64_t *last, char *err, size_t errlen)
{
    drop_pending(s);
    pthread_mutex_lock(&s->mu);
    s->failed = 0;
    s->fail_msg[0] = '\0';
    s->acked = 0;
    pthread_mutex_unlock(&s->mu);
    int rc = connect_js(s, err, errlen);
    jsStreamInfo *si = NULL;
    if (rc == 0)
        rc = stream_info(s, &si, err, errlen);
    if (rc == 0)
        rc = check_subjects(s, si, err, errlen);
    uint64_t seq = si ? si->State.LastSeq : 0;
    jsStreamInfo_Destroy(si);
    if (rc)
        return rc;
    uint64_t durable = log_durable(lg);
    if (seq > durable) {
        set_err(err, errlen, "stream %s disagrees with the log at position %" PRIu64 ": the stream "
                "holds it but the log's durable head is %" PRIu64, s->stream, seq, durable);
        return RELAY_EFATAL;
    }
    if (seq > 0 && (rc = check_message(s, lg, seq, err, errlen)) != 0)
        return rc;
    pthread_mutex_lock(&s->mu);
    s->acked = seq;
    pthread_mutex_unlock(&s->mu);
    *last = seq;
    return 0;
}

/* Drops the connection so that the next resume() connects afresh, to a server picked at
 * random from the list. After a kill -9 of the whole cluster, nats-server 2.9 was seen
 * with one node answering stream info for a stream it no longer leads (an old last
 * sequence) and never answering message requests, for minutes, while the other nodes
 * answered correctly: staying on that node would stall the relay. */
static void disconnect(struct nats_sink *s)
{
    drop_pending(s);
    jsCtx_Destroy(s->js);
    s->js = NULL;
    s->js_published = 0;
    if (s->nc) {
        __atomic_store_n(&s->closing, 1, __ATOMIC_RELEASE);
        natsConnection_Close(s->nc);
        natsConnection_Destroy(s->nc);
        s->nc = NULL;
        __atomic_store_n(&s->closing, 0, __ATOMIC_RELEASE);
    }
}

static int nats_resume(void *sink, struct log *lg, uint64_t *last, char *err, size_t errlen)
{
    struct nats_sink *s = sink;
    int rc = resume_checked(s, lg, last, err, errlen);
    if (rc == RELAY_ERETRY)
        disconnect(s);
    return rc;
}

/* The first recorded ack failure, as the call's result. */
static int failure(struct nats_sink *s, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    int rc = s->failed;
    if (rc)
        set_err(err, errlen, "%s", s->fail_msg);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int set_headers(natsMsg *m, const struct relay_event *ev)
{
    char id[24], expect[24];
    snprintf(id, sizeof id, "%" PRIu64, ev->position);
    snprintf(expect, sizeof expect, "%" PRIu64, ev->position - 1);
    natsStatus st = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    if (st == NATS_OK)
        st = natsMsgHeader_Set(m, "Nats-Expected-Last-Sequence", expect);
    for (int i = 0; st == NATS_OK && i < RELAY_HEADERS; i++)
        st = natsMsgHeader_Set(m, ev->headers[i].name, ev->headers[i].value);
    return st;
}

static int nats_publish(void *sink, const struct relay_event *ev, int timeout_ms, char *err, size_t errlen)
{
    /* The window's wait is bounded by the context's StallWait, RELAY_PUBLISH_TIMEOUT_MS. */
    (void)timeout_ms;
    struct nats_sink *s = sink;
    int rc = failure(s, err, errlen);
    if (rc)
        return rc;
    const char *type = relay_event_header(ev, "Eventfold-Type");
    if (!token_ok(ev->category, ev->category_len) || !token_ok(type, strlen(type))) {
        set_err(err, errlen, "position %" PRIu64 ": stream '%s' or type '%s' cannot be a subject token",
                ev->position, relay_event_header(ev, "Eventfold-Stream"), type);
        return RELAY_EFATAL;
    }
    snprintf(s->subject, sizeof s->subject, "%s.%.*s.%s", s->prefix, (int)ev->category_len, ev->category, type);
    natsMsg *m = NULL;
    natsStatus st = natsMsg_Create(&m, s->subject, NULL, ev->body, (int)ev->body_len);
    if (st == NATS_OK)
        st = set_headers(m, ev);
    if (st == NATS_OK) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = NATS_ACK_WAIT_MS;
        st = js_PublishMsgAsync(s->js, &m, &po);
        s->js_published = 1;
    }
    natsMsg_Destroy(m); /* NULL once libnats took it */
    if (st != NATS_OK) {
        set_err(err, errlen, "publishing position %" PRIu64 " to stream %s: %s", ev->position, s->stream,
                st == NATS_TIMEOUT ? "the window stayed full (no acks)" : nats_text(st));
        return RELAY_ERETRY;
    }
    return 0;
}

static int nats_confirmed(void *sink, int timeout_ms, uint64_t *confirmed, char *err, size_t errlen)
{
    struct nats_sink *s = sink;
    if (timeout_ms > 0 && s->js) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = timeout_ms;
        js_PublishAsyncComplete(s->js, &po); /* NATS_TIMEOUT: some still in flight */
    }
    pthread_mutex_lock(&s->mu);
    *confirmed = s->acked;
    pthread_mutex_unlock(&s->mu);
    return failure(s, err, errlen);
}

static void nats_close(void *sink)
{
    struct nats_sink *s = sink;
    if (!s)
        return;
    drop_pending(s);
    __atomic_store_n(&s->closing, 1, __ATOMIC_RELEASE);
    if (s->nc)
        natsConnection_Close(s->nc);
    jsCtx_Destroy(s->js);
    natsConnection_Destroy(s->nc);
    natsOptions_Destroy(s->opts);
    /* Waits for libnats' threads (and so any ack handler still running) to end before the
     * memory they use goes away. */
    nats_CloseAndWait(2000);
    relay_render_free(&s->check);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const struct relay_sink_ops relay_sink_nats = {
    .name = "nats",
    .open = nats_open,
    .resume = nats_resume,
    .publish = nats_publish,
    .confirmed = nats_confirmed,
    .close = nats_close,
};
