/* bench_consume: the ceiling for eventfold-mirror's catch-up: a plain ordered JetStream
 * consumer (the same consumer options as the mirror: src/mirror/mnats.c) that reads a
 * stream from sequence 1 to its last sequence and does nothing with the messages: no
 * checks, no log, no fdatasync.
 *
 *   bench_consume URLS STREAM SUBJECT_FILTER
 * prints consume_events=N consume_seconds=S consume_events_per_second=R (exit 0), or one
 * line on stderr and exit 1. */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, natsStatus s)
{
    fprintf(stderr, "bench_consume: %s: %s\n", what, natsStatus_GetText(s));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_consume URLS STREAM SUBJECT_FILTER\n");
        return 2;
    }
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsStreamInfo *si = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, argv[1]);
    if (s != NATS_OK)
        return fail("connect", s);
    if ((s = natsConnection_JetStream(&js, nc, NULL)) != NATS_OK)
        return fail("jetstream", s);
    if ((s = js_GetStreamInfo(&si, js, argv[2], NULL, NULL)) != NATS_OK)
        return fail("stream info", s);
    uint64_t last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    double t0 = now_s();
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = argv[2];
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = 1;
    so.Config.Heartbeat = 1000000000;
    if ((s = js_SubscribeSync(&sub, js, argv[3], NULL, &so, NULL)) != NATS_OK)
        return fail("subscribe", s);
    natsSubscription_SetPendingLimits(sub, 1 << 20, 256 << 20);
    uint64_t n = 0, seq = 0;
    while (seq < last) {
        natsMsg *m = NULL;
        if ((s = natsSubscription_NextMsg(&m, sub, 10000)) != NATS_OK)
            return fail("next message", s);
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
            seq = meta->Sequence.Stream;
            jsMsgMetaData_Destroy(meta);
        }
        natsMsg_Destroy(m);
        n++;
    }
    double t = now_s() - t0;
    printf("consume_events=%" PRIu64 " consume_seconds=%.3f consume_events_per_second=%.0f\n", n, t,
           (double)n / t);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return 0;
}
