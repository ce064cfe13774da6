#include <config.h>

#include "server/server_int.h"

#include "util/clock.h"
#include "util/eflog.h"
#include "util/xalloc.h"

#include <assert.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

/* How a worker stops (see server.h): the main thread waits for SIGTERM/SIGINT with
 * sigwait (request threads block both), sets `stopping` and writes the wake-up eventfd.
 * The eventfd is never read, so it stays readable and every request thread that waits
 * for work sees it, now or later. Request threads never block in accept(): they poll the
 * (non-blocking) listen socket together with the eventfd and only then call
 * FCGX_Accept_r, so a stop is noticed at once when idle and right after the current
 * request when busy.
 *
 * Accepting: one idle thread per worker at a time (the one holding accept_mu) polls the
 * listen socket; it lets go of the mutex as soon as poll returns, before accepting, so
 * the next idle thread is already waiting while the first one accepts (libfcgi may then
 * spend up to 2 s on a unix client that sent nothing). Invariant: whenever a worker has
 * an idle thread, one of its threads is polling or about to, so a connection never waits
 * behind a busy thread while another one idles. Polling is level-triggered and not
 * exclusive: a connection wakes one poller per worker; the losers get EAGAIN. */

static _Atomic int stopping;
static struct srv_progress *progress; /* shared with the master; NULL: not reported */

int server_stopping(void) { return atomic_load_explicit(&stopping, memory_order_relaxed); }

/* Asks the worker to stop because of an internal failure: the main thread's sigwait
 * returns as for SIGTERM, and the worker exits 1 so the master logs and restarts it. */
static void worker_fail(struct srv_worker *w)
{
    atomic_store(&w->fatal, 1);
    kill(getpid(), SIGTERM);
}

/* Polls fd and the wake-up eventfd; 1 = fd is ready, 0 = stop, -1 = error. */
static int wait_fd(int fd, int wake_fd)
{
    for (;;) {
        if (server_stopping())
            return 0;
        struct pollfd p[2] = { { fd, POLLIN, 0 }, { wake_fd, POLLIN, 0 } };
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (p[1].revents)
            return 0;
        if (p[0].revents & POLLNVAL) {
            errno = EBADF;
            return -1;
        }
        return 1;
    }
}

/* An idle request thread waits in an epoll set of its own, which holds the listen socket
 * with EPOLLEXCLUSIVE and the wake-up eventfd: a new connection wakes one waiting thread
 * (of any worker), not every one, and no mutex goes from thread to thread. Where the set
 * cannot be made, the thread waits as the others' fallback does: one poller at a time,
 * under accept_mu. (Under a command load, handing accept_mu from thread to thread cost a
 * twentieth of a command worker's CPU time.) Returns the epoll fd, or -1. */
static int accept_set_open(struct srv_worker *w)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        EFLOG_WARN("cannot create an epoll set, polling for connections instead err=%s", strerror(errno));
        return -1;
    }
    struct epoll_event l = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.u32 = 0 };
    struct epoll_event k = { .events = EPOLLIN, .data.u32 = 1 };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, w->listen_fd, &l) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, w->wake_fd, &k) < 0) {
        EFLOG_WARN("cannot wait for connections with epoll, polling instead err=%s", strerror(errno));
        close(ep);
        return -1;
    }
    return ep;
}

/* 1 = the listen socket is readable (or in error: accept says which), 0 = stop, -1 = error. */
static int wait_accept(struct srv_thread *t)
{
    for (;;) {
        if (server_stopping())
            return 0;
        struct epoll_event ev[2];
        int n = epoll_wait(t->accept_ep, ev, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        for (int i = 0; i < n; i++)
            if (ev[i].data.u32 == 1)
                return 0;
        if (n > 0)
            return 1;
    }
}

/* Waits until there is something to accept or read; 1 = go, 0 = stop, -1 = error. A
 * connection kept open by the front end (FCGI_KEEP_CONN) is waited on directly. */
static int wait_for_work(struct srv_thread *t)
{
    if (t->fcgx.ipcFd >= 0)
        return wait_fd(t->fcgx.ipcFd, t->w->wake_fd);
    if (t->accept_ep >= 0)
        return wait_accept(t);
    pthread_mutex_lock(&t->w->accept_mu);
    int rc = wait_fd(t->w->listen_fd, t->w->wake_fd);
    pthread_mutex_unlock(&t->w->accept_mu);
    return rc;
}

/* libfcgi ends a connection with a lingering close: shutdown(SHUT_WR), then poll and read
 * until nginx has closed its end (up to 2 s), so that a peer still sending never has its
 * data refused. Once the request's stdin was read to its end (the empty FCGI_STDIN record),
 * nginx sends nothing more on the connection, and with server_options.close_at_once the
 * request is detached, which makes FCGX_Free close at once. A request whose body was
 * not read to its end (a 413 beyond what request.c drains) keeps the lingering close. */
static int stdin_done(const struct srv_thread *t)
{
    const FCGX_Stream *in = t->fcgx.in;
    return in && in->isClosed && in->FCGI_errno == 0;
}

void srv_run_handler(struct srv_thread *t)
{
    struct srv_worker *w = t->w;
    w->opt->handler(&t->req, w->ctx);
    if (!t->responded && !t->parked && !t->deferred) {
        EFLOG_ERROR("handler returned without an answer method=%s path=%s", EFLOG_S(t->req.method),
                  EFLOG_S(t->req.path));
        srv_respond_own_problem(t, 500, "internal_error", "the request was not answered");
    }
    if (w->opt->cfg->log_requests && !t->parked && !t->deferred)
        EFLOG_INFO("request method=%s path=%s status=%d ms=%.3f", EFLOG_S(t->req.method),
                 EFLOG_S(t->req.path), t->status, (double)(ef_mono_ns() - t->req.started_ns) / 1e6);
}

int srv_take_connection(struct srv_thread *t)
{
    int fd = t->fcgx.ipcFd;
    FCGX_Free(&t->fcgx, 0);
    FCGX_InitRequest(&t->fcgx, t->w->listen_fd, 0);
    return fd;
}

/* Ends the request on libfcgi's connection after its answer went out (or could not):
 * keeps a kept connection for the next request, else closes it (at once when detached). */
static void end_connection(struct srv_thread *t, int sent)
{
    int keep = sent && t->fcgx.keepConnection && stdin_done(t) && !server_stopping();
    if (!keep && (!sent || (t->w->opt->close_at_once && stdin_done(t))))
        FCGX_Detach(&t->fcgx);
    FCGX_Free(&t->fcgx, !keep);
}

/* Sends the answer the handler rendered: now, as far as the socket takes it; the rest
 * through the loop, which then owns the connection. Never blocks. */
static void send_answer(struct srv_thread *t)
{
    srv_out_frame(&t->ans, (uint16_t)t->fcgx.requestId);
    int rc = srv_out_send(&t->ans, t->fcgx.ipcFd);
    if (rc != 0) {
        if (rc < 0)
            EFLOG_DEBUG("answer not delivered, client gone status=%d path=%s err=%s", t->status,
                      EFLOG_S(t->req.path), strerror(errno));
        srv_out_reset(&t->ans);
        end_connection(t, rc > 0);
        return;
    }
    struct srv_held *h = xcalloc(1, sizeof *h);
    h->due_idx = h->want_idx = SIZE_MAX;
    h->state = HELD_SENDING;
    h->out = xmalloc(sizeof *h->out);
    *h->out = t->ans;
    memset(&t->ans, 0, sizeof t->ans);
    h->fd = srv_take_connection(t);
    srv_hold_submit(t->w, h);
}

static void serve_one(struct srv_thread *t)
{
    struct srv_worker *w = t->w;
    if (srv_request_begin(t, w->max_body) == 0)
        srv_run_handler(t);
    if (t->deferred) {
        srv_defer_detach(t);
    } else if (t->parked) {
        struct srv_held *h = t->parked;
        h->request_id = (uint16_t)t->fcgx.requestId;
        h->fd = srv_take_connection(t);
        t->parked = NULL;
        srv_hold_submit(w, h);
    } else if (t->responded && t->status) {
        send_answer(t);
    } else {
        end_connection(t, 0); /* the client went away while sending its body */
    }
    srv_request_end(t);
    if (server_stopping() && t->fcgx.ipcFd >= 0)
        FCGX_Free(&t->fcgx, 1); /* close a kept connection: no more requests on it */
}

/* What to do after FCGX_Accept_r failed with rc (-errno of accept(), or -9999). */
enum accept_fate { ACCEPT_RETRY, ACCEPT_PAUSE, ACCEPT_FATAL };

static enum accept_fate accept_fate(int rc)
{
    switch (-rc) {
    case EAGAIN:       /* another thread or worker took the connection */
    case EINTR:
    case ECONNABORTED: /* the peer gave up before we accepted */
    case 9999:         /* libfcgi: no errno */
        return ACCEPT_RETRY;
    case EBADF:
    case EINVAL:
    case ENOTSOCK:
    case EOPNOTSUPP:   /* the listen socket is unusable: let the master start afresh */
        return ACCEPT_FATAL;
    default:           /* EMFILE, ENFILE, ENOBUFS, ENOMEM: may pass */
        return ACCEPT_PAUSE;
    }
}

/* A resource shortage leaves the listen socket readable, so pause instead of spinning,
 * and log it at most once a second per thread. */
static void accept_pause(int rc, uint64_t *last_log_ns)
{
    uint64_t now = ef_mono_ns();
    if (now - *last_log_ns >= 1000000000u) {
        EFLOG_WARN("accept failed, pausing err=%s", strerror(-rc));
        *last_log_ns = now;
    }
    nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
}

/* Accepts and serves requests until the worker stops; returns 0, or -1 when the thread
 * cannot go on (the worker is then told to stop with an error). */
static int serve_loop(struct srv_thread *t)
{
    uint64_t last_log_ns = 0;
    for (;;) {
        int rc = wait_for_work(t);
        if (rc < 0) {
            EFLOG_ERROR("waiting for requests failed err=%s", strerror(errno));
            return -1;
        }
        if (rc == 0)
            return 0;
        rc = FCGX_Accept_r(&t->fcgx);
        if (rc >= 0) {
            /* Counted when accepted, not when answered: a worker that took a request is
             * up, even if that request then kills it (a crash, restarted; master.c). */
            if (progress)
                atomic_fetch_add_explicit(&progress->served, 1, memory_order_relaxed);
            serve_one(t);
            continue;
        }
        enum accept_fate fate = accept_fate(rc);
        if (fate == ACCEPT_FATAL) {
            EFLOG_ERROR("accept failed err=%s", strerror(-rc));
            return -1;
        }
        if (fate == ACCEPT_PAUSE)
            accept_pause(rc, &last_log_ns);
    }
}

static void *thread_main(void *arg)
{
    struct srv_thread *t = arg;
    t->accept_ep = accept_set_open(t->w);
    if (serve_loop(t) < 0)
        worker_fail(t->w);
    if (t->accept_ep >= 0 && close(t->accept_ep) < 0)
        EFLOG_ERROR("close of a thread's epoll set failed err=%s", strerror(errno));
    FCGX_Free(&t->fcgx, 1);
    pthread_mutex_lock(&t->w->mu);
    t->w->live--;
    pthread_cond_signal(&t->w->cv);
    pthread_mutex_unlock(&t->w->mu);
    return NULL;
}

/* Signals for a worker: TERM and INT stay blocked (the main thread takes them with
 * sigwait, request threads inherit the mask); HUP and PIPE are ignored (a client that
 * went away must not kill the process); the worker dies with its master. */
static int worker_signals(sigset_t *stop_set)
{
    sigemptyset(stop_set);
    sigaddset(stop_set, SIGTERM);
    sigaddset(stop_set, SIGINT);
    struct sigaction ign = { .sa_handler = SIG_IGN }, dfl = { .sa_handler = SIG_DFL };
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, SIGCHLD);
    sigaddset(&unblock, SIGHUP);
    if (sigaction(SIGHUP, &ign, NULL) < 0 || sigaction(SIGPIPE, &ign, NULL) < 0 ||
        sigaction(SIGCHLD, &dfl, NULL) < 0 || pthread_sigmask(SIG_BLOCK, stop_set, NULL) != 0 ||
        pthread_sigmask(SIG_UNBLOCK, &unblock, NULL) != 0 || prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
        return -1;
    return 0;
}

/* Waits until live == 0 or the grace period ends; returns 0 or -1 (timed out). */
static int wait_threads(struct srv_worker *w, int grace_seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += grace_seconds;
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    while (w->live > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->cv, &w->mu, &deadline);
    int left = w->live;
    pthread_mutex_unlock(&w->mu);
    return left > 0 ? -1 : 0;
}

static void stop_threads(struct srv_worker *w)
{
    atomic_store(&stopping, 1);
    FCGX_ShutdownPending();
    uint64_t one = 1;
    if (write(w->wake_fd, &one, sizeof one) != sizeof one)
        EFLOG_ERROR("cannot wake request threads err=%s", strerror(errno));
}

/* Starts n request threads; returns how many started. */
static int start_threads(struct srv_worker *w, struct srv_thread *ts, pthread_t *tids, int n)
{
    int started = 0;
    for (; started < n; started++) {
        struct srv_thread *t = &ts[started];
        t->w = w;
        FCGX_InitRequest(&t->fcgx, w->listen_fd, 0);
        pthread_mutex_lock(&w->mu);
        w->live++;
        pthread_mutex_unlock(&w->mu);
        int err = pthread_create(&tids[started], NULL, thread_main, t);
        if (err) {
            pthread_mutex_lock(&w->mu);
            w->live--;
            pthread_mutex_unlock(&w->mu);
            EFLOG_ERROR("cannot start request thread err=%s", strerror(err));
            break;
        }
    }
    return started;
}

/* Serves until SIGTERM/SIGINT; returns 0 after a clean stop, 1 otherwise. */
static int serve_until_stopped(struct srv_worker *w, const sigset_t *stop_set, int nthreads,
                               int slot)
{
    struct srv_thread *ts = xcalloc((size_t)nthreads, sizeof *ts);
    pthread_t *tids = xcalloc((size_t)nthreads, sizeof *tids);
    int started = start_threads(w, ts, tids, nthreads);
    if (started == nthreads) {
        if (progress)
            atomic_store_explicit(&progress->ready[slot], 1, memory_order_release);
        int sig = 0;
        while (sigwait(stop_set, &sig) != 0)
            ;
        EFLOG_DEBUG("worker stopping signal=%d", sig);
    } else {
        atomic_store(&w->fatal, 1);
    }
    stop_threads(w);
    int grace = w->opt->grace_seconds > 0 ? w->opt->grace_seconds : SRV_DEFAULT_GRACE_SECONDS;
    uint64_t deadline = ef_mono_ns() + (uint64_t)grace * 1000000000u;
    /* Request threads first (they may still hand requests to the loop), then the loop
     * answers what is parked and sends what is left, within the same grace period. */
    if (wait_threads(w, grace) < 0 || srv_hold_finish(w, deadline) < 0) {
        /* Threads still inside handlers use ctx and the listen socket: do not free
         * anything under them, just leave. */
        EFLOG_WARN("requests still running after the grace period, exiting grace=%d", grace);
        _exit(1);
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        sbuf_free(&ts[i].body);
        srv_out_free(&ts[i].ans);
        srv_arena_free(&ts[i].arena);
    }
    free(tids);
    free(ts);
    return atomic_load(&w->fatal) ? 1 : 0;
}

int srv_worker_main(const struct server_options *opt, int listen_fd, pid_t master,
                    struct srv_progress *shared, int slot)
{
    progress = shared;
    sigset_t stop_set;
    struct srv_worker w = { .opt = opt, .listen_fd = listen_fd, .wake_fd = -1,
                            .max_body = opt->max_body, .progress = shared, .slot = slot };
    int rc = 1;
    if (worker_signals(&stop_set) < 0) {
        EFLOG_ERROR("worker signal setup failed err=%s", strerror(errno));
        return 1;
    }
    if (getppid() != master)
        return 0; /* the master died before PR_SET_PDEATHSIG took effect */
    pthread_mutex_init(&w.accept_mu, NULL);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    if (opt->worker_init && opt->worker_init(&w.ctx, opt->cfg) < 0) {
        EFLOG_ERROR("worker init failed");
        goto fail;
    }
    if (FCGX_Init() != 0) {
        EFLOG_ERROR("FCGX_Init failed");
        goto fini;
    }
    w.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w.wake_fd < 0) {
        EFLOG_ERROR("eventfd failed err=%s", strerror(errno));
        goto fini;
    }
    if (srv_hold_start(&w) < 0)
        goto wake;
    int nthreads = opt->threads > 0 ? opt->threads : opt->cfg->threads;
    EFLOG_DEBUG("worker started threads=%d", nthreads);
    rc = serve_until_stopped(&w, &stop_set, nthreads, slot);
wake:
    close(w.wake_fd);
fini:
    if (opt->worker_fini)
        opt->worker_fini(w.ctx);
fail:
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    pthread_mutex_destroy(&w.accept_mu);
    return rc;
}
