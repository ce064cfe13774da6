/* query_int: shared state of the query handlers (internal to src/query/query*.c). */
#ifndef EF_QUERY_INT_H
#define EF_QUERY_INT_H

#include <pthread.h>
#include <stdint.h>

#include "domain/vocab.h" /* the id grammar: vocab_valid_id() */
#include "readmodel/rmodel.h"
#include "server/server.h"
#include "util/config.h"
#include "util/sbuf.h"

struct log;
struct rpos;

struct query_worker {
    char data_dir[EF_PATH_MAX];
    int max_wait;          /* seconds, upper bound of Prefer: wait */
    uint64_t map_bytes;
    struct log *lg;        /* never appended to */
    struct rpos *rp;
    pthread_rwlock_t env_lock; /* readers: requests; writer: a model reopen */
    /* NULL while the model cannot be opened because the tailer is about to replace it
     * (query_model_unavailable): env_err says why, and requests wait for it. */
    struct rmodel_env *env;
    int env_err;
    uint64_t next_open_ns; /* the next attempt to open it (under env_lock for writing) */
    uint32_t generation;   /* of the env that is open */
    pthread_mutex_t check_lock;
    uint64_t next_reader_check_ns;
};

/* One request in flight. */
struct qreq {
    struct server_request *req;
    struct query_worker *w;
    struct rmodel_txn *txn;     /* the request's read txn (NULL for handlers without one) */
    uint64_t position;      /* R: the applied position in txn */
    int locked;             /* holds w->env_lock for reading */
    const char *id;         /* the {id} path segment, NUL-terminated copy */
    size_t id_len;
    char id_buf[128];
    struct sbuf body;
    char headers[256];
};

/* Reopens the read model if it was switched (query.c). */
void query_reopen_if_switched(struct query_worker *w);

/* --- parameters (query_params.c) ------------------------------------------------ */

/* Strict decimal u64 (no sign, no spaces, no overflow). 0 ok, -1 bad. */
int query_parse_u64(const char *s, uint64_t *out);
/* Prefer: wait=S -> milliseconds (default 2 s, capped at max_wait s). -1 on a bad value. */
int query_wait_ms(struct server_request *req, int max_wait);
/* Min-Position header or ?min_position= : 0 none/ok (*pos = 0 when absent), -1 bad. */
int query_min_position(struct server_request *req, uint64_t *pos);

/* Answers 400 validation_failed naming field and message. */
void query_bad_param(struct qreq *q, const char *field, const char *message);
/* Answers a problem for an rmodel_* error code (404 for RMODEL_ENOTFOUND, else 500, logged). */
void query_fail(struct qreq *q, int rc, const char *what);
/* Answers 200 with q->body and the Log-Position header (plus extra, may be NULL). */
void query_ok(struct qreq *q, const char *extra_headers);

/* --- handlers reading the log (query_log.c) -------------------------------------- */
void query_events(struct qreq *q);
void query_order_events(struct qreq *q);
void query_order_as_of(struct qreq *q, uint64_t as_of);

/* The request's one deadline for all its waits (Min-Position, long-poll), from Prefer:
 * wait=S counted from its arrival, kept while it is parked. 0, or -1 after answering 400
 * for a bad Prefer. */
int query_deadline(struct qreq *q, uint64_t *deadline_ns);
/* Parks the request until the published position is >= want or wake_ns (the handler
 * then runs again from the start). Returns 1 when it is parked or was answered (503
 * too_many_waiting), 0 when it cannot wait (the worker is stopping): answer now. */
int query_park(struct qreq *q, uint64_t want, uint64_t wake_ns);

/* /api/events pages stop at about this much JSON (always at least one event). */
#define QUERY_PAGE_BYTES (1024 * 1024)

/* Begins q->txn on the current model and reads q->position (reopens the model first if
 * a rebuild switched it). Holds the env lock until query_end(). Fails with an error that
 * query_model_unavailable() recognizes while the tailer has yet to replace the model. */
int query_begin(struct qreq *q);
/* query_begin for a handler: with a Min-Position (want > 0), makes sure the txn itself is
 * at or past it: around a model switch the published position can briefly run ahead of
 * the model this worker has open. Then, or while the model awaits its replacement by the
 * tailer, the request is parked for a moment (20 ms) and tried again within its wait.
 * Returns 0 with the txn begun, or -1 when the request was answered or parked. */
int query_begin_at(struct qreq *q, uint64_t want);
/* 1 for the errors of a model that cannot be opened until the tailer replaces it: one of
 * another layout (an upgrade) or left unsynced by a machine crash (rmodel_env.h). */
int query_model_unavailable(int rc);
void query_end(struct qreq *q);

#endif
