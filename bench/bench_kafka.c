/* bench_kafka: eventfold-relay's throughput into Kafka beside a plain librdkafka producer.
 *
 * Builds, in a temp dir, a log of EF_BENCH_KAFKA_EVENTS events (default 1 000 000; order,
 * user and item streams, a meta on every fourth), starts librdkafka's mock cluster (three
 * brokers on loopback ports, in this process) with two topics of one partition, then:
 *   - ceiling: a plain producer loop in a child process (forked before the mock's threads
 *     exist, so that it runs beside the mock as the relay does) sends the same messages
 *     (each record read from the log and rendered as the relay renders it: key, the eight
 *     headers, EVENT JSON) to a fresh topic with the sink's producer settings (idempotence,
 *     acks=all, linger.ms=5), until every delivery report is in;
 *   - relay: the real eventfold-relay --sink kafka on that data directory, to a fresh topic,
 *     from its start until its state file (DATA/relay-kafka.state) says the last position
 *     is confirmed (the file is rewritten every 200 ms at most: the figure is that much
 *     pessimistic at worst).
 * Two rounds of both, interleaved (ceiling, relay, ceiling, relay); the better of each is
 * kept. One line on stdout:
 *   kafka_events=N kafka_ceiling_seconds=C kafka_ceiling_events_per_second=A
 *   kafka_relay_seconds=R kafka_relay_events_per_second=B kafka_relay_ratio=B/A
 *   kafka_ceiling_cpu_seconds=X kafka_relay_cpu_seconds=Y (CPU time of each producer's
 *   process during its run; the mock's brokers are not in either)
 * The mock keeps only the last 5 MB of a partition, so memory stays small. The temp dir is
 * removed at the end. Usage: bench_kafka (EF_BUILDDIR names the build tree).
 */
#include <config.h>

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "relay/relay.h"
#include "relay/relay_state.h"
#include "util/clock.h"
#include "util/eflog.h"

static void die(const char *what)
{
    fprintf(stderr, "bench_kafka: %s\n", what);
    exit(1);
}

static double now_s(void)
{
    return (double)ef_mono_ns() / 1e9;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double cpu_self_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        die("getrusage");
    return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
}

static void quiet(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {}

/* Event i: four shapes, the sizes of the shop's events. */
static void make_event(uint64_t i, char *buf, size_t cap, struct log_event *ev)
{
    static const char *const types[] = {"OrderCreated", "UserRegistered", "ItemRestocked", "OrderPaid"};
    static const char *const cats[] = {"order-o-", "user-u-", "item-i-", "order-o-"};
    int k = (int)(i % 4);
    char *stream = buf, *meta = buf + 64, *data = buf + 256;
    memset(ev, 0, sizeof *ev);
    ev->stream_len = (size_t)snprintf(stream, 64, "%s%" PRIu64, cats[k], i / 4);
    ev->stream = stream;
    ev->type = types[k];
    ev->type_len = strlen(types[k]);
    ev->schema_version = 1;
    ev->stream_version = 1 + (uint64_t)(k == 3);
    ev->timestamp_ms = 1700000000000 + (int64_t)i;
    if (k == 0) {
        ev->meta_len = (size_t)snprintf(meta, 192, "{\"idempotency_key\":\"k-%" PRIu64
                                        "\",\"fingerprint\":\"%016" PRIx64 "\"}", i, i * 2654435761u);
        ev->meta = meta;
    }
    ev->data_len = (size_t)snprintf(data, cap - 256,
                                    "{\"order_id\":\"o-%" PRIu64 "\",\"user_id\":\"u-%" PRIu64
                                    "\",\"items\":[{\"item_id\":\"i-%" PRIu64 "\",\"quantity\":%d,"
                                    "\"price_cents\":%d}],\"total_cents\":%d}",
                                    i / 4, i % 1000, i % 97, (int)(i % 5) + 1, 250, 250 * ((int)(i % 5) + 1));
    ev->data = data;
}

static void build_log(const char *logdir, uint64_t n)
{
    struct log *lg;
    char buf[1024];
    if (log_open(logdir, NULL, &lg) != 0)
        die(log_last_error(NULL));
    for (uint64_t i = 0; i < n;) {
        if (log_append_begin(lg) != 0)
            die(log_last_error(lg));
        uint64_t pos = 0;
        for (int b = 0; b < 10000 && i < n; b++, i++) {
            struct log_event ev;
            make_event(i, buf, sizeof buf, &ev);
            if (log_append_record(lg, &ev, &pos) != 0)
                die(log_last_error(lg));
        }
        log_append_end(lg);
        if (log_sync(lg, pos) != 0)
            die(log_last_error(lg));
    }
    log_close(lg);
}

static uint64_t delivered, failed;

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err)
        failed++;
    else
        delivered++;
}

/* The ceiling: the same messages, the sink's settings, no relay around the producer. */
static double ceiling(const char *logdir, const char *bootstrap, const char *topic, uint64_t n,
                      double *cpu)
{
    char err[512];
    static const char *const props[][2] = {
        {"enable.idempotence", "true"}, {"acks", "all"}, {"enable.gapless.guarantee", "true"},
        {"message.timeout.ms", "0"},    {"linger.ms", "5"}, {"allow.auto.create.topics", "false"},
    };
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof err))
        die(err);
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
        if (rd_kafka_conf_set(c, props[i][0], props[i][1], err, sizeof err))
            die(err);
    rd_kafka_conf_set_dr_msg_cb(c, dr);
    rd_kafka_conf_set_log_cb(c, quiet);
    struct log *lg;
    struct log_options ro = {.read_only = 1};
    if (log_open(logdir, &ro, &lg) != 0)
        die(log_last_error(NULL));
    delivered = failed = 0;
    double t0 = now_s(), c0 = cpu_self_s();
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk)
        die(err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    struct log_reader *rd;
    struct log_record rec;
    struct relay_render r = {0};
    struct relay_event ev;
    if (log_reader_open(lg, 1, &rd) != 0)
        die(log_last_error(lg));
    for (uint64_t i = 0; i < n; i++) {
        if (log_reader_next(rd, log_head(lg), &rec) != 1)
            die("reading the log");
        if (relay_render_event(&rec, &r, &ev, err, sizeof err) != 0)
            die(err);
        rd_kafka_headers_t *h = rd_kafka_headers_new(RELAY_HEADERS);
        for (int k = 0; k < RELAY_HEADERS; k++)
            rd_kafka_header_add(h, ev.headers[k].name, -1, ev.headers[k].value, -1);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(0),
                                      RD_KAFKA_V_KEY(rec.stream, rec.stream_len),
                                      RD_KAFKA_V_VALUE((void *)ev.body, ev.body_len),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        if (e)
            die(rd_kafka_err2str(e));
        rd_kafka_poll(rk, 0); /* delivery reports, as librdkafka's examples do */
    }
    while (delivered + failed < n)
        rd_kafka_poll(rk, 100);
    double t = now_s() - t0;
    *cpu = cpu_self_s() - c0;
    if (failed)
        die("the ceiling producer had failed deliveries");
    log_reader_close(rd);
    relay_render_free(&r);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    log_close(lg);
    return t;
}

/* Forks the ceiling's process now, while this one has no threads: it reads the bootstrap
 * servers on one pipe (fds[0]), then one byte per run (the run's number), and answers each
 * run's time on the other pipe (fds[3]). */
static void ceiling_fork(int fds[4], const char *logdir, uint64_t n)
{
    if (pipe(fds) != 0 || pipe(fds + 2) != 0)
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid > 0) {
        close(fds[0]);
        close(fds[3]);
        return;
    }
    close(fds[1]);
    close(fds[2]);
    char bootstrap[1024], topic[32];
    ssize_t k = read(fds[0], bootstrap, sizeof bootstrap - 1);
    if (k <= 0)
        _exit(1);
    bootstrap[k] = '\0';
    unsigned char run;
    while (read(fds[0], &run, 1) == 1) {
        snprintf(topic, sizeof topic, "ceiling%u", run);
        double t[2];
        t[0] = ceiling(logdir, bootstrap, topic, n, &t[1]);
        if (write(fds[3], t, sizeof t) != (ssize_t)sizeof t)
            _exit(1);
    }
    _exit(0);
}

static void ceiling_start(int fds[4], const char *bootstrap)
{
    if (write(fds[1], bootstrap, strlen(bootstrap)) != (ssize_t)strlen(bootstrap))
        die("pipe write");
    struct timespec ts = {0, 100 * 1000000}; /* the bootstrap string arrives alone */
    nanosleep(&ts, NULL);
}

static double ceiling_run(int fds[4], unsigned char run, double *cpu)
{
    double t[2];
    if (write(fds[1], &run, 1) != 1 || read(fds[2], t, sizeof t) != (ssize_t)sizeof t)
        die("the ceiling's process failed");
    *cpu = t[1];
    return t[0];
}

static void ceiling_end(int fds[4])
{
    int status;
    close(fds[1]);
    close(fds[2]);
    if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("the ceiling's process failed");
}

/* The real relay, from its start to the state file saying position n. */
static double relay(const char *tmp, const char *data, const char *bootstrap, int run, uint64_t n,
                    double *cpu)
{
    char conf[4200], relay_path[4200], out[4200];
    const char *bd = getenv("EF_BUILDDIR");
    snprintf(relay_path, sizeof relay_path, "%s/eventfold-relay", bd ? bd : ".");
    snprintf(conf, sizeof conf, "%s/eventfold.conf", tmp);
    snprintf(out, sizeof out, "%s/relay.log", tmp);
    FILE *f = fopen(conf, "w");
    if (!f || fprintf(f, "kafka_brokers = %s\nkafka_topic = relay%d\n", bootstrap, run) < 0 ||
        fclose(f) != 0)
        die("cannot write the relay's config file");
    /* The previous run's progress: advisory, the relay asks the topic; removed so that the
     * wait below sees this run's. */
    char state[4300];
    snprintf(state, sizeof state, "%s/relay-kafka.state", data);
    unlink(state);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        if (!freopen(out, "w", stderr) || !freopen("/dev/null", "w", stdout))
            _exit(127);
        execl(relay_path, relay_path, "--data", data, "--sink", "kafka", "--config", conf,
              (char *)NULL);
        _exit(127);
    }
    struct relay_state st = {0};
    int status;
    while (st.position < n) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "bench_kafka: eventfold-relay exited (see %s)\n", out);
            exit(1);
        }
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
        if (relay_state_read(data, "kafka", &st) != 0)
            st.position = 0;
        if (now_s() - t0 > 1800)
            die("the relay did not reach the head in 30 minutes");
    }
    double t = now_s() - t0;
    struct rusage ru;
    kill(pid, SIGTERM);
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("eventfold-relay did not exit 0 after SIGTERM");
    *cpu = tv_s(ru.ru_utime) + tv_s(ru.ru_stime); /* its whole life: start and stop included */
    return t;
}

static void rmtree(const char *dir)
{
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_kafka: cannot remove %s\n", dir);
}

int main(void)
{
    eflog_init("bench_kafka", EF_WARN);
    const char *s = getenv("EF_BENCH_KAFKA_EVENTS");
    uint64_t n = s ? strtoull(s, NULL, 10) : 1000000;
    const char *base = getenv("EF_BENCH_DIR");
    char tmp[4096], data[4200], logdir[4300], err[512];
    snprintf(tmp, sizeof tmp, "%s/bench-kafka-XXXXXX", base ? base : "/tmp");
    if (n == 0 || !mkdtemp(tmp))
        die("bad EF_BENCH_KAFKA_EVENTS or cannot create the temp dir");
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(logdir, sizeof logdir, "%s/log", data);
    if (mkdir(data, 0755) != 0)
        die("mkdir");
    double tb = now_s();
    build_log(logdir, n);
    fprintf(stderr, "bench_kafka: log of %" PRIu64 " events built in %.1f s\n", n, now_s() - tb);

    int fds[4];
    ceiling_fork(fds, logdir, n);
    rd_kafka_conf_t *mc = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(mc, quiet);
    rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mc, err, sizeof err);
    rd_kafka_mock_cluster_t *mock = mrk ? rd_kafka_mock_cluster_new(mrk, 3) : NULL;
    if (!mock)
        die("cannot start the mock cluster");
    static const char *const topics[] = {"ceiling1", "ceiling2", "relay1", "relay2"};
    for (int i = 0; i < 4; i++)
        if (rd_kafka_mock_topic_create(mock, topics[i], 1, 3))
            die("cannot create the mock's topics");
    const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mock);

    /* Two rounds, interleaved, the better of each kept: the first run on a fresh mock is
     * slower whichever it is, and the machine is shared. */
    ceiling_start(fds, bootstrap);
    double c = 1e9, r = 1e9, ccpu = 0, rcpu = 0, cpu;
    for (int run = 1; run <= 2; run++) {
        double t = ceiling_run(fds, (unsigned char)run, &cpu);
        fprintf(stderr, "bench_kafka: round %d: ceiling %.2f s, CPU %.2f s\n", run, t, cpu);
        if (t < c)
            c = t, ccpu = cpu;
        t = relay(tmp, data, bootstrap, run, n, &cpu);
        fprintf(stderr, "bench_kafka: round %d: relay %.2f s, CPU %.2f s\n", run, t, cpu);
        if (t < r)
            r = t, rcpu = cpu;
    }
    ceiling_end(fds);
    printf("kafka_events=%" PRIu64 " kafka_ceiling_seconds=%.2f kafka_ceiling_events_per_second=%.0f "
           "kafka_relay_seconds=%.2f kafka_relay_events_per_second=%.0f kafka_relay_ratio=%.3f "
           "kafka_ceiling_cpu_seconds=%.2f kafka_relay_cpu_seconds=%.2f\n",
           n, c, (double)n / c, r, (double)n / r, c / r, ccpu, rcpu);
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mrk);
    rmtree(tmp);
    return 0;
}
