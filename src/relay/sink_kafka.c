/* sink_kafka: eventfold-relay's Kafka sink (API.md section 9, `--sink kafka`).
 *
 * Every event goes to partition 0 of one topic (kafka_topic), key = the event's stream,
 * headers = the relay_event's headers, body = EVENT JSON, through librdkafka's idempotent
 * producer (acks=all). The topic must exist with exactly one partition: a topic with more
 * is refused (RELAY_EFATAL), because consumers reading every partition of it would not see
 * the log's order, and a topic created for something else must not be written into.
 *
 * Why the partition holds every position once, in order:
 *  - One producer instance (one producer id and epoch) sends the positions in order; the
 *    broker takes its messages only in sequence (idempotence), so a message it lost or
 *    refused is never followed by a later one from the same producer: the partition is a
 *    prefix of what the producer sent, plus what earlier producers left.
 *  - Retries are librdkafka's, in order and without limit: message.timeout.ms = 0 (a message
 *    that timed out while in flight would let librdkafka bump the epoch and send the next
 *    ones, which can leave a gap), enable.gapless.guarantee = true (any other failure that
 *    could leave a gap stops the producer). An outage therefore only delays delivery.
 *  - Any failure the producer cannot retry (a refused message, a fatal producer error)
 *    returns RELAY_ERETRY; resume() then drops that producer and starts a new one from the
 *    partition's actual last message, which it checks against the log (Eventfold-Crc32c).
 *  - The one way to a duplicate: a producer ends without its in-flight requests answered
 *    (kill -9, a crash, or a resume whose bounded flush did not finish) and one of those
 *    requests reaches the partition's log after the next producer read the partition's end
 *    (it was still travelling, or appended but not yet replicated to the in-sync replicas,
 *    so above the high watermark). The positions it carries are then in the partition
 *    twice; nothing is missing and first occurrences stay in order. Consumers skip any
 *    message whose Eventfold-Position is <= the last position they applied (README).
 *
 * Threading: the sink runs on the relay's thread; librdkafka calls the delivery and error
 * callbacks from rd_kafka_poll()/rd_kafka_flush() on that thread, so the sink's state needs
 * no lock. Only the log callback comes from librdkafka's threads (eflog is thread-safe).
 */
#include <librdkafka/rdkafka.h>

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "relay/relay.h"
#include "relay/sink.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "util/xalloc.h"

#define KAFKA_META_TIMEOUT_MS 10000  /* metadata and watermark queries of resume() */
#define KAFKA_FETCH_TIMEOUT_MS 10000 /* reading the partition's last message */
#define KAFKA_FLUSH_TIMEOUT_MS 5000  /* letting in-flight messages land before a new producer */

/* Milliseconds of the monotonic clock (deadlines). */
static int64_t kafka_now_ms(void)
{
    return (int64_t)(ef_mono_ns() / 1000000);
}

struct kafka_sink {
    char topic[EF_TEXT_MAX];
    rd_kafka_conf_t *pconf; /* producer settings, checked at open; duplicated per producer */
    rd_kafka_conf_t *cconf; /* the same for the consumer that reads the partition's end */
    rd_kafka_t *rk;         /* producer; NULL until resume() */
    rd_kafka_topic_t *rkt;  /* rk's handle of the topic */
    rd_kafka_t *consumer;   /* reads the partition's end; lives only inside resume() */
    /* Delivery state of the current producer. Invariant: delivered <= sent, and every
     * position in (resumed, delivered] was reported delivered, in order, exactly once. */
    uint64_t sent;      /* last position handed to librdkafka */
    uint64_t delivered; /* highest position confirmed by the broker */
    int failed;         /* a delivery failed: RELAY_ERETRY until the next resume() */
    int fatal_config;   /* the failure cannot heal by retrying (message too large) */
    char fail_msg[512];
    struct relay_render render; /* the log's record, rendered for resume()'s check */
    int last_err; /* last librdkafka error logged (0: none), for one line per change */
};

/* Properties the guarantees rest on: a kafka.* line may repeat these values, not change them. */
static const struct {
    const char *name;
    const char *values[3]; /* accepted spellings */
    const char *why;
} kafka_fixed[] = {
    {"enable.idempotence", {"true"}, "the broker must take each producer's messages in order, once"},
    {"acks", {"all", "-1"}, "a message counts as delivered once the in-sync replicas have it"},
    {"request.required.acks", {"all", "-1"}, "a message counts as delivered once the in-sync replicas have it"},
    {"enable.gapless.guarantee", {"true"}, "a failed batch must stop the producer, not leave a gap"},
    {"message.timeout.ms", {"0"}, "a message that timed out in flight can leave a gap"},
    {"delivery.timeout.ms", {"0"}, "a message that timed out in flight can leave a gap"},
    {"transactional.id", {NULL}, "the sink uses the idempotent producer without transactions"},
};

static int kafka_fixed_check(const struct ef_config_prop *p, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof kafka_fixed / sizeof kafka_fixed[0]; i++) {
        if (strcmp(p->name, kafka_fixed[i].name) != 0)
            continue;
        for (int v = 0; v < 3 && kafka_fixed[i].values[v]; v++)
            if (strcmp(p->value, kafka_fixed[i].values[v]) == 0)
                return 0;
        if (kafka_fixed[i].values[0])
            snprintf(err, errlen, "kafka.%s = %s: the Kafka sink needs %s (%s)", p->name,
                     p->value, kafka_fixed[i].values[0], kafka_fixed[i].why);
        else
            snprintf(err, errlen, "kafka.%s: not supported (%s)", p->name, kafka_fixed[i].why);
        return RELAY_EFATAL;
    }
    return 0;
}

/* librdkafka's own log lines (connection chatter, config warnings) are debug-level here:
 * the states worth a line reach kafka_error_cb and delivery reports. */
static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    EFLOG_DEBUG("kafka: librdkafka level=%d %s %s", level, fac, buf);
}

/* One line per change of the cluster's state (brokers down, back, leader moved), not one per
 * reconnect attempt: librdkafka reports each attempt, the relay must not flood the journal. */
static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_sink *s = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        return; /* read with rd_kafka_fatal_error() by confirmed() */
    if (err == s->last_err)
        return;
    s->last_err = err;
    EFLOG_WARN("kafka: %s (%s); librdkafka keeps retrying", reason, rd_kafka_err2name(err));
}

static void kafka_fail(struct kafka_sink *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void kafka_fail(struct kafka_sink *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fail_msg, sizeof s->fail_msg, fmt, ap);
    va_end(ap);
}

static void kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kafka_sink *s = opaque;
    uint64_t pos = (uint64_t)(uintptr_t)m->_private;
    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
            s->fatal_config = 1;
        kafka_fail(s, "kafka: position %" PRIu64 " not delivered: %s", pos,
                   rd_kafka_err2str(m->err));
        return;
    }
    if (s->failed)
        return; /* a later message of a producer being dropped: resume() reads the partition */
    if (pos != s->delivered + 1) {
        /* Impossible with an idempotent producer on one partition; checked because a
         * confirmation out of order would make confirmed() claim a gap as delivered. */
        kafka_fail(s, "kafka: position %" PRIu64 " confirmed after %" PRIu64, pos, s->delivered);
        return;
    }
    s->delivered = pos;
    if (s->last_err) {
        s->last_err = 0;
        EFLOG_INFO("kafka: delivering again position=%" PRIu64, pos);
    }
}

/* Sets one property; an unknown or invalid one is an error naming it. */
static int kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value, int user,
                     char *err, size_t errlen)
{
    char why[512];
    rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, name, value, why, sizeof why);
    if (r == RD_KAFKA_CONF_OK)
        return 0;
    if (r == RD_KAFKA_CONF_UNKNOWN)
        snprintf(err, errlen, "kafka.%s: unknown librdkafka property", name);
    else
        snprintf(err, errlen, "%s%s = %s: %s", user ? "kafka." : "", name, value, why);
    return RELAY_EFATAL;
}

/* The producer's settings: ours first, then every kafka.* line (TLS, SASL, batching), then
 * ours again where the guarantees depend on them (kafka_fixed refused other values). */
static int kafka_conf_producer(struct kafka_sink *s, const struct ef_config *cfg, char *err,
                               size_t errlen)
{
    static const char *const fixed[][2] = {
        {"enable.idempotence", "true"}, {"acks", "all"}, {"enable.gapless.guarantee", "true"},
        {"message.timeout.ms", "0"},
    };
    static const char *const defaults[][2] = {
        {"client.id", "eventfold-relay"},
        {"allow.auto.create.topics", "false"}, /* else a missing topic appears, 4 partitions wide */
        {"linger.ms", "5"},
    };
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    s->pconf = c;
    int rc = kafka_set(c, "bootstrap.servers", cfg->kafka_brokers, 0, err, errlen);
    for (size_t i = 0; rc == 0 && i < sizeof defaults / sizeof defaults[0]; i++)
        rc = kafka_set(c, defaults[i][0], defaults[i][1], 0, err, errlen);
    for (int i = 0; rc == 0 && i < cfg->kafka_nprops; i++) {
        rc = kafka_fixed_check(&cfg->kafka_props[i], err, errlen);
        if (rc == 0)
            rc = kafka_set(c, cfg->kafka_props[i].name, cfg->kafka_props[i].value, 1, err,
                           errlen);
    }
    for (size_t i = 0; rc == 0 && i < sizeof fixed / sizeof fixed[0]; i++)
        rc = kafka_set(c, fixed[i][0], fixed[i][1], 0, err, errlen);
    if (rc)
        return rc;
    rd_kafka_conf_set_opaque(c, s);
    rd_kafka_conf_set_dr_msg_cb(c, kafka_dr_cb);
    rd_kafka_conf_set_error_cb(c, kafka_error_cb);
    rd_kafka_conf_set_log_cb(c, kafka_log_cb);
    return 0;
}

/* The consumer that reads the partition's last message at resume(): the same connection
 * settings (kafka.* lines; librdkafka ignores the producer-only ones for a consumer, with a
 * debug-level line), the simple consumer without a group, no offsets stored. */
static int kafka_conf_consumer(struct kafka_sink *s, const struct ef_config *cfg, char *err,
                               size_t errlen)
{
    static const char *const fixed[][2] = {
        {"client.id", "eventfold-relay-resume"}, {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},   {"auto.offset.reset", "error"},
        {"enable.partition.eof", "false"},       {"isolation.level", "read_uncommitted"},
    };
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    s->cconf = c;
    int rc = kafka_set(c, "bootstrap.servers", cfg->kafka_brokers, 0, err, errlen);
    for (int i = 0; rc == 0 && i < cfg->kafka_nprops; i++)
        rc = kafka_set(c, cfg->kafka_props[i].name, cfg->kafka_props[i].value, 1, err, errlen);
    for (size_t i = 0; rc == 0 && i < sizeof fixed / sizeof fixed[0]; i++)
        rc = kafka_set(c, fixed[i][0], fixed[i][1], 0, err, errlen);
    if (rc)
        return rc;
    rd_kafka_conf_set_opaque(c, s);
    rd_kafka_conf_set_error_cb(c, kafka_error_cb);
    rd_kafka_conf_set_log_cb(c, kafka_log_cb);
    return 0;
}

static void kafka_close(void *sink);

static int kafka_open(const struct ef_config *cfg, void **out, char *err, size_t errlen)
{
    struct kafka_sink *s = xcalloc(1, sizeof *s);
    int rc = RELAY_EFATAL;
    if (cfg->kafka_topic[0] == '\0') {
        snprintf(err, errlen, "kafka_topic is empty");
        goto fail;
    }
    snprintf(s->topic, sizeof s->topic, "%s", cfg->kafka_topic);
    rc = kafka_conf_producer(s, cfg, err, errlen);
    if (rc == 0)
        rc = kafka_conf_consumer(s, cfg, err, errlen);
    if (rc)
        goto fail;
    *out = s;
    return 0;
fail:
    kafka_close(s);
    return rc;
}

/* Drops the current producer. A producer whose messages are all answered is simply
 * destroyed; one with messages in flight first gets a bounded flush, so that a resume after
 * a transient error (not a crash) rarely leaves a request travelling that could land after
 * the next producer read the partition's end (the one source of duplicates). */
static void kafka_drop_producer(struct kafka_sink *s)
{
    if (!s->rk)
        return;
    if (rd_kafka_outq_len(s->rk) > 0 && !rd_kafka_fatal_error(s->rk, NULL, 0)) {
        rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE); /* not sent yet: never will be */
        rd_kafka_flush(s->rk, KAFKA_FLUSH_TIMEOUT_MS);
    }
    rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(s->rk, 0);
    rd_kafka_topic_destroy(s->rkt);
    rd_kafka_destroy(s->rk);
    s->rk = NULL;
    s->rkt = NULL;
}

static int kafka_new_producer(struct kafka_sink *s, char *err, size_t errlen)
{
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_dup(s->pconf), why, sizeof why);
    if (!rk) {
        snprintf(err, errlen, "kafka: cannot create the producer: %s", why);
        return RELAY_EFATAL;
    }
    s->rk = rk;
    s->rkt = rd_kafka_topic_new(rk, s->topic, NULL);
    if (!s->rkt) {
        snprintf(err, errlen, "kafka: topic %s: %s", s->topic, rd_kafka_err2str(rd_kafka_last_error()));
        return RELAY_EFATAL;
    }
    return 0;
}

/* The topic exists and has exactly one partition. */
static int kafka_check_topic(struct kafka_sink *s, char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(s->rk, 0, s->rkt, &md, KAFKA_META_TIMEOUT_MS);
    if (e) {
        snprintf(err, errlen, "kafka: no metadata for topic %s from the brokers: %s", s->topic,
                 rd_kafka_err2str(e));
        return RELAY_ERETRY;
    }
    int rc = 0;
    if (md->topic_cnt != 1 || md->topics[0].err) {
        snprintf(err, errlen, "kafka: topic %s: %s (create it with 1 partition, replication factor 3)",
                 s->topic, md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "not found");
        rc = RELAY_ERETRY;
    } else if (md->topics[0].partition_cnt != 1) {
        snprintf(err, errlen,
                 "kafka: topic %s has %d partitions; the Kafka sink needs a topic of exactly 1 "
                 "(consumers of several would not see the log's order)",
                 s->topic, md->topics[0].partition_cnt);
        rc = RELAY_EFATAL;
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

/* Reads the message at `offset` of partition 0 into *out (caller destroys it), with the
 * simple consumer (consume_start/consume): no group, so nothing at the group coordinator
 * (no ACL on a group needed, no group shared between relays). */
static int kafka_fetch(struct kafka_sink *s, int64_t offset, rd_kafka_message_t **out, char *err,
                       size_t errlen)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(s->consumer, s->topic, NULL);
    int rc = RELAY_ERETRY;
    *out = NULL;
    if (!rkt || rd_kafka_consume_start(rkt, 0, offset) != 0) {
        snprintf(err, errlen, "kafka: cannot read topic %s: %s", s->topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        if (rkt)
            rd_kafka_topic_destroy(rkt);
        return rc;
    }
    snprintf(err, errlen, "kafka: timed out reading offset %" PRId64 " of topic %s", offset,
             s->topic);
    int64_t deadline = kafka_now_ms() + KAFKA_FETCH_TIMEOUT_MS;
    while (!*out && kafka_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consume(rkt, 0, 100);
        if (!m) {
            rd_kafka_poll(s->consumer, 0); /* error callbacks */
            continue;
        }
        if (m->err) {
            snprintf(err, errlen, "kafka: reading offset %" PRId64 " of topic %s: %s", offset,
                     s->topic, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            break;
        }
        if (m->offset == offset) {
            *out = m;
            rc = 0;
        } else
            rd_kafka_message_destroy(m);
    }
    rd_kafka_consume_stop(rkt, 0);
    rd_kafka_topic_destroy(rkt);
    return rc;
}

/* A header's value as a NUL-terminated string; 0, or -1 when absent or too long. */
static int kafka_header(rd_kafka_message_t *m, const char *name, char *buf, size_t len)
{
    rd_kafka_headers_t *h;
    const void *v;
    size_t n;
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, name, &v, &n) ||
        !v || n >= len)
        return -1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return 0;
}

/* The position the partition's message at `offset` holds, checked against the log. */
static int kafka_check_last(struct kafka_sink *s, struct log *lg, int64_t offset, uint64_t *last,
                            char *err, size_t errlen)
{
    rd_kafka_message_t *m;
    int rc = kafka_fetch(s, offset, &m, err, errlen);
    if (rc)
        return rc;
    char pos_s[32], crc_s[16], *end;
    rc = RELAY_EFATAL;
    if (kafka_header(m, "Eventfold-Position", pos_s, sizeof pos_s) ||
        kafka_header(m, "Eventfold-Crc32c", crc_s, sizeof crc_s)) {
        snprintf(err, errlen,
                 "kafka: offset %" PRId64 " of topic %s has no Eventfold-Position or "
                 "Eventfold-Crc32c header (not written by eventfold-relay)", offset, s->topic);
        goto out;
    }
    uint64_t pos = strtoull(pos_s, &end, 10);
    if (*end || pos == 0) {
        snprintf(err, errlen, "kafka: offset %" PRId64 " of topic %s: bad Eventfold-Position '%s'",
                 offset, s->topic, pos_s);
        goto out;
    }
    if (pos > log_durable(lg)) {
        snprintf(err, errlen,
                 "kafka: topic %s holds position %" PRIu64 " (offset %" PRId64
                 "), beyond the log's durable head %" PRIu64 ": it was fed from another log",
                 s->topic, pos, offset, log_durable(lg));
        goto out;
    }
    struct relay_event ev;
    char why[512];
    rc = relay_render_position(lg, pos, &s->render, &ev, why, sizeof why);
    if (rc) {
        snprintf(err, errlen, "kafka: checking topic %s against the log: %s", s->topic, why);
        rc = RELAY_EFATAL;
        goto out;
    }
    const char *want = relay_event_header(&ev, "Eventfold-Crc32c");
    const char *key = relay_event_header(&ev, "Eventfold-Stream");
    const char *what = NULL;
    if (strcmp(want, crc_s) != 0)
        what = "Eventfold-Crc32c";
    else if (m->key_len != strlen(key) || memcmp(m->key, key, m->key_len) != 0)
        what = "key";
    else if (m->len != ev.body_len || memcmp(m->payload, ev.body, m->len) != 0)
        what = "body";
    if (what) {
        snprintf(err, errlen,
                 "kafka: topic %s position %" PRIu64 " (offset %" PRId64 "): its %s differs "
                 "from the log's record (Eventfold-Crc32c %s, the log's %s): the topic "
                 "disagrees with the log",
                 s->topic, pos, offset, what, crc_s, want);
        rc = RELAY_EFATAL;
        goto out;
    }
    *last = pos;
    rc = 0;
out:
    rd_kafka_message_destroy(m);
    return rc;
}

/* Where partition 0 stands: 0 when it never held a message. */
static int kafka_find_last(struct kafka_sink *s, struct log *lg, uint64_t *last, char *err,
                           size_t errlen)
{
    int64_t lo, hi;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(s->consumer, s->topic, 0, &lo, &hi, KAFKA_META_TIMEOUT_MS);
    if (e) {
        snprintf(err, errlen, "kafka: cannot read the end of topic %s: %s", s->topic,
                 rd_kafka_err2str(e));
        return RELAY_ERETRY;
    }
    if (hi == 0) {
        *last = 0;
        return 0;
    }
    if (lo >= hi) {
        snprintf(err, errlen,
                 "kafka: topic %s holds no message but had %" PRId64 " (deleted by retention?): "
                 "cannot tell which position it holds; give it unlimited retention",
                 s->topic, hi);
        return RELAY_EFATAL;
    }
    return kafka_check_last(s, lg, hi - 1, last, err, errlen);
}

/* A consumer for one resume: created and destroyed there, so that between resumes it holds
 * no connections and queues no stale errors. */
static int kafka_find_last_once(struct kafka_sink *s, struct log *lg, uint64_t *last, char *err,
                                size_t errlen)
{
    char why[512];
    s->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, rd_kafka_conf_dup(s->cconf), why, sizeof why);
    if (!s->consumer) {
        snprintf(err, errlen, "kafka: cannot create the consumer: %s", why);
        return RELAY_EFATAL;
    }
    int rc = kafka_find_last(s, lg, last, err, errlen);
    rd_kafka_poll(s->consumer, 0); /* its error callbacks, before it goes */
    rd_kafka_destroy(s->consumer);
    s->consumer = NULL;
    return rc;
}

static int kafka_resume(void *sink, struct log *lg, uint64_t *last, char *err, size_t errlen)
{
    struct kafka_sink *s = sink;
    if (s->fatal_config) {
        snprintf(err, errlen, "%s", s->fail_msg);
        return RELAY_EFATAL;
    }
    kafka_drop_producer(s);
    int rc = kafka_new_producer(s, err, errlen);
    if (rc == 0)
        rc = kafka_check_topic(s, err, errlen);
    if (rc == 0)
        rc = kafka_find_last_once(s, lg, last, err, errlen);
    if (rc)
        return rc;
    s->sent = s->delivered = *last;
    s->failed = 0;
    EFLOG_INFO("kafka: resuming topic=%s after position=%" PRIu64, s->topic, *last);
    return 0;
}

/* The headers' ownership passes to librdkafka when producev succeeds. */
static rd_kafka_headers_t *kafka_headers(const struct relay_event *ev)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(RELAY_HEADERS);
    for (int i = 0; i < RELAY_HEADERS; i++)
        rd_kafka_header_add(h, ev->headers[i].name, -1, ev->headers[i].value, -1);
    return h;
}

static int kafka_failed(struct kafka_sink *s, char *err, size_t errlen)
{
    char why[256];
    if (!s->failed && rd_kafka_fatal_error(s->rk, why, sizeof why)) {
        s->failed = 1;
        snprintf(s->fail_msg, sizeof s->fail_msg,
                 "kafka: producer stopped at position %" PRIu64 " by a fatal error: %s "
                 "(a new producer resumes)", s->delivered + 1, why);
    }
    if (!s->failed)
        return 0;
    snprintf(err, errlen, "%s", s->fail_msg);
    return s->fatal_config ? RELAY_EFATAL : RELAY_ERETRY;
}

static int kafka_publish(void *sink, const struct relay_event *ev, int timeout_ms, char *err,
                         size_t errlen)
{
    struct kafka_sink *s = sink;
    assert(s->rk);
    assert(ev->position == s->sent + 1);
    if (s->failed) /* a fatal producer error is found by confirmed(), once per batch */
        return kafka_failed(s, err, errlen);
    rd_kafka_headers_t *h = kafka_headers(ev);
    int64_t deadline = 0; /* set at the first full queue */
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            s->rk, RD_KAFKA_V_RKT(s->rkt), RD_KAFKA_V_PARTITION(0),
            RD_KAFKA_V_KEY(ev->rec->stream, ev->rec->stream_len),
            RD_KAFKA_V_VALUE((void *)ev->body, ev->body_len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)ev->position), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (e == RD_KAFKA_RESP_ERR__FATAL) {
            rd_kafka_headers_destroy(h);
            int rc = kafka_failed(s, err, errlen); /* names the first undelivered position */
            if (rc == 0) /* not reported fatal yet: still never "sent" */
                snprintf(err, errlen, "kafka: cannot send position %" PRIu64 ": %s",
                         ev->position, rd_kafka_err2str(e));
            return rc ? rc : RELAY_ERETRY;
        }
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && deadline == 0)
            deadline = kafka_now_ms() + timeout_ms;
        int64_t left = deadline - kafka_now_ms();
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || left <= 0) {
            rd_kafka_headers_destroy(h);
            snprintf(err, errlen, "kafka: cannot send position %" PRIu64 ": %s", ev->position,
                     rd_kafka_err2str(e));
            return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? RELAY_EFATAL : RELAY_ERETRY;
        }
        rd_kafka_poll(s->rk, left < 100 ? (int)left : 100); /* delivery reports free room */
    }
    s->sent = ev->position;
    rd_kafka_poll(s->rk, 0);
    return 0;
}

static int kafka_confirmed(void *sink, int timeout_ms, uint64_t *confirmed, char *err,
                           size_t errlen)
{
    struct kafka_sink *s = sink;
    assert(s->rk);
    uint64_t before = s->delivered;
    int64_t deadline = kafka_now_ms() + timeout_ms;
    rd_kafka_poll(s->rk, 0);
    while (s->delivered == before && s->delivered < s->sent && !s->failed) {
        int64_t left = deadline - kafka_now_ms();
        if (left <= 0)
            break;
        rd_kafka_poll(s->rk, (int)left);
    }
    *confirmed = s->delivered;
    return kafka_failed(s, err, errlen);
}

/* A clean stop lets in-flight messages land (bounded), so that the next start finds them. */
static void kafka_close(void *sink)
{
    struct kafka_sink *s = sink;
    if (!s)
        return;
    if (s->rk && !s->failed)
        rd_kafka_flush(s->rk, KAFKA_FLUSH_TIMEOUT_MS);
    kafka_drop_producer(s);
    assert(!s->consumer);
    if (s->pconf)
        rd_kafka_conf_destroy(s->pconf);
    if (s->cconf)
        rd_kafka_conf_destroy(s->cconf);
    relay_render_free(&s->render);
    free(s);
}

const struct relay_sink_ops relay_sink_kafka = {
    .name = "kafka",
    .open = kafka_open,
    .resume = kafka_resume,
    .publish = kafka_publish,
    .confirmed = kafka_confirmed,
    .close = kafka_close,
};
