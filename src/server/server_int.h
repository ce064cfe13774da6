/* server_int: what the files of src/server share and nobody else sees.
 *
 * listen.c takes or creates the listening socket (master), worker.c runs a worker's
 * request threads, request.c turns an accepted FCGX_Request into a struct
 * server_request, respond.c writes answers. One struct srv_thread per request thread
 * carries everything a request needs, so request threads share nothing but the listen
 * socket, the accept mutex, the wake-up eventfd, the worker context and the metrics
 * region.
 */
#ifndef EF_SERVER_INT_H
#define EF_SERVER_INT_H

#include <fcgiapp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
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

struct srv_thread {
    FCGX_Request fcgx;
    struct server_request req;
    struct srv_worker *w;
    struct sbuf body;            /* request body, reused */
    struct sbuf out;             /* answer being assembled, reused */
    struct srv_arena arena;
    const char *route;           /* metrics label, NULL = "other" */
    int responded;               /* an answer was written (0/1) */
    int status;                  /* the status answered */
};

/* Fills t->req from t->fcgx and reads the body. Returns 0 when the handler should run,
 * or 1 when the server has already answered (413). */
int srv_request_begin(struct srv_thread *t, size_t max_body);
/* Releases per-request memory; t->req is invalid afterwards. */
void srv_request_end(struct srv_thread *t);

/* ---- respond.c ---- */

/* Standard reason phrase of status ("Not Found"); "Unknown" for codes we never send. */
const char *srv_reason(int status);

/* ---- worker.c ---- */

#define SRV_DEFAULT_GRACE_SECONDS 30 /* server_options.grace_seconds == 0 */

/* What workers tell the master, in an anonymous MAP_SHARED region the master maps before
 * its first fork (so every worker, restarted or not, shares it). The master uses it to
 * tell a worker that cannot start (it dies before `ready`, or young without serving)
 * from one that crashed while serving, and gives up on the first kind (master.c).
 * Invariant: ready[slot] is set to 0 by the master before it forks the worker of slot,
 * and only that worker sets it to 1. */
struct srv_progress {
    _Atomic uint64_t served;   /* requests accepted, by all workers since the master started */
    _Atomic uint32_t ready[];  /* per slot: 1 once its worker's request threads run */
};

/* Runs one worker process until SIGTERM; returns its exit status. master is the pid of
 * the master that forked it (the worker exits at once if that one is already gone).
 * progress (may be NULL) and slot: where the worker reports that it is ready and counts
 * its answers. */
int srv_worker_main(const struct server_options *opt, int listen_fd, pid_t master,
                    struct srv_progress *progress, int slot);

#endif
