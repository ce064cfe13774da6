/* server_int: what the files of src/server share and nobody else sees.
 *
 * listen.c takes or creates the listening socket (master), worker.c runs a worker's
 * request threads, request.c turns an accepted FCGX_Request (or a parked request run
 * again) into a struct server_request, respond.c renders answers into memory, send.c
 * frames them as FastCGI records and sends them without blocking, hold.c is the worker's
 * event loop for parked requests and answers left to send. One struct srv_thread per
 * request thread (and one for the loop) carries everything a request needs, so request
 * threads share nothing but the listen socket, the accept mutex, the wake-up eventfd, the
 * loop's submission queue, the worker context and the metrics region.
 */
#ifndef EF_SERVER_INT_H
#define EF_SERVER_INT_H

#include <fcgiapp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "server/server.h"
#include "util/sbuf.h"

/* ---- listen.c ---- */

struct srv_listener {
    int fd;
    int created;                 /* 1: a unix socket file we created (remove at exit) */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t dev;                   /* identity of the file we created, so that we never */
    ino_t ino;                   /* remove a socket another process has put there since */
};

/* Takes the listening socket described in server.h. spec "" = inherited (LISTEN_FDS,
 * else fd 0). Returns 0 or a SERVER_ERR_* code; the cause is logged. The fd is made
 * non-blocking and close-on-exec. */
int srv_listen_open(const char *spec, struct srv_listener *l);
/* Closes the socket and removes the unix socket file if we created it and it is still
 * ours. Accepts a listener whose open failed (fd -1). */
void srv_listen_close(struct srv_listener *l);

/* ---- request.c ---- */

/* Per-request memory: a chain of blocks, the first kept across requests. Strings handed
 * to handlers (decoded query values, ...) live here until the request ends. */
struct srv_arena_block;
struct srv_arena {
    struct srv_arena_block *head;
};
void *srv_arena_alloc(struct srv_arena *a, size_t n);
void srv_arena_reset(struct srv_arena *a); /* frees all but the first block */
void srv_arena_free(struct srv_arena *a);

struct srv_worker;
struct srv_held;

/* ---- send.c ---- */

/* An answer as FastCGI records: FCGI_STDOUT records of at most 65535 content bytes over
 * the header block and the body (iovecs slice the buffers, nothing is copied), an empty
 * FCGI_STDOUT and FCGI_END_REQUEST. Owns head and body. Invariant after srv_out_frame:
 * iov[cur..niov) is what is left to send, `left` bytes in all. */
struct srv_out {
    struct sbuf head;        /* "Status: ..." header block, and a copied small body */
    struct sbuf body;        /* a body taken over by server_respond_take (may be empty) */
    unsigned char *recs;     /* record headers and the END_REQUEST body */
    struct iovec *iov;
    size_t niov, cur, left;
};
/* Frames o->head and o->body for request id. */
void srv_out_frame(struct srv_out *o, uint16_t request_id);
/* Sends what the socket takes now (MSG_DONTWAIT | MSG_NOSIGNAL). Returns 1 when all is
 * sent, 0 when the rest must wait for the socket, -1 when the peer is gone (errno). */
int srv_out_send(struct srv_out *o, int fd);
/* Empties o for the next answer, keeping head's memory unless it is large. */
void srv_out_reset(struct srv_out *o);
void srv_out_free(struct srv_out *o);

struct srv_thread {
    FCGX_Request fcgx;
    struct server_request req;
    struct srv_worker *w;
    struct sbuf body;            /* request body, reused */
    struct srv_out ans;          /* answer being assembled, reused */
    struct srv_arena arena;
    const char *route;           /* metrics label, NULL = "other" */
    int responded;               /* an answer was written (0/1) */
    int status;                  /* the status answered */
    struct srv_held *held;       /* the parked request being run again, or NULL */
    struct srv_held *parked;     /* set by server_park during this run */
    struct server_deferred *deferred; /* set by server_defer during this run */
    int in_loop;                 /* this context belongs to the loop thread */
    int accept_ep;               /* the thread's epoll set for accepting (worker.c), or -1 */
};

/* Fills t->req from t->fcgx and reads the body. Returns 0 when the handler should run,
 * or 1 when the server has already answered (413). */
int srv_request_begin(struct srv_thread *t, size_t max_body);
/* Fills t->req from the parked request t->held (no body). */
void srv_request_resume(struct srv_thread *t);
/* Writes the CGI name of HTTP header `name` (HTTP_IF_MATCH) into key; -1 if too long. */
int srv_cgi_name(const char *name, char *key, size_t cap);
/* Releases per-request memory; t->req is invalid afterwards. */
void srv_request_end(struct srv_thread *t);

/* ---- respond.c ---- */

/* Standard reason phrase of status ("Not Found"); "Unknown" for codes we never send. */
const char *srv_reason(int status);
/* Renders the header block of an answer (status line, Content-Type, Content-Length,
 * headers, blank line) into o->head, which it empties first. */
void srv_render_head(struct srv_out *o, int status, const char *content_type,
                     const char *headers, size_t body_len);
/* A problem answer the server makes itself (not a handler's), with the program's
 * Log-Position when it gives one (server_options.answer_position). */
void srv_respond_own_problem(struct srv_thread *t, int status, const char *code, const char *detail);

/* ---- hold.c ---- */

/* A request the worker's loop holds: parked (waiting for a position or its wake time) or
 * being sent (its answer did not fit in the socket at once). Owned by the loop while in
 * its heaps, by one thread while that thread runs it again. Invariant: a held request's
 * fd is registered in the loop's epoll set exactly while the loop owns it. */
enum srv_held_state { HELD_PARKED, HELD_SENDING };
struct srv_held {
    int fd;
    uint16_t request_id;
    uint8_t state;
    uint8_t counted;          /* counted in the parked totals (struct srv_hold) */
    uint64_t want;            /* parked: the position it waits for */
    uint64_t due_ns;          /* parked: wake time; sending: the send deadline */
    size_t due_idx, want_idx; /* heap slots; SIZE_MAX when out of the heap */
    struct srv_held *next;    /* submission queue; then, sending: the loop's FIFO of them */
    struct srv_held *prev;    /* sending: the loop's FIFO, oldest first */
    struct srv_out *out;      /* sending: the answer */
    /* What the handler needs to run again. */
    uint64_t started_ns, wait_deadline_ns;
    const char *route;
    unsigned runs;
    const char *method, *path, *query;
    const char *hdrs;         /* CGI name\0value\0 pairs, ending with an empty name */
    char strs[];
};

/* Builds a held request for t's request, parked for want/wake_ns (server_park). */
struct srv_held *srv_held_park(struct srv_thread *t, uint64_t want, uint64_t wake_ns);
/* Looks header CGI name up in a held request; NULL when not kept. */
const char *srv_held_header(const struct srv_held *h, const char *cgi_name);

/* The per-worker loop. srv_hold_start starts its threads (loop and watcher); submit hands
 * a held request (parked, or with an answer left to send) to the loop; srv_hold_finish
 * tells it that no more submissions come (the request threads are gone) and waits up to
 * deadline_ns for it to answer and send what it holds. */
int srv_hold_start(struct srv_worker *w);
void srv_hold_submit(struct srv_worker *w, struct srv_held *h);
/* 0 when everything held was answered and sent or dropped, -1 on timeout. */
int srv_hold_finish(struct srv_worker *w, uint64_t deadline_ns);
/* Parks may go on: under max_waiting (all workers), counts it. 0 or SERVER_PARK_FULL. */
int srv_hold_count(struct srv_worker *w);
void srv_hold_uncount(struct srv_worker *w);
/* ---- worker.c ---- */

/* One worker process (see worker.c for how its threads accept and stop). */
struct srv_worker {
    const struct server_options *opt;
    void *ctx;
    int listen_fd;
    int wake_fd;
    size_t max_body;
    pthread_mutex_t accept_mu; /* held by the thread polling the listen socket (only
                                * threads without an epoll set of their own: worker.c) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int live;            /* request threads still running; under mu */
    _Atomic int fatal;   /* a thread failed in a way the worker cannot serve on */
    struct srv_hold *hold; /* the loop of parked requests and unsent answers (hold.c) */
    struct srv_progress *progress; /* shared with the master; NULL: not reported */
    int slot;            /* this worker's slot in progress */
};

/* Runs the handler for t->req and makes sure it answered, parked or deferred; logs the
 * request (a deferred one when it is answered). */
void srv_run_handler(struct srv_thread *t);
/* Takes the connection away from libfcgi (its streams and parameters are freed, the fd
 * stays open) and readies t->fcgx for the next accept. Returns the fd. */
int srv_take_connection(struct srv_thread *t);

/* ---- defer.c ---- */

/* After a handler that called server_defer returned: hands the connection over to the
 * deferred answer, and sends it if it is already there. */
void srv_defer_detach(struct srv_thread *t);


#define SRV_DEFAULT_GRACE_SECONDS 30 /* server_options.grace_seconds == 0 */

/* What workers tell the master, in an anonymous MAP_SHARED region the master maps before
 * its first fork (so every worker, restarted or not, shares it). The master uses it to
 * tell a worker that cannot start (it dies before `ready`, or young without serving)
 * from one that crashed while serving, and gives up on the first kind (master.c).
 * Invariant: ready[slot] is set to 0 by the master before it forks the worker of slot,
 * and only that worker sets it to 1. */
struct srv_progress {
    _Atomic uint64_t served;   /* requests accepted, by all workers since the master started */
    uint32_t nslots;
    _Atomic uint32_t *parked;  /* per slot: requests its worker holds parked (the master
                                * zeroes a slot before forking its worker, so a crashed
                                * worker's count does not stay) */
    _Atomic uint32_t ready[];  /* per slot: 1 once its worker's request threads run */
};

/* Runs one worker process until SIGTERM; returns its exit status. master is the pid of
 * the master that forked it (the worker exits at once if that one is already gone).
 * progress (may be NULL) and slot: where the worker reports that it is ready and counts
 * its answers. */
int srv_worker_main(const struct server_options *opt, int listen_fd, pid_t master,
                    struct srv_progress *progress, int slot);

#endif
