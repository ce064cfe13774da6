#include <config.h>

#include "server/metrics.h"
#include "server/server_int.h"

#include "util/clock.h"
#include "util/eflog.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Deferred answers (server_defer). Two threads finish a deferred request, in either
 * order: the request thread, which takes the connection away from libfcgi once the
 * handler has returned (srv_defer_detach), and the thread that answers it
 * (server_deferred_respond). Each sets its bit in `stage`; the second one sends. Until
 * then the answer waits in h->out, and the connection in libfcgi's hands. */
enum { DEFER_DETACHED = 1, DEFER_ANSWERED = 2 };

struct server_deferred {
    struct srv_worker *w;
    struct srv_held *h;  /* the connection (fd, request id), the strings for the log line,
                          * then the answer; handed to the loop if the socket does not
                          * take it at once */
    _Atomic int stage;
};

struct server_deferred *server_defer(struct server_request *req)
{
    struct srv_thread *t = req->impl;
    if (t->responded || t->parked || t->deferred || t->held || !t->w->hold)
        return NULL;
    /* As for server_park: only a request whose stdin was read to its end can leave libfcgi. */
    const FCGX_Stream *in = t->fcgx.in;
    if (!in || !in->isClosed || in->FCGI_errno)
        return NULL;
    struct server_deferred *d = xcalloc(1, sizeof *d);
    d->w = t->w;
    d->h = srv_held_park(t, 0, 0);
    d->h->state = HELD_SENDING;
    t->deferred = d;
    return d;
}

/* Sends d's answer (both threads are done with it) and frees d: what the socket does not
 * take at once goes to the loop, which closes the connection after it. */
static void send_deferred(struct server_deferred *d)
{
    struct srv_held *h = d->h;
    srv_out_frame(h->out, h->request_id);
    int rc = srv_out_send(h->out, h->fd);
    if (rc == 0) {
        srv_hold_submit(d->w, h);
    } else {
        if (rc < 0)
            EFLOG_DEBUG("answer not delivered, client gone path=%s err=%s", EFLOG_S(h->path),
                      strerror(errno));
        if (close(h->fd) < 0)
            EFLOG_DEBUG("close of an answered connection failed err=%s", strerror(errno));
        srv_out_free(h->out);
        free(h->out);
        free(h);
    }
    free(d);
}

void srv_defer_detach(struct srv_thread *t)
{
    struct server_deferred *d = t->deferred;
    t->deferred = NULL;
    d->h->request_id = (uint16_t)t->fcgx.requestId;
    d->h->fd = srv_take_connection(t);
    if (atomic_fetch_or(&d->stage, DEFER_DETACHED) & DEFER_ANSWERED)
        send_deferred(d);
}

void server_deferred_respond(struct server_deferred *d, int status, const char *content_type,
                             const char *headers, const char *body, size_t body_len)
{
    struct srv_held *h = d->h;
    h->out = xcalloc(1, sizeof *h->out);
    srv_render_head(h->out, status, content_type, headers, body_len);
    sbuf_append(&h->out->head, body, body_len);
    uint64_t ns = ef_mono_ns() - h->started_ns;
    metrics_observe(metrics_route_id(h->route), status, ns);
    if (d->w->opt->cfg->log_requests)
        EFLOG_INFO("request method=%s path=%s status=%d ms=%.3f", EFLOG_S(h->method),
                 EFLOG_S(h->path), status, (double)ns / 1e6);
    if (atomic_fetch_or(&d->stage, DEFER_ANSWERED) & DEFER_DETACHED)
        send_deferred(d);
}
