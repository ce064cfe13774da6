/* bench_relay: the two C halves of the relay benchmark (bench/relay_bench.py drives them).
 *
 *   bench_relay gen DIR N      writes a log of N durable events into DIR/log (order-like
 *                              events of a realistic size), prints body_bytes_avg=
 *   bench_relay ceiling URLS STREAM N BODY_BYTES
 *                              the engine's ceiling: a plain asynchronous publish loop of N
 *                              messages of BODY_BYTES with headers of the relay's size into
 *                              STREAM (window as the relay's), prints ceiling_events_per_s=
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "log/log.h"
#include "util/clock.h"
#include "util/eflog.h"

#define WINDOW 4096

static int gen(const char *dir, uint64_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/log", dir);
    struct log *lg;
    if (log_open(path, NULL, &lg) != 0) {
        fprintf(stderr, "bench_relay: %s\n", log_last_error(NULL));
        return 1;
    }
    uint64_t bytes = 0, pos = 0;
    char stream[64], data[512];
    for (uint64_t i = 0; i < n; i++) {
        snprintf(stream, sizeof stream, "order-o%" PRIu64, i);
        int len = snprintf(data, sizeof data,
                           "{\"order_id\":\"o%" PRIu64 "\",\"user_id\":\"u%" PRIu64 "\",\"items\":[{\"item_id\":"
                           "\"i%" PRIu64 "\",\"name\":\"Item %" PRIu64 "\",\"quantity\":2,\"price_cents\":1299}],"
                           "\"amount_cents\":2598}", i, i % 1000, i % 50, i % 50);
        struct log_event e = { .stream = stream, .stream_len = strlen(stream), .type = "OrderCreated",
                               .type_len = 12, .schema_version = 2, .stream_version = 1,
                               .timestamp_ms = ef_now_ms(), .meta = "{}", .meta_len = 2,
                               .data = data, .data_len = (size_t)len };
        if ((i % 1000 == 0 && log_append_begin(lg) != 0) || log_append_record(lg, &e, &pos) != 0) {
            fprintf(stderr, "bench_relay: append: %s\n", log_last_error(lg));
            return 1;
        }
        if (i % 1000 == 999 || i + 1 == n)
            log_append_end(lg);
        bytes += (uint64_t)len + 120; /* the EVENT envelope around the data */
    }
    if (log_sync(lg, pos) != 0) {
        fprintf(stderr, "bench_relay: sync: %s\n", log_last_error(lg));
        return 1;
    }
    log_close(lg);
    printf("events=%" PRIu64 " body_bytes_avg=%" PRIu64 "\n", n, n ? bytes / n : 0);
    return 0;
}

static int ceiling(const char *urls, const char *stream, uint64_t n, int body_bytes)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    natsStatus st = natsConnection_ConnectTo(&nc, urls);
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = WINDOW;
    jo.PublishAsync.StallWait = 10000;
    if (st == NATS_OK)
        st = natsConnection_JetStream(&js, nc, &jo);
    char *body = malloc((size_t)body_bytes);
    memset(body, 'x', (size_t)body_bytes);
    char subject[64], num[24];
    uint64_t t0 = ef_mono_ns();
    for (uint64_t i = 1; st == NATS_OK && i <= n; i++) {
        natsMsg *m = NULL;
        snprintf(subject, sizeof subject, "eventfold.order.OrderCreated");
        snprintf(num, sizeof num, "%" PRIu64, i);
        st = natsMsg_Create(&m, subject, NULL, body, body_bytes);
        /* The relay's headers with values of the same sizes; the last one pads for
         * Nats-Expected-Last-Sequence, which would constrain this loop. */
        static const char *const names[] = { "Eventfold-Position", "Eventfold-Stream", "Eventfold-Type",
                                             "Eventfold-Schema-Version", "Eventfold-Stream-Version",
                                             "Eventfold-Timestamp-Ms", "Eventfold-Meta", "Eventfold-Crc32c",
                                             "Nats-Msg-Id", "X-Pad-Expected-Last-Seq" };
        const char *const values[] = { num, "order-o123456", "OrderCreated", "2", "1", "1765000000000", "{}",
                                       "0badc0de", num, num };
        for (int h = 0; st == NATS_OK && h < 10; h++)
            st = natsMsgHeader_Set(m, names[h], values[h]);
        if (st == NATS_OK)
            st = js_PublishMsgAsync(js, &m, NULL);
        natsMsg_Destroy(m);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    if (st == NATS_OK)
        st = js_PublishAsyncComplete(js, &po);
    double secs = (double)(ef_mono_ns() - t0) / 1e9;
    free(body);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    if (st != NATS_OK) {
        fprintf(stderr, "bench_relay: publish: %s\n", natsStatus_GetText(st));
        return 1;
    }
    printf("ceiling_events=%" PRIu64 " ceiling_seconds=%.2f ceiling_events_per_s=%.0f\n", n, secs, (double)n / secs);
    return 0;
}

int main(int argc, char **argv)
{
    eflog_init("bench_relay", EF_WARN);
    if (argc == 4 && strcmp(argv[1], "gen") == 0)
        return gen(argv[2], strtoull(argv[3], NULL, 10));
    if (argc == 6 && strcmp(argv[1], "ceiling") == 0)
        return ceiling(argv[2], argv[3], strtoull(argv[4], NULL, 10), atoi(argv[5]));
    fprintf(stderr, "usage: bench_relay gen DIR N | ceiling URLS STREAM N BODY_BYTES\n");
    return 2;
}
