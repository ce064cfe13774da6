/* rmodel_bulk: the pipeline of a bulk load (rmodel_bulk.h).
 *
 * Two row caches (rmodel_cache.c) take turns: env->cache is the batch being folded (by the
 * caller's thread), back is the batch handed to the writer thread. The fold looks up a
 * row in env->cache, then in back, then in LMDB through a read-only txn begun after the
 * batch before back was committed.
 *
 * Invariants
 *  - While job is set, back == job and only the writer changes it (its rows' dirty marks and
 *    buffered rows, in rmodel_cache_write); the folding thread only reads its table, keys
 *    and values, which the writer does not change. Everything else of back is the folding
 *    thread's, touched only when job is NULL (under mu).
 *  - The writer holds LMDB's write txn only while it writes a job: between jobs, and once
 *    stopped, the env has no txn of the pipeline.
 *  - committed is the position of the last batch whose commit succeeded; after a failure
 *    (result != 0) no later batch is written.
 */
#include <config.h>

#include "readmodel/rmodel_bulk.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdlib.h>

#include "readmodel/rmodel_env.h"
#include "readmodel/rmodel_internal.h"
#include "util/bloom.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"
#include "util/xalloc.h"

struct rmodel_bulk {
    struct rmodel_env *env;
    struct rmodel_cache *other; /* the cache object not in env->cache */
    struct rmodel_cache *back;  /* the batch written last or being written (NULL: none) */
    struct ef_bloom *seen;      /* keys written, when the model started empty (else NULL) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu: */
    struct rmodel_cache *job; /* to write; NULL when the writer is idle */
    uint64_t job_position;
    int result;         /* of the last job: 0, or the error that stopped the pipeline */
    uint64_t committed; /* the model's position */
    int quit;
};

/* Writes cache c as one LMDB transaction. */
static int write_batch(struct rmodel_env *env, struct rmodel_cache *c)
{
    MDB_txn *txn;
    int rc = rmodel_env_write_begin(env, &txn);
    if (rc)
        return rc;
    rc = rmodel_cache_write(c, txn, env->dbi); /* sorts too: the fold is the busier thread */
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    return ef_mdb_rc(mdb_txn_commit(txn));
}

static void *writer_main(void *arg)
{
    struct rmodel_bulk *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->job && !b->quit)
            pthread_cond_wait(&b->cv, &b->mu);
        if (!b->job)
            break;
        struct rmodel_cache *c = b->job;
        uint64_t position = b->job_position;
        pthread_mutex_unlock(&b->mu);
        int rc = write_batch(b->env, c);
        pthread_mutex_lock(&b->mu);
        b->result = rc;
        if (rc == 0)
            b->committed = position;
        b->job = NULL;
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* Waits until the writer is idle; returns its last result. */
static int idle(struct rmodel_bulk *b, uint64_t *committed)
{
    pthread_mutex_lock(&b->mu);
    while (b->job)
        pthread_cond_wait(&b->cv, &b->mu);
    int rc = b->result;
    *committed = b->committed;
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int rmodel_bulk_start(struct rmodel_env *env, struct rmodel_bulk **out)
{
    if (env->read_only || env->bulk)
        return RMODEL_EBADARG;
    struct rmodel_txn *t;
    int rc = rmodel_txn_begin(env, 1, &t);
    if (rc)
        return rc;
    uint64_t position = 0;
    int empty = rmodel_env_projections_empty(t);
    rc = rmodel_position(t, &position);
    rmodel_txn_abort(t);
    if (rc)
        return rc;
    struct rmodel_bulk *b = xcalloc(1, sizeof *b);
    b->env = env;
    b->committed = position;
    if ((rc = pthread_mutex_init(&b->mu, NULL)) != 0) {
        free(b);
        return -rc;
    }
    if ((rc = pthread_cond_init(&b->cv, NULL)) != 0) {
        pthread_mutex_destroy(&b->mu);
        free(b);
        return -rc;
    }
    if ((rc = pthread_create(&b->thread, NULL, writer_main, b)) != 0) {
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return -rc;
    }
    b->other = rmodel_cache_new();
    b->seen = empty ? ef_bloom_new(1u << 16) : NULL;
    rmodel_cache_reset(env->cache); /* rows kept from earlier txns: the pipeline keeps none */
    env->bulk = 1;
    env->dlq_pending = 0;
    *out = b;
    return 0;
}

int rmodel_bulk_begin(struct rmodel_bulk *b, size_t rows, struct rmodel_txn **out)
{
    struct rmodel_env *env = b->env;
    MDB_txn *txn;
    /* Begun after the batch before back was committed (submit and wait make sure): what
     * neither cache holds is read as that commit left it. */
    int rc = ef_mdb_rc(mdb_txn_begin(env->env, NULL, MDB_RDONLY, &txn));
    if (rc)
        return rc;
    rmodel_cache_bulk(env->cache, 0, rows);
    rmodel_cache_pipeline(env->cache, b->back, b->seen);
    struct rmodel_txn *t = xcalloc(1, sizeof *t);
    t->env = env;
    t->txn = txn;
    *out = t;
    return 0;
}

/* After the writer committed back (or failed): its rows go, its memory stays. */
static void drop_back(struct rmodel_bulk *b)
{
    if (!b->back)
        return;
    rmodel_cache_end_bulk(b->back);
    b->other = b->back;
    b->back = NULL;
}

int rmodel_bulk_submit(struct rmodel_bulk *b, struct rmodel_txn *t, uint64_t position, uint64_t *committed)
{
    struct rmodel_env *env = b->env;
    int rc = idle(b, committed);
    if (rc) {
        rmodel_txn_abort(t); /* drops the batch (env->cache) */
        drop_back(b);
        return rc;
    }
    struct rmodel_cache *c = env->cache;
    rmodel_cache_pipeline(c, NULL, b->seen); /* back is about to go */
    drop_back(b);
    mdb_txn_abort(t->txn); /* the read txn: the next batch begins its own */
    rmodel_txn_free(t);
    env->cache = b->other;
    b->other = NULL;
    b->back = c;
    pthread_mutex_lock(&b->mu);
    b->job = c;
    b->job_position = position;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

int rmodel_bulk_wait(struct rmodel_bulk *b, uint64_t *committed)
{
    int rc = idle(b, committed);
    drop_back(b);
    return rc;
}

void rmodel_bulk_stop(struct rmodel_bulk *b)
{
    if (!b)
        return;
    uint64_t committed;
    int rc = idle(b, &committed);
    if (rc)
        EFLOG_DEBUG("bulk load stopped after a failed commit: %s position=%llu", rmodel_strerror(rc),
                    (unsigned long long)committed);
    pthread_mutex_lock(&b->mu);
    b->quit = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    drop_back(b);
    rmodel_cache_reset(b->env->cache);
    rmodel_cache_free(b->other);
    ef_bloom_free(b->seen);
    b->env->bulk = 0;
    b->env->dlq_pending = 0;
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}
