/* check_kafka: the Kafka sink (src/relay/sink_kafka.c) driven through its relay_sink_ops,
 * against librdkafka's mock cluster in this process (three brokers on loopback ports that
 * speak the real protocol). The relay's loop is not involved: the test renders the events
 * of a log it writes (relay_render_event) and drives open/resume/publish/confirmed itself.
 *
 * Covered: an empty topic resumes at 0; what was sent is in partition 0 once each, in
 * order, with key and headers; a restart resumes after the partition's last message; a
 * topic that disagrees with the log (CRC) or runs ahead of it stops the sink naming the
 * position; a topic of several partitions, a missing topic, unknown or guarantee-breaking
 * kafka.* properties, unreachable brokers; produce errors, a broker down and the leader
 * moving while sending leave every position once, in order. */
#include <config.h>

#include <check.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "log_testutil.h"
#include "testdir.h"
#include "relay/relay.h"
#include "relay/sink.h"
#include "util/config.h"
#include "util/eflog.h"
#include "util/xalloc.h"

static char *base;
static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;

static void quiet(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {}

/* The temp tree is made and removed by the runner (unchecked fixture), so it goes also when
 * a test fails; the mock cluster lives in each test's process (checked fixture). */
static void base_setup(void) { base = lt_mkdtemp("check_kafka"); }
static void base_teardown(void)
{
    td_rmtree(base);
    free(base);
}

static void setup(void)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(c, quiet);
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    ck_assert_ptr_nonnull(mock_rk);
    mock = rd_kafka_mock_cluster_new(mock_rk, 3);
    ck_assert_ptr_nonnull(mock);
    ck_assert_int_eq(rd_kafka_mock_topic_create(mock, "t", 1, 3), 0);
}

static void teardown(void)
{
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mock_rk);
}

/* A log of n records in a directory of its own under base (also with CK_FORK=no, where the
 * tests share a process); logs made with another pad hold different records at the same
 * positions. */
static struct log *newlog(const char *name, uint64_t n, size_t pad)
{
    static unsigned seq;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s-%ld-%u", base, name, (long)getpid(), seq++);
    struct log *lg = lt_open(path, 0);
    if (n)
        lt_append_batch(lg, 1, n, pad);
    return lg;
}

static void config(struct ef_config *cfg, const char *topic)
{
    ef_config_defaults(cfg);
    snprintf(cfg->kafka_brokers, sizeof cfg->kafka_brokers, "%s",
             rd_kafka_mock_cluster_bootstraps(mock));
    snprintf(cfg->kafka_topic, sizeof cfg->kafka_topic, "%s", topic);
}

static void *open_sink(const struct ef_config *cfg)
{
    void *s = NULL;
    char err[512];
    int rc = relay_sink_kafka.open(cfg, &s, err, sizeof err);
    ck_assert_msg(rc == 0, "open: %s", err);
    return s;
}

static uint64_t resume_ok(void *s, struct log *lg)
{
    char err[512];
    uint64_t last = 99999;
    int rc = relay_sink_kafka.resume(s, lg, &last, err, sizeof err);
    ck_assert_msg(rc == 0, "resume: %s", err);
    return last;
}

/* Publishes positions from..to of lg and waits (bounded) until all are confirmed.
 * Returns the sink's last code (0 when everything was confirmed). */
static int send_range(void *s, struct log *lg, uint64_t from, uint64_t to, char *err, size_t errlen)
{
    struct log_reader *rd;
    struct log_record rec;
    struct relay_render r = {0};
    struct relay_event ev;
    ck_assert_int_eq(log_reader_open(lg, from, &rd), 0);
    int rc = 0;
    for (uint64_t p = from; p <= to && rc == 0; p++) {
        ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 1);
        ck_assert_int_eq(relay_render_event(&rec, &r, &ev, err, errlen), 0);
        rc = relay_sink_kafka.publish(s, &ev, 5000, err, errlen);
    }
    log_reader_close(rd);
    relay_render_free(&r);
    uint64_t conf = 0;
    time_t deadline = time(NULL) + 60;
    while (rc == 0 && conf < to && time(NULL) < deadline)
        rc = relay_sink_kafka.confirmed(s, 100, &conf, err, errlen);
    if (rc == 0)
        ck_assert_uint_eq(conf, to);
    return rc;
}

/* Reads partition 0 of topic from the beginning and checks it holds exactly 1..n, in order,
 * each with its stream as key and its Eventfold-Position header. */
static void check_topic(const char *topic, struct log *lg, uint64_t n)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(mock), err, sizeof err);
    rd_kafka_conf_set(c, "group.id", "check", err, sizeof err);
    rd_kafka_conf_set(c, "enable.partition.eof", "true", err, sizeof err);
    rd_kafka_conf_set_log_cb(c, quiet);
    rd_kafka_t *co = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    ck_assert_ptr_nonnull(co);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(rd_kafka_assign(co, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    struct log_reader *rd;
    struct log_record rec;
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    uint64_t seen = 0;
    time_t deadline = time(NULL) + 60;
    while (time(NULL) < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(co, 100);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            if (seen == n)
                break;
            continue;
        }
        ck_assert_msg(m->err == 0, "consume: %s", rd_kafka_message_errstr(m));
        ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 1);
        rd_kafka_headers_t *h;
        const void *v;
        size_t vn;
        ck_assert_int_eq(rd_kafka_message_headers(m, &h), 0);
        ck_assert_int_eq(rd_kafka_header_get_last(h, "Eventfold-Position", &v, &vn), 0);
        char want[32];
        snprintf(want, sizeof want, "%" PRIu64, seen + 1);
        ck_assert_msg(vn == strlen(want) && memcmp(v, want, vn) == 0,
                      "offset %" PRId64 ": position %.*s, expected %s", m->offset, (int)vn,
                      (const char *)v, want);
        ck_assert_uint_eq(rd_kafka_header_cnt(h), RELAY_HEADERS);
        ck_assert(m->key_len == rec.stream_len && memcmp(m->key, rec.stream, rec.stream_len) == 0);
        ck_assert_int_eq(m->partition, 0);
        seen++;
        rd_kafka_message_destroy(m);
    }
    log_reader_close(rd);
    rd_kafka_consumer_close(co);
    rd_kafka_destroy(co);
    ck_assert_uint_eq(seen, n);
}

START_TEST(empty_then_resume)
{
    struct ef_config cfg;
    char err[512];
    config(&cfg, "t");
    struct log *lg = newlog("a", 300, 40);
    void *s = open_sink(&cfg);
    ck_assert_uint_eq(resume_ok(s, lg), 0);
    ck_assert_int_eq(send_range(s, lg, 1, 120, err, sizeof err), 0);
    relay_sink_kafka.close(s);
    s = open_sink(&cfg);
    ck_assert_uint_eq(resume_ok(s, lg), 120);
    ck_assert_int_eq(send_range(s, lg, 121, 300, err, sizeof err), 0);
    /* A second resume on the same sink (as after an error) finds the same end. */
    ck_assert_uint_eq(resume_ok(s, lg), 300);
    relay_sink_kafka.close(s);
    check_topic("t", lg, 300);
    log_close(lg);
}
END_TEST

START_TEST(disagreement_stops)
{
    struct ef_config cfg;
    char err[512];
    uint64_t last;
    config(&cfg, "t");
    struct log *a = newlog("a", 20, 40), *b = newlog("b", 30, 41), *c = newlog("c", 10, 40);
    void *s = open_sink(&cfg);
    resume_ok(s, a);
    ck_assert_int_eq(send_range(s, a, 1, 20, err, sizeof err), 0);
    /* Another log with different records at the same positions. */
    ck_assert_int_eq(relay_sink_kafka.resume(s, b, &last, err, sizeof err), RELAY_EFATAL);
    ck_assert_msg(strstr(err, "position 20 ") && strstr(err, "Eventfold-Crc32c"), "%s", err);
    /* A log shorter than the topic. */
    ck_assert_int_eq(relay_sink_kafka.resume(s, c, &last, err, sizeof err), RELAY_EFATAL);
    ck_assert_msg(strstr(err, "position 20 ") && strstr(err, "beyond the log's durable head 10"), "%s", err);
    relay_sink_kafka.close(s);
    log_close(a);
    log_close(b);
    log_close(c);
}
END_TEST

START_TEST(bad_topics)
{
    struct ef_config cfg;
    char err[512];
    uint64_t last;
    struct log *lg = newlog("a", 5, 40);
    ck_assert_int_eq(rd_kafka_mock_topic_create(mock, "wide", 3, 3), 0);
    config(&cfg, "wide");
    void *s = open_sink(&cfg);
    ck_assert_int_eq(relay_sink_kafka.resume(s, lg, &last, err, sizeof err), RELAY_EFATAL);
    ck_assert_msg(strstr(err, "topic wide has 3 partitions"), "%s", err);
    relay_sink_kafka.close(s);
    rd_kafka_mock_topic_set_error(mock, "absent", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    config(&cfg, "absent");
    s = open_sink(&cfg);
    int rc = relay_sink_kafka.resume(s, lg, &last, err, sizeof err);
    ck_assert_msg(rc == RELAY_ERETRY && strstr(err, "topic absent:"), "%d %s", rc, err);
    relay_sink_kafka.close(s);
    log_close(lg);
}
END_TEST

static int open_with(const char *name, const char *value, char *err, size_t errlen)
{
    struct ef_config cfg;
    char e2[256];
    config(&cfg, "t");
    snprintf(e2, sizeof e2, "kafka.%s", name);
    ck_assert_int_eq(ef_config_set(&cfg, e2, value, err, errlen), 0);
    void *s = NULL;
    int rc = relay_sink_kafka.open(&cfg, &s, err, errlen);
    relay_sink_kafka.close(s);
    return rc;
}

START_TEST(bad_properties)
{
    char err[512];
    ck_assert_int_eq(open_with("no.such.thing", "1", err, sizeof err), RELAY_EFATAL);
    ck_assert_str_eq(err, "kafka.no.such.thing: unknown librdkafka property");
    ck_assert_int_eq(open_with("linger.ms", "banana", err, sizeof err), RELAY_EFATAL);
    ck_assert_msg(strncmp(err, "kafka.linger.ms = banana: ", 26) == 0, "%s", err);
    ck_assert_int_eq(open_with("acks", "1", err, sizeof err), RELAY_EFATAL);
    ck_assert_msg(strstr(err, "kafka.acks = 1: the Kafka sink needs all"), "%s", err);
    ck_assert_int_eq(open_with("enable.idempotence", "false", err, sizeof err), RELAY_EFATAL);
    ck_assert_int_eq(open_with("transactional.id", "x", err, sizeof err), RELAY_EFATAL);
    ck_assert_int_eq(open_with("acks", "-1", err, sizeof err), 0);
    ck_assert_int_eq(open_with("linger.ms", "20", err, sizeof err), 0);
}
END_TEST

START_TEST(unreachable)
{
    struct ef_config cfg;
    char err[512];
    uint64_t last;
    struct log *lg = newlog("a", 5, 40);
    config(&cfg, "t");
    rd_kafka_mock_broker_set_down(mock, -1);
    void *s = open_sink(&cfg);
    ck_assert_int_eq(relay_sink_kafka.resume(s, lg, &last, err, sizeof err), RELAY_ERETRY);
    ck_assert_msg(strstr(err, "kafka: no metadata for topic t"), "%s", err);
    rd_kafka_mock_broker_set_up(mock, -1);
    ck_assert_uint_eq(resume_ok(s, lg), 0);
    relay_sink_kafka.close(s);
    log_close(lg);
}
END_TEST

/* Produce errors, a broker down, the leader moving: librdkafka retries in order and the
 * partition ends up with every position once. One request in flight: the mock checks
 * producer sequences only for transactional producers, so a batch failed by an injected
 * error could be passed by the next one (a real broker refuses that one). */
START_TEST(faults_while_sending)
{
    struct ef_config cfg;
    char err[512];
    struct log *lg = newlog("a", 3000, 40);
    config(&cfg, "t");
    ck_assert_int_eq(ef_config_set(&cfg, "kafka.max.in.flight.requests.per.connection", "1", err,
                                   sizeof err), 0);
    void *s = open_sink(&cfg);
    ck_assert_uint_eq(resume_ok(s, lg), 0);
    ck_assert_int_eq(send_range(s, lg, 1, 500, err, sizeof err), 0);
    rd_kafka_mock_push_request_errors(mock, 0, 4, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR__TRANSPORT);
    ck_assert_int_eq(send_range(s, lg, 501, 1500, err, sizeof err), 0);
    rd_kafka_mock_partition_set_leader(mock, "t", 0, 2);
    ck_assert_int_eq(send_range(s, lg, 1501, 2000, err, sizeof err), 0);
    rd_kafka_mock_partition_set_leader(mock, "t", 0, 3);
    rd_kafka_mock_broker_set_down(mock, 3);
    rd_kafka_mock_partition_set_leader(mock, "t", 0, 1);
    ck_assert_int_eq(send_range(s, lg, 2001, 3000, err, sizeof err), 0);
    rd_kafka_mock_broker_set_up(mock, 3);
    relay_sink_kafka.close(s);
    check_topic("t", lg, 3000);
    log_close(lg);
}
END_TEST

/* A produce error the idempotent producer cannot retry (OUT_OF_ORDER_SEQUENCE_NUMBER, as after
 * brokers lost acknowledged messages) stops that producer: confirmed() says RELAY_ERETRY, and
 * a resume with a new producer from the partition's end completes the topic exactly. */
START_TEST(fatal_error_resumes)
{
    struct ef_config cfg;
    char err[512];
    struct log *lg = newlog("a", 400, 40);
    config(&cfg, "t");
    ck_assert_int_eq(ef_config_set(&cfg, "kafka.max.in.flight.requests.per.connection", "1", err,
                                   sizeof err), 0);
    void *s = open_sink(&cfg);
    ck_assert_uint_eq(resume_ok(s, lg), 0);
    ck_assert_int_eq(send_range(s, lg, 1, 200, err, sizeof err), 0);
    rd_kafka_mock_push_request_errors(mock, 0, 1, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    int retries = 0;
    uint64_t last = 200;
    for (int attempt = 0; attempt < 5; attempt++) {
        int rc = send_range(s, lg, last + 1, 400, err, sizeof err);
        if (rc == 0)
            break;
        ck_assert_msg(rc == RELAY_ERETRY, "%d %s", rc, err);
        /* A delivery report or the producer's fatal state, whichever comes first. After the
         * fatal error librdkafka fails what was in flight and purges what was queued, and
         * the report of a purged message (a later position) may come first. */
        const char *nd = strstr(err, "position ");
        unsigned long first = nd ? strtoul(nd + 9, NULL, 10) : 0;
        ck_assert_msg((strstr(err, " not delivered") && first >= 201 && first <= 400) ||
                      strstr(err, "stopped at position 201 by a fatal error"), "%s", err);
        retries++;
        last = resume_ok(s, lg);
        ck_assert_uint_le(last, 400);
    }
    ck_assert_msg(retries > 0, "the injected error did not stop the producer");
    relay_sink_kafka.close(s);
    check_topic("t", lg, 400);
    log_close(lg);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("kafka");
    TCase *tc = tcase_create("sink");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, empty_then_resume);
    tcase_add_test(tc, disagreement_stops);
    tcase_add_test(tc, bad_topics);
    tcase_add_test(tc, bad_properties);
    tcase_add_test(tc, unreachable);
    tcase_add_test(tc, faults_while_sending);
    tcase_add_test(tc, fatal_error_resumes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    eflog_init("check_kafka", EF_WARN);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
