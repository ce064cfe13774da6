/* ef-kafka-mock: a three-broker Kafka cluster in one process, for the Kafka sink's tests.
 *
 * librdkafka's mock cluster (rdkafka_mock.h) speaks the real Kafka protocol on loopback TCP
 * ports, so eventfold-relay and kcat connect to it as to a real cluster. This program starts
 * one, creates the topic (1 partition, replication 3 unless told otherwise), prints the
 * bootstrap servers as the first line of stdout, then takes one command per line on stdin
 * and answers each with one line, "ok" or "error: ...", so that a test can drive faults in
 * step with its own actions:
 *   down N                      broker N (1..brokers) closes its connections and refuses new ones
 *   up N                        broker N accepts connections again
 *   leader P N                  partition P of the topic gets broker N as leader
 *   errors API ERR COUNT        the next COUNT requests of API (produce, fetch, listoffsets,
 *                               metadata, initproducerid) fail with ERR (a Kafka error name as
 *                               librdkafka spells it: NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT,
 *                               _TRANSPORT to disconnect the client, ...)
 *   rtt N MS                    broker N delays its answers by MS milliseconds
 *   topic NAME PARTITIONS       creates another topic (replication 3)
 *   quit                        exits (so does the end of stdin)
 * Usage: ef-kafka-mock [--topic NAME] [--partitions N] [--brokers N]
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mock {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *cl;
    const char *topic;
    int brokers;
};

/* The mock's own client handle logs nothing worth seeing (it has no bootstrap servers). */
static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
}

/* A Kafka error by its name ("NOT_ENOUGH_REPLICAS", "_TRANSPORT"); -1 when unknown. */
static int err_by_name(const char *name)
{
    const struct rd_kafka_err_desc *d;
    size_t n;
    rd_kafka_get_err_descs(&d, &n);
    for (size_t i = 0; i < n; i++)
        if (d[i].name && strcmp(d[i].name, name) == 0)
            return d[i].code;
    return -1;
}

static int api_by_name(const char *name)
{
    static const struct { const char *name; int key; } apis[] = {
        {"produce", 0}, {"fetch", 1}, {"listoffsets", 2}, {"metadata", 3},
        {"initproducerid", 22},
    };
    for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++)
        if (strcmp(apis[i].name, name) == 0)
            return apis[i].key;
    return -1;
}

/* Runs one command line; returns 1 to quit, 0 otherwise, with the answer in ans. */
static int run_command(struct mock *m, char *line, char *ans, size_t anslen)
{
    char w[4][128];
    int n = sscanf(line, "%127s %127s %127s %127s", w[0], w[1], w[2], w[3]);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    snprintf(ans, anslen, "ok");
    if (n < 1)
        snprintf(ans, anslen, "error: empty command");
    else if (strcmp(w[0], "quit") == 0)
        return 1;
    else if (n == 2 && strcmp(w[0], "down") == 0)
        e = rd_kafka_mock_broker_set_down(m->cl, atoi(w[1]));
    else if (n == 2 && strcmp(w[0], "up") == 0)
        e = rd_kafka_mock_broker_set_up(m->cl, atoi(w[1]));
    else if (n == 3 && strcmp(w[0], "leader") == 0)
        e = rd_kafka_mock_partition_set_leader(m->cl, m->topic, atoi(w[1]), atoi(w[2]));
    else if (n == 3 && strcmp(w[0], "rtt") == 0)
        e = rd_kafka_mock_broker_set_rtt(m->cl, atoi(w[1]), atoi(w[2]));
    else if (n == 3 && strcmp(w[0], "topic") == 0)
        e = rd_kafka_mock_topic_create(m->cl, w[1], atoi(w[2]), m->brokers < 3 ? m->brokers : 3);
    else if (n == 4 && strcmp(w[0], "errors") == 0) {
        int api = api_by_name(w[1]), code = err_by_name(w[2]), cnt = atoi(w[3]);
        if (api < 0 || code < 0 || cnt < 1) {
            snprintf(ans, anslen, "error: unknown api '%s' or error '%s', or count < 1", w[1], w[2]);
            return 0;
        }
        rd_kafka_resp_err_t codes[1024];
        if (cnt > 1024)
            cnt = 1024;
        for (int i = 0; i < cnt; i++)
            codes[i] = (rd_kafka_resp_err_t)code;
        rd_kafka_mock_push_request_errors_array(m->cl, (int16_t)api, (size_t)cnt, codes);
    } else
        snprintf(ans, anslen, "error: unknown command '%s' or wrong arguments", w[0]);
    if (e)
        snprintf(ans, anslen, "error: %s", rd_kafka_err2str(e));
    return 0;
}

int main(int argc, char **argv)
{
    struct mock m = {.topic = "eventfold.events", .brokers = 3};
    int partitions = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--topic") == 0)
            m.topic = argv[i + 1];
        else if (strcmp(argv[i], "--partitions") == 0)
            partitions = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--brokers") == 0)
            m.brokers = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "ef-kafka-mock: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (argc % 2 == 0 || partitions < 1 || m.brokers < 1) {
        fprintf(stderr, "usage: ef-kafka-mock [--topic NAME] [--partitions N] [--brokers N]\n");
        return 2;
    }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    m.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!m.rk) {
        fprintf(stderr, "ef-kafka-mock: %s\n", err);
        return 1;
    }
    m.cl = rd_kafka_mock_cluster_new(m.rk, m.brokers);
    if (!m.cl) {
        fprintf(stderr, "ef-kafka-mock: cannot start the mock cluster\n");
        return 1;
    }
    rd_kafka_resp_err_t e =
        rd_kafka_mock_topic_create(m.cl, m.topic, partitions, m.brokers < 3 ? m.brokers : 3);
    if (e) {
        fprintf(stderr, "ef-kafka-mock: topic %s: %s\n", m.topic, rd_kafka_err2str(e));
        return 1;
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(m.cl));
    fflush(stdout);
    char line[512], ans[600];
    while (fgets(line, sizeof line, stdin)) {
        int quit = run_command(&m, line, ans, sizeof ans);
        if (quit)
            break;
        printf("%s\n", ans);
        fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(m.cl);
    rd_kafka_destroy(m.rk);
    return 0;
}
