#include <config.h>

#include "mirror/mnats.h"

#include "bus/nats_options.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "util/eflog.h"
#include "util/xalloc.h"

#define MNATS_API_WAIT_MS 3000
/* The server sends heartbeats at this interval when there is nothing to deliver; libnats
 * recreates the consumer after two missed ones. */
#define MNATS_HEARTBEAT_MS 1000

struct mnats {
    char stream[EF_TEXT_MAX];
    char subject[EF_TEXT_MAX + 4];
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    natsMsg *msg;        /* the message handed out by mnats_next */
    /* The kinds of asynchronous errors logged since the last message (a bit per status
     * below 64; libnats alternates a few kinds while it retries, each logged once). */
    _Atomic uint64_t async_seen;
};

static int nats_fail(natsStatus s, const char *what, char *err, size_t errlen)
{
    const char *detail = nats_GetLastError(NULL);
    snprintf(err, errlen, "%s: %s", what, detail && *detail ? detail : natsStatus_GetText(s));
    return MNATS_ERETRY;
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc, (void)closure;
    EFLOG_WARN("event=nats_disconnected note=\"reconnecting in the background\"");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)closure;
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    EFLOG_INFO("event=nats_connected url=%s", url);
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc, (void)closure;
    EFLOG_INFO("event=nats_closed");
}

/* Missed heartbeats, slow consumer, a failed consumer re-creation: libnats retries by itself,
 * so each kind is logged once until a message arrives again. */
static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus s, void *closure)
{
    (void)nc, (void)sub;
    struct mnats *mn = closure;
    uint64_t bit = (unsigned)s < 64 ? 1ull << (unsigned)s : 1ull << 63;
    if (!(atomic_fetch_or(&mn->async_seen, bit) & bit))
        EFLOG_WARN("event=nats_async_error status=\"%s\" note=\"the client retries by itself\"",
                 natsStatus_GetText(s));
}

int mnats_open(const struct ef_config *cfg, struct mnats **out, char *err, size_t errlen)
{
    *out = NULL;
    struct mnats *mn = xcalloc(1, sizeof *mn);
    snprintf(mn->stream, sizeof mn->stream, "%s", cfg->nats_stream);
    snprintf(mn->subject, sizeof mn->subject, "%s.>", cfg->nats_subject_prefix);
    const struct ef_nats_callbacks cb = { .connected = on_reconnected, .disconnected = on_disconnected,
                                          .closed = on_closed, .async_error = on_async_error,
                                          .closure = mn };
    if (ef_nats_options("eventfold-mirror", cfg->nats_url, &cb, &mn->opts, err, errlen)) {
        mnats_close(mn);
        return MNATS_EFATAL;
    }
    /* No server answering yet is not an error: the connection is retried in the background
     * (ef_nats_options) and on_reconnected says when it is up. */
    natsStatus s = natsConnection_Connect(&mn->nc, mn->opts);
    if (s == NATS_NOT_YET_CONNECTED) {
        EFLOG_WARN("event=nats_not_connected url=\"%s\" note=\"retrying in the background\"",
                 cfg->nats_url);
        s = NATS_OK;
    } else if (s == NATS_OK) {
        on_reconnected(mn->nc, mn);
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = MNATS_API_WAIT_MS;
    if (s == NATS_OK)
        s = natsConnection_JetStream(&mn->js, mn->nc, &jo);
    if (s != NATS_OK) {
        nats_fail(s, "cannot set up the NATS connection", err, errlen);
        mnats_close(mn);
        return MNATS_EFATAL;
    }
    *out = mn;
    return 0;
}

static void drop_sub(struct mnats *mn)
{
    mnats_release(mn);
    if (mn->sub) {
        /* Unsubscribe deletes the ephemeral consumer now rather than at its inactivity
         * timeout; it may fail when the connection is down, which changes nothing. */
        natsSubscription_Unsubscribe(mn->sub);
        natsSubscription_Destroy(mn->sub);
        mn->sub = NULL;
    }
}

void mnats_close(struct mnats *mn)
{
    if (!mn)
        return;
    drop_sub(mn);
    jsCtx_Destroy(mn->js);
    if (mn->nc) {
        natsConnection_Close(mn->nc);
        natsConnection_Destroy(mn->nc);
    }
    natsOptions_Destroy(mn->opts);
    /* libnats delivers its callbacks (on_async_error's closure is mn) from threads of its
     * own, and a connection's last ones may still be queued after Destroy: wait for those
     * threads to end before mn goes. The mirror closes its connection only on its way out,
     * so shutting the library down here costs nothing. Should they not end in time, mn is
     * left allocated rather than freed under a callback. */
    if (nats_CloseAndWait(2000) != NATS_OK) {
        EFLOG_WARN("event=nats_shutdown_slow note=\"libnats threads still running at exit\"");
        return;
    }
    free(mn);
}

int mnats_subscribe(struct mnats *mn, uint64_t from, char *err, size_t errlen)
{
    drop_sub(mn);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = mn->stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = from;
    so.Config.Heartbeat = (int64_t)MNATS_HEARTBEAT_MS * 1000000;
    jsErrCode jerr = 0;
    natsStatus s = js_SubscribeSync(&mn->sub, mn->js, mn->subject, NULL, &so, &jerr);
    if (s != NATS_OK) {
        mn->sub = NULL;
        return nats_fail(s, jerr == JSStreamNotFoundErr ? "no such stream yet" : "cannot subscribe",
                         err, errlen);
    }
    /* Room for a catch-up's worth of messages; flow control keeps the server within it. */
    natsSubscription_SetPendingLimits(mn->sub, 1 << 20, 256 << 20);
    return 0;
}

void mnats_release(struct mnats *mn)
{
    natsMsg_Destroy(mn->msg);
    mn->msg = NULL;
}

/* Fills m from msg (headers, body, stream sequence); the metadata's pending count gives the
 * stream's last sequence as the server saw it when it sent the message. */
static int fill_msg(struct mnats *mn, natsMsg *msg, struct mirror_msg *m, uint64_t *stream_last,
                    char *err, size_t errlen)
{
    jsMsgMetaData *meta = NULL;
    natsStatus s = natsMsg_GetMetaData(&meta, msg);
    if (s != NATS_OK)
        return nats_fail(s, "a message without JetStream metadata", err, errlen);
    memset(m, 0, sizeof *m);
    m->seq = meta->Sequence.Stream;
    *stream_last = meta->Sequence.Stream + meta->NumPending;
    jsMsgMetaData_Destroy(meta);
    for (int i = 0; i < MH_COUNT; i++)
        if (natsMsgHeader_Get(msg, mcheck_header_names[i], &m->hdr[i]) != NATS_OK)
            m->hdr[i] = NULL;
    m->body = natsMsg_GetData(msg);
    m->body_len = (size_t)natsMsg_GetDataLength(msg);
    if (!m->body)
        m->body = "";
    if (atomic_load_explicit(&mn->async_seen, memory_order_relaxed))
        atomic_store(&mn->async_seen, 0);
    return 1;
}

int mnats_next(struct mnats *mn, int timeout_ms, struct mirror_msg *m, uint64_t *stream_last,
               char *err, size_t errlen)
{
    mnats_release(mn);
    if (!mn->sub)
        return MNATS_ERETRY;
    natsMsg *msg = NULL;
    natsStatus s = natsSubscription_NextMsg(&msg, mn->sub, timeout_ms);
    if (s == NATS_TIMEOUT)
        return 0;
    if (s == NATS_SLOW_CONSUMER) {
        /* Messages were dropped in the client: the ordered consumer sees the delivery gap
         * and restarts after the last one it delivered; the mirror's own sequence check
         * catches anything else. */
        return 0;
    }
    if (s != NATS_OK)
        return nats_fail(s, "the consumer failed", err, errlen);
    mn->msg = msg;
    return fill_msg(mn, msg, m, stream_last, err, errlen);
}

int mnats_lookup(struct mnats *mn, uint64_t seq, char *crc, size_t cap, char *err, size_t errlen)
{
    natsMsg *msg = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetMsg(&msg, mn->js, mn->stream, seq, NULL, &jerr);
    if (s != NATS_OK) {
        if (jerr == JSNoMessageFoundErr)
            return 0;
        return nats_fail(s, "cannot look a message up", err, errlen);
    }
    const char *v = NULL;
    if (natsMsgHeader_Get(msg, mcheck_header_names[MH_CRC], &v) != NATS_OK || !v)
        v = "";
    snprintf(crc, cap, "%s", v);
    natsMsg_Destroy(msg);
    return 1;
}
