/* command: executing one command request, from HTTP request to answer, without HTTP.
 *
 * Flow of write_execute() (the order matters; the comments say why). Commands run in
 * batches: the commands of one worker that queue up while one of its threads runs a batch
 * are the next batch (execute.c, "the worker's queue"); a lone command is a batch of one.
 *   1. Route (404/405), Content-Type (415), size (413), Idempotency-Key and If-Match syntax
 *      (400), then the body is parsed strictly (400). No lock is held for any of this
 *      (write_prepare).
 *   2. log_append_begin: the log's cross-process append lock, held for the whole batch.
 *      Everything from here to log_append_end is one critical section across all workers:
 *      this is what makes commands serializable (each is decided on a model that includes
 *      every earlier one, of its batch or not).
 *   3. Catch-up: apply the records after the model's position up to log_head(). They exist
 *      when a worker died after appending but before committing its model transaction.
 *      A model ahead of the log (or one that cannot apply a record) is rebuilt.
 *   4. mdb_txn_begin(write), one transaction for the batch; per command, the idempotency
 *      check (a repeat returns the stored answer, after log_sync of its position: the first
 *      request may not be durable yet; a different request under the same key is 422); a
 *      few expired keys are pruned.
 *   5. The shop decides (If-Match first: 412); a refusal leaves the transaction as it was:
 *      nothing of the command is applied or appended.
 *   6. The event is encoded and applied to the model by wm_apply_event(), the function
 *      catch-up and rebuild use on the decoded record, as the record it will be at position
 *      head+1. A full map (MDB_MAP_FULL) aborts the transaction; the map is doubled
 *      (wm_grow) and the command decided again from step 3, nothing of it having been
 *      appended (the batch's earlier commands are, and step 3 applies them again from the
 *      log). Another LMDB failure: 503 log_unavailable, nothing of it appended.
 *   7. log_append_record; failure (ENOSPC, EIO): abort the transaction, 503, nothing of the
 *      command appended (the log cuts its file back itself); the next command of the batch
 *      begins a new transaction from step 3.
 *   8. mdb_txn_commit at the end of the batch. If it fails now, the events stand anyway
 *      (they are in the log): a full map is grown and the records applied by a catch-up at
 *      once; another failure is logged loudly and the next command's catch-up applies them.
 *   9. log_append_end, then log_sync of the batch's last record: group commit, batches and
 *      workers share fdatasyncs. Only when it returns is a 2xx sent (Log-Position: P, ETag:
 *      "V"); a failed sync answers 503 for every record it leaves beyond the durable
 *      position.
 * Durability: nothing is acknowledged before an fdatasync covers it, and the write model
 * (MDB_NOSYNC) is never trusted beyond the log: it is caught up from the log under the
 * lock before every decision, and rebuilt when it is found ahead of it (replay.h).
 *
 * Error answers carry Log-Position: log_durable(), a position that cannot vanish.
 */
#ifndef EF_WRITE_COMMAND_H
#define EF_WRITE_COMMAND_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "log/log.h"
#include "util/sbuf.h"
#include "write/model.h"

struct wsnap_taker;
struct write_exec;
struct batch_scratch;

/* The stages of a command whose durations write_ctx.observe is told (metrics). */
enum write_stage {
    WRITE_STAGE_LOCK_WAIT, /* waiting for the log's append lock */
    WRITE_STAGE_LOCKED,    /* holding it: the write-model transaction and the append */
    WRITE_STAGE_SYNC_WAIT, /* waiting for the fdatasync that makes the record durable */
};

struct write_ctx {
    struct log *log;
    struct wm *wm;
    struct wsnap_taker *snap;  /* the worker's snapshot thread (wsnap.h), or NULL */
    char *snap_dir;            /* DIR/write/snapshots, for a rebuild (NULL: full replay only) */
    void (*observe)(enum write_stage stage, uint64_t ns); /* NULL: not measured */
    int idempotency_ttl_hours; /* >= 24 */
    unsigned commands;         /* executed by this handle (for periodic housekeeping) */
    int apply_rebuild_tried;   /* a record failed to apply and a rebuild was tried */
    /* The queue of the commands of this handle's threads (execute.c); zero to start. */
    struct write_exec *queue_head, *queue_tail;
    int combining;
    unsigned nqueued;
    _Atomic uint32_t done_seq;
    struct write_exec *spare;  /* freed executions kept for the next commands */
    struct batch_scratch *scratch; /* the combiner's view and event (execute.c) */
    unsigned nspare;
};

/* A command request as the handler received it. Strings are NUL-terminated; absent
 * headers are NULL. */
struct write_request {
    const char *method;
    const char *path;         /* without the query string */
    const char *content_type; /* NULL or "" when absent */
    const char *body;
    size_t body_len;
    const char *if_match;
    const char *idempotency_key;
};

struct write_response {
    int status;
    const char *content_type; /* static: application/json or application/problem+json */
    const char *route;        /* static route label for metrics, or NULL */
    struct sbuf body;
    char headers[256];        /* extra header lines, each ending in "\r\n" */
};

/* Executes one request and fills *resp (which the caller frees with write_response_free).
 * Never fails: every outcome is an answer. The same as write_prepare, then write_finish. */
void write_execute(struct write_ctx *ctx, const struct write_request *req,
                   struct write_response *resp);

/* write_execute in two steps, for a server whose threads need not wait for the answer.
 * write_prepare does step 1 (no lock): it returns NULL when that already answers the
 * request (*resp filled), else the command, ready to run; req is not used again (its
 * strings may go). resp->route is set either way. */
struct write_exec *write_prepare(struct write_ctx *ctx, const struct write_request *req,
                                 struct write_response *resp);
/* Steps 2-9, this thread waiting for the answer (the command may run in another thread's
 * batch meanwhile); fills *resp and frees x. */
void write_finish(struct write_exec *x, struct write_response *resp);
/* Steps 2-9 without waiting: done(arg, resp) is called exactly once with the answer (resp
 * is valid during the call only), from the thread that runs the command's batch: this one
 * before write_finish_async returns, or another one later. x is freed after it. When many
 * commands of the handle are queued already, this thread waits for the answer after all
 * (and calls done itself): a worker whose disk stalls stops taking requests. */
typedef void (*write_done_fn)(void *arg, const struct write_response *resp);
void write_finish_async(struct write_exec *x, write_done_fn done, void *arg);
void write_response_free(struct write_response *resp);
/* Frees what the handle keeps between commands (before the handle itself goes). */
void write_ctx_release(struct write_ctx *ctx);
/* Executes n requests as one batch, in order: one hold of the append lock, one write-model
 * transaction, one fdatasync; each is decided on a model holding the ones before it.
 * What write_execute() does with the commands of a worker's threads that queue up while
 * one of them runs a batch; fills resps[i] for reqs[i]. */
void write_execute_batch(struct write_ctx *ctx, const struct write_request *reqs,
                         struct write_response *resps, size_t n);

/* The 128-bit XXH3 of method "\n" path "\n" body, canonical (big-endian) bytes. */
void write_fingerprint(const char *method, const char *path, const char *body, size_t len,
                       unsigned char out[16]);

#endif
