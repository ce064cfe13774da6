#include <config.h>

#include "server/server_int.h"

#include "util/clock.h"
#include "util/eflog.h"
#include "util/xalloc.h"

#include <assert.h>
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The purgatory of a worker (Kafka's request purgatory, nginx's event loop): one loop
 * thread owns every held request (parked, or with an answer left to send) and one
 * watcher thread turns position changes into wake-ups of the loop (a futex cannot be
 * given to epoll). Request threads hand requests over through a submission queue and an
 * eventfd; everything else (the heaps, the epoll registrations, running parked handlers
 * again) happens in the loop thread alone, so none of it needs a lock.
 *
 * The loop renders woken requests itself (handlers are bounded: an /api/events page is at
 * most about 1 MiB) instead of queueing them to request threads: new requests never wait
 * behind woken ones, and a held request never leaves the loop's ownership. */

#define MAX_EVENTS 64
#define DEFAULT_MAX_UNSENT ((size_t)128 << 20)
#define WATCH_SLICE_MS 200 /* the watcher notices a stop within this */

enum { HEAP_DUE, HEAP_WANT };

struct heap {
    struct srv_held **v;
    size_t n, cap;
};

struct srv_hold {
    struct srv_worker *w;
    int epfd;
    int efd;                   /* submissions, position changes, no_more */
    uint64_t send_timeout_ns;
    uint32_t max_waiting;
    pthread_mutex_t mu;
    struct srv_held *sub_head, *sub_tail; /* under mu */
    int no_more;                          /* under mu: no submissions will come */
    pthread_t loop_tid, watch_tid;
    _Atomic int quit_watch;
    _Atomic uint32_t nparked;  /* parked requests the loop holds (read by the watcher) */
    _Atomic uint32_t local_count; /* counted parks of this worker without a progress region */
    /* Loop thread only. */
    struct heap due, want;
    size_t nheld;
    struct srv_held *send_head, *send_tail; /* answers being sent, oldest first */
    size_t unsent_bytes, max_unsent;        /* what they hold (out_bytes) */
    int stop_seen;
    struct srv_thread t;       /* the context handlers run in for parked requests */
};

static char efd_tag, wake_tag; /* epoll data for the two eventfds */

/* ---- heaps (min-heaps of due_ns and of want, each slot index kept in the element) ---- */

static uint64_t key(const struct srv_held *h, int which) { return which == HEAP_DUE ? h->due_ns : h->want; }
static size_t *idx(struct srv_held *h, int which) { return which == HEAP_DUE ? &h->due_idx : &h->want_idx; }

static void heap_set(struct heap *hp, int which, size_t i, struct srv_held *h)
{
    hp->v[i] = h;
    *idx(h, which) = i;
}

static void heap_up(struct heap *hp, int which, size_t i)
{
    struct srv_held *h = hp->v[i];
    while (i > 0 && key(hp->v[(i - 1) / 2], which) > key(h, which)) {
        heap_set(hp, which, i, hp->v[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(hp, which, i, h);
}

static void heap_down(struct heap *hp, int which, size_t i)
{
    struct srv_held *h = hp->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= hp->n)
            break;
        if (c + 1 < hp->n && key(hp->v[c + 1], which) < key(hp->v[c], which))
            c++;
        if (key(hp->v[c], which) >= key(h, which))
            break;
        heap_set(hp, which, i, hp->v[c]);
        i = c;
    }
    heap_set(hp, which, i, h);
}

static void heap_push(struct heap *hp, int which, struct srv_held *h)
{
    assert(*idx(h, which) == SIZE_MAX);
    if (hp->n == hp->cap) {
        hp->cap = hp->cap ? 2 * hp->cap : 64;
        hp->v = xrealloc(hp->v, hp->cap * sizeof *hp->v);
    }
    hp->v[hp->n++] = h;
    heap_up(hp, which, hp->n - 1);
}

static void heap_remove(struct heap *hp, int which, struct srv_held *h)
{
    size_t i = *idx(h, which);
    if (i == SIZE_MAX)
        return;
    assert(i < hp->n && hp->v[i] == h);
    *idx(h, which) = SIZE_MAX;
    struct srv_held *last = hp->v[--hp->n];
    if (i == hp->n)
        return;
    heap_set(hp, which, i, last);
    heap_up(hp, which, i);
    heap_down(hp, which, *idx(last, which));
}

static struct srv_held *heap_top(const struct heap *hp) { return hp->n ? hp->v[0] : NULL; }

/* ---- held requests ---- */

static size_t put_str(char *dst, size_t at, const char *s)
{
    size_t n = strlen(s) + 1;
    if (dst)
        memcpy(dst + at, s, n);
    return at + n;
}

/* Lays the strings of t's request out in dst (NULL: only measures). Returns the size. */
static size_t layout(struct srv_thread *t, char *dst, struct srv_held *h)
{
    const char *const *names = t->w->opt->park_headers;
    size_t at = 0;
    if (h)
        h->method = dst + at;
    at = put_str(dst, at, t->req.method);
    if (h)
        h->path = dst + at;
    at = put_str(dst, at, t->req.path);
    if (h)
        h->query = dst + at;
    at = put_str(dst, at, t->req.query);
    if (h)
        h->hdrs = dst + at;
    for (size_t i = 0; names && names[i]; i++) {
        char key[160];
        const char *v = srv_cgi_name(names[i], key, sizeof key) == 0 ? FCGX_GetParam(key, t->fcgx.envp) : NULL;
        if (!v)
            continue;
        at = put_str(dst, at, key);
        at = put_str(dst, at, v);
    }
    return put_str(dst, at, "");
}

static struct srv_held *held_new(size_t strs)
{
    struct srv_held *h = xcalloc(1, sizeof *h + strs);
    h->fd = -1;
    h->due_idx = h->want_idx = SIZE_MAX;
    return h;
}

struct srv_held *srv_held_park(struct srv_thread *t, uint64_t want, uint64_t wake_ns)
{
    struct srv_held *h = held_new(layout(t, NULL, NULL));
    layout(t, h->strs, h);
    h->state = HELD_PARKED;
    h->want = want;
    h->due_ns = wake_ns;
    h->started_ns = t->req.started_ns;
    h->wait_deadline_ns = t->req.wait_deadline_ns;
    h->route = t->route;
    h->runs = t->req.runs;
    return h;
}

const char *srv_held_header(const struct srv_held *h, const char *cgi_name)
{
    for (const char *p = h->hdrs; p && *p;) {
        const char *v = p + strlen(p) + 1;
        if (strcmp(p, cgi_name) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

/* ---- counting parked requests against max_waiting ---- */

static _Atomic uint32_t *own_counter(struct srv_hold *H)
{
    struct srv_progress *pg = H->w->progress;
    return pg ? &pg->parked[H->w->slot] : &H->local_count;
}

static uint64_t total_parked(struct srv_hold *H)
{
    struct srv_progress *pg = H->w->progress;
    if (!pg)
        return atomic_load(&H->local_count);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < pg->nslots; i++)
        sum += atomic_load_explicit(&pg->parked[i], memory_order_relaxed);
    return sum;
}

int srv_hold_count(struct srv_worker *w)
{
    struct srv_hold *H = w->hold;
    if (total_parked(H) >= H->max_waiting)
        return SERVER_PARK_FULL;
    atomic_fetch_add_explicit(own_counter(H), 1, memory_order_relaxed);
    return 0;
}

void srv_hold_uncount(struct srv_worker *w)
{
    atomic_fetch_sub_explicit(own_counter(w->hold), 1, memory_order_relaxed);
}

int server_park(struct server_request *req, uint64_t want, uint64_t wake_ns)
{
    struct srv_thread *t = req->impl;
    struct srv_worker *w = t->w;
    if (t->responded || t->parked) {
        EFLOG_ERROR("server_park after an answer ignored path=%s", EFLOG_S(req->path));
        return SERVER_PARK_UNAVAILABLE;
    }
    if (!w->hold || !w->opt->position || !w->opt->wait_position)
        return SERVER_PARK_UNAVAILABLE;
    if (server_stopping())
        return SERVER_PARK_STOPPING;
    if (!t->held) {
        /* Only a request whose stdin was read to its end can leave libfcgi: nothing more
         * will come on its connection (request.c reads GET bodies to the end). */
        const FCGX_Stream *in = t->fcgx.in;
        if (!in || !in->isClosed || in->FCGI_errno)
            return SERVER_PARK_UNAVAILABLE;
    }
    int counted = t->held && t->held->counted;
    if (!counted && srv_hold_count(w) < 0)
        return SERVER_PARK_FULL;
    struct srv_held *h = t->held;
    if (h) {
        /* Run again in the loop: the same held request waits on. */
        h->want = want;
        h->due_ns = wake_ns;
        h->wait_deadline_ns = req->wait_deadline_ns;
        h->route = t->route;
    } else {
        h = srv_held_park(t, want, wake_ns);
    }
    h->counted = 1;
    t->parked = h;
    return SERVER_PARKED;
}

/* ---- the loop ---- */

static void wake_loop(struct srv_hold *H)
{
    uint64_t one = 1;
    if (write(H->efd, &one, sizeof one) != sizeof one && errno != EAGAIN)
        EFLOG_ERROR("cannot wake the wait loop err=%s", strerror(errno));
}

void srv_hold_submit(struct srv_worker *w, struct srv_held *h)
{
    struct srv_hold *H = w->hold;
    pthread_mutex_lock(&H->mu);
    assert(!H->no_more);
    h->next = NULL;
    if (H->sub_tail)
        H->sub_tail->next = h;
    else
        H->sub_head = h;
    H->sub_tail = h;
    pthread_mutex_unlock(&H->mu);
    wake_loop(H);
}

/* Memory an answer being sent keeps (its buffers). */
static size_t out_bytes(const struct srv_out *o) { return o->head.cap + o->body.cap; }

static void sending_unlink(struct srv_hold *H, struct srv_held *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        H->send_head = h->next;
    if (h->next)
        h->next->prev = h->prev;
    else
        H->send_tail = h->prev;
    h->next = h->prev = NULL;
    H->unsent_bytes -= out_bytes(h->out);
}

/* Ends a held request: leaves the heaps and epoll, closes its connection, frees it. */
static void held_end(struct srv_hold *H, struct srv_held *h)
{
    if (h->state == HELD_SENDING && h->out)
        sending_unlink(H, h);
    heap_remove(&H->due, HEAP_DUE, h);
    heap_remove(&H->want, HEAP_WANT, h);
    if (h->state == HELD_PARKED)
        atomic_fetch_sub(&H->nparked, 1);
    if (h->counted)
        srv_hold_uncount(H->w);
    if (epoll_ctl(H->epfd, EPOLL_CTL_DEL, h->fd, NULL) < 0)
        EFLOG_ERROR("epoll_ctl DEL failed fd=%d err=%s", h->fd, strerror(errno));
    close(h->fd);
    srv_out_free(h->out);
    free(h->out);
    free(h);
    H->nheld--;
}

static int watch(struct srv_hold *H, struct srv_held *h, int op, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = h };
    if (epoll_ctl(H->epfd, op, h->fd, &ev) == 0)
        return 0;
    EFLOG_ERROR("epoll_ctl failed fd=%d err=%s", h->fd, strerror(errno));
    return -1;
}

/* The first parked request: the watcher sleeps on nparked while there is none. */
static void wake_watcher(struct srv_hold *H)
{
    if (syscall(SYS_futex, &H->nparked, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) < 0)
        EFLOG_ERROR("cannot wake the position watcher err=%s", strerror(errno));
}

/* Parks h in the loop (new, or run again and parked anew). */
static void hold_parked(struct srv_hold *H, struct srv_held *h, int op)
{
    h->state = HELD_PARKED;
    if (atomic_fetch_add(&H->nparked, 1) == 0)
        wake_watcher(H);
    /* Ordered before the loop reads the position again (wake_wanted), against the
     * watcher's read of nparked after a publish: one of the two sees the other. */
    atomic_thread_fence(memory_order_seq_cst);
    heap_push(&H->due, HEAP_DUE, h);
    heap_push(&H->want, HEAP_WANT, h);
    if (watch(H, h, op, EPOLLIN | EPOLLRDHUP) < 0)
        held_end(H, h);
}

/* Abandons the answers waiting longest for their clients while the unsent ones hold more
 * than max_unsent bytes (but never the newest one). */
static void shed_unsent(struct srv_hold *H)
{
    while (H->unsent_bytes > H->max_unsent && H->send_head != H->send_tail) {
        struct srv_held *h = H->send_head;
        EFLOG_WARN("unsent answers over max_unsent_bytes, closing the oldest connection fd=%d "
                 "bytes_left=%zu held_bytes=%zu", h->fd, h->out->left, H->unsent_bytes);
        held_end(H, h);
    }
}

static void hold_sending(struct srv_hold *H, struct srv_held *h, int op)
{
    h->state = HELD_SENDING;
    h->due_ns = ef_mono_ns() + H->send_timeout_ns;
    heap_push(&H->due, HEAP_DUE, h);
    h->next = NULL;
    h->prev = H->send_tail;
    if (H->send_tail)
        H->send_tail->next = h;
    else
        H->send_head = h;
    H->send_tail = h;
    H->unsent_bytes += out_bytes(h->out);
    if (watch(H, h, op, EPOLLOUT) < 0) {
        held_end(H, h);
        return;
    }
    shed_unsent(H);
}

static void take_submissions(struct srv_hold *H, int *no_more)
{
    uint64_t v;
    if (read(H->efd, &v, sizeof v) < 0 && errno != EAGAIN)
        EFLOG_ERROR("cannot read the wait loop's eventfd err=%s", strerror(errno));
    pthread_mutex_lock(&H->mu);
    struct srv_held *h = H->sub_head;
    H->sub_head = H->sub_tail = NULL;
    *no_more = H->no_more;
    pthread_mutex_unlock(&H->mu);
    while (h) {
        struct srv_held *next = h->next;
        H->nheld++;
        if (h->state == HELD_PARKED)
            hold_parked(H, h, EPOLL_CTL_ADD);
        else
            hold_sending(H, h, EPOLL_CTL_ADD);
        h = next;
    }
}

/* Sends what the socket takes of h's answer; ends h when done or the peer is gone. */
static void send_more(struct srv_hold *H, struct srv_held *h)
{
    int rc = srv_out_send(h->out, h->fd);
    if (rc < 0)
        EFLOG_DEBUG("answer not delivered, client gone err=%s", strerror(errno));
    if (rc != 0)
        held_end(H, h);
}

/* Runs the handler again for parked h (woken, due or stopping). */
static void resume(struct srv_hold *H, struct srv_held *h)
{
    struct srv_thread *t = &H->t;
    heap_remove(&H->due, HEAP_DUE, h);
    heap_remove(&H->want, HEAP_WANT, h);
    atomic_fetch_sub(&H->nparked, 1);
    h->runs++;
    t->held = h;
    srv_request_resume(t);
    srv_run_handler(t);
    t->held = NULL;
    if (t->parked) {
        assert(t->parked == h);
        srv_request_end(t);
        hold_parked(H, h, EPOLL_CTL_MOD);
        return;
    }
    srv_request_end(t);
    if (h->counted) {
        srv_hold_uncount(H->w);
        h->counted = 0;
    }
    srv_out_frame(&t->ans, h->request_id);
    int rc = srv_out_send(&t->ans, h->fd);
    if (rc != 0) {
        if (rc < 0)
            EFLOG_DEBUG("answer not delivered, client gone err=%s", strerror(errno));
        srv_out_reset(&t->ans);
        h->state = HELD_SENDING; /* so held_end does not count it as parked */
        held_end(H, h);
        return;
    }
    h->out = xmalloc(sizeof *h->out);
    *h->out = t->ans;
    memset(&t->ans, 0, sizeof t->ans);
    hold_sending(H, h, EPOLL_CTL_MOD);
}

static void on_event(struct srv_hold *H, struct srv_held *h, uint32_t ev)
{
    if (h->state == HELD_SENDING) {
        if (ev & (EPOLLERR | EPOLLHUP)) {
            EFLOG_DEBUG("answer not delivered, client gone");
            held_end(H, h);
        } else {
            send_more(H, h);
        }
        return;
    }
    /* Parked: the front end sends nothing more on this connection, so readable means it
     * closed it (the client went away), or sent something a parked request cannot take. */
    EFLOG_DEBUG("parked request dropped, connection closed by the front end path=%s", EFLOG_S(h->path));
    held_end(H, h);
}

static void wake_wanted(struct srv_hold *H)
{
    if (!H->want.n)
        return;
    uint64_t pos = H->w->opt->position(H->w->ctx);
    struct srv_held *h;
    while ((h = heap_top(&H->want)) && h->want <= pos)
        resume(H, h);
}

static void wake_due(struct srv_hold *H)
{
    uint64_t now = ef_mono_ns();
    struct srv_held *h;
    while ((h = heap_top(&H->due)) && h->due_ns <= now) {
        if (h->state == HELD_PARKED) {
            resume(H, h);
            continue;
        }
        EFLOG_WARN("answer not sent within send_timeout_seconds, closing the connection "
                 "fd=%d bytes_left=%zu", h->fd, h->out->left);
        held_end(H, h);
    }
}

/* Once the worker stops: every parked request runs again and answers (server_park
 * refuses to park while stopping). Parked requests are exactly those in the want heap. */
static void wake_all(struct srv_hold *H)
{
    struct srv_held *h;
    while ((h = heap_top(&H->want)))
        resume(H, h);
}

static int next_timeout_ms(const struct srv_hold *H)
{
    struct srv_held *h = heap_top(&H->due);
    if (!h)
        return -1;
    uint64_t now = ef_mono_ns();
    if (h->due_ns <= now)
        return 0;
    uint64_t ms = (h->due_ns - now + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}

static void *loop_main(void *arg)
{
    struct srv_hold *H = arg;
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int no_more;
        take_submissions(H, &no_more);
        if (!H->stop_seen && server_stopping()) {
            H->stop_seen = 1;
            epoll_ctl(H->epfd, EPOLL_CTL_DEL, H->w->wake_fd, NULL); /* stays readable */
        }
        if (H->stop_seen)
            wake_all(H);
        wake_wanted(H);
        wake_due(H);
        if (no_more && H->nheld == 0)
            break;
        int n = epoll_wait(H->epfd, evs, MAX_EVENTS, next_timeout_ms(H));
        if (n < 0 && errno != EINTR) {
            EFLOG_ERROR("epoll_wait failed err=%s", strerror(errno));
            nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p != &efd_tag && p != &wake_tag)
                on_event(H, p, evs[i].events);
        }
    }
    return NULL;
}

/* Turns changes of the published position into wake-ups of the loop, while it holds
 * parked requests. While it holds none, the watcher sleeps on nparked instead of on the
 * position: every fold batch publishes, and waking each worker's watcher for nothing was
 * a tenth of a context switch per command under a command load. `last` stays the last
 * position it handled, so the first wait after an idle spell returns at once when the
 * position moved meanwhile (one spurious look of the loop at worst, never a missed one).
 * Either way it wakes at least every WATCH_SLICE_MS, to notice a stop and to run the
 * program's housekeeping. */
static void *watch_main(void *arg)
{
    struct srv_hold *H = arg;
    const struct server_options *opt = H->w->opt;
    uint64_t last = opt->position(H->w->ctx);
    while (!atomic_load(&H->quit_watch)) {
        if (atomic_load(&H->nparked) == 0) {
            struct timespec ts = { 0, WATCH_SLICE_MS * 1000000L };
            if (syscall(SYS_futex, &H->nparked, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0) < 0 &&
                errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT)
                EFLOG_ERROR("the position watcher cannot wait err=%s", strerror(errno));
        } else {
            opt->wait_position(H->w->ctx, last, WATCH_SLICE_MS);
            uint64_t pos = opt->position(H->w->ctx);
            atomic_thread_fence(memory_order_seq_cst);
            if (pos != last && atomic_load(&H->nparked) > 0)
                wake_loop(H);
            last = pos;
        }
        if (opt->housekeeping)
            opt->housekeeping(H->w->ctx);
    }
    return NULL;
}

/* A parked request holds its connection: allow as many as the hard limit permits. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            EFLOG_WARN("cannot raise the open-file limit err=%s", strerror(errno));
    }
}

static int add_tag(int epfd, int fd, void *tag)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int srv_hold_start(struct srv_worker *w)
{
    const struct ef_config *cfg = w->opt->cfg;
    struct srv_hold *H = xcalloc(1, sizeof *H);
    H->w = w;
    H->t.w = w;
    H->t.in_loop = 1;
    FCGX_InitRequest(&H->t.fcgx, -1, 0);
    H->max_waiting = cfg->max_waiting > 0 ? (uint32_t)cfg->max_waiting : 0;
    H->send_timeout_ns = (uint64_t)(cfg->send_timeout_seconds > 0 ? cfg->send_timeout_seconds : 30) * 1000000000u;
    H->max_unsent = w->opt->max_unsent_bytes ? w->opt->max_unsent_bytes : DEFAULT_MAX_UNSENT;
    pthread_mutex_init(&H->mu, NULL);
    raise_nofile();
    H->epfd = epoll_create1(EPOLL_CLOEXEC);
    H->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (H->epfd < 0 || H->efd < 0 || add_tag(H->epfd, H->efd, &efd_tag) < 0 ||
        add_tag(H->epfd, w->wake_fd, &wake_tag) < 0) {
        EFLOG_ERROR("cannot set up the wait loop err=%s", strerror(errno));
        goto fail;
    }
    w->hold = H;
    int err = pthread_create(&H->loop_tid, NULL, loop_main, H);
    if (err) {
        EFLOG_ERROR("cannot start the wait loop err=%s", strerror(err));
        w->hold = NULL;
        goto fail;
    }
    if (w->opt->position && w->opt->wait_position &&
        (err = pthread_create(&H->watch_tid, NULL, watch_main, H)) != 0) {
        EFLOG_ERROR("cannot start the position watcher err=%s", strerror(err));
        srv_hold_finish(w, ef_mono_ns());
        return -1;
    }
    return 0;
fail:
    if (H->epfd >= 0)
        close(H->epfd);
    if (H->efd >= 0)
        close(H->efd);
    pthread_mutex_destroy(&H->mu);
    free(H);
    return -1;
}

int srv_hold_finish(struct srv_worker *w, uint64_t deadline_ns)
{
    struct srv_hold *H = w->hold;
    if (!H)
        return 0;
    pthread_mutex_lock(&H->mu);
    H->no_more = 1;
    pthread_mutex_unlock(&H->mu);
    wake_loop(H);
    struct timespec abs;
    clock_gettime(CLOCK_REALTIME, &abs);
    uint64_t now = ef_mono_ns(), left = deadline_ns > now ? deadline_ns - now : 0;
    abs.tv_sec += (time_t)(left / 1000000000u);
    abs.tv_nsec += (long)(left % 1000000000u);
    if (abs.tv_nsec >= 1000000000L) {
        abs.tv_sec++;
        abs.tv_nsec -= 1000000000L;
    }
    if (pthread_timedjoin_np(H->loop_tid, NULL, &abs) != 0)
        return -1; /* the caller exits: nothing is freed under the running loop */
    atomic_store(&H->quit_watch, 1);
    if (w->opt->position && w->opt->wait_position)
        pthread_join(H->watch_tid, NULL);
    close(H->epfd);
    close(H->efd);
    free(H->due.v);
    free(H->want.v);
    srv_out_free(&H->t.ans);
    sbuf_free(&H->t.body);
    srv_arena_free(&H->t.arena);
    pthread_mutex_destroy(&H->mu);
    free(H);
    w->hold = NULL;
    return 0;
}
