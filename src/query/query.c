#include <config.h>

#include "query/query.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log/log.h"
#include "query/query_int.h"
#include "readmodel/rdir.h"
#include "readmodel/rmodel_env.h"
#include "readmodel/rpos.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "util/path.h"
#include "util/xalloc.h"

#define READER_CHECK_NS (10ull * 1000000000ull) /* mdb_reader_check every 10 s */
#define OPEN_RETRY_NS (100ull * 1000000ull)        /* a missing model: try again after 100 ms */

/* Opens DIR/read/current read-only. A model the tailer has not created yet is created
 * empty first (a read-only LMDB open needs the file), so queries answer at position 0. */
static int open_model(struct query_worker *w, struct rmodel_env **out)
{
    char path[RDIR_PATH_MAX];
    int rc = rdir_path(path, sizeof path, w->data_dir, "current");
    if (rc)
        return rc;
    struct rmodel_options ro = { w->map_bytes, 1 };
    rc = rmodel_env_open(path, &ro, out);
    if (rc != -ENOENT && rc != RMODEL_ENOTFOUND)
        return rc;
    struct rmodel_options rw = { w->map_bytes, 0 };
    struct rmodel_env *e;
    rc = rmodel_env_open(path, &rw, &e);
    if (rc)
        return rc;
    rmodel_env_close(e);
    return rmodel_env_open(path, &ro, out);
}

int query_preflight(const struct ef_config *cfg, char *err, size_t errlen)
{
    char path[RDIR_PATH_MAX];
    struct stat st;
    int rc = stat(cfg->data_dir, &st) < 0 ? -errno : S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
    if (rc == 0)
        rc = ef_path_join(path, sizeof path, cfg->data_dir, "log");
    if (rc) {
        snprintf(err, errlen, "data directory '%s': %s", cfg->data_dir, strerror(-rc));
        return rc;
    }
    /* The one directory the query program writes (the workers prepare it again). */
    if ((rc = rdir_prepare(cfg->data_dir)) != 0) {
        snprintf(err, errlen, "read model directory '%s/read': %s", cfg->data_dir, strerror(-rc));
        return rc;
    }
    /* In follow mode like the workers (query_worker_init), and closed at once: a follower
     * writes nothing and holds nothing the workers would need. */
    struct log_options lo = { .segment_bytes = cfg->segment_bytes, .follow = 1 };
    struct log *lg;
    if ((rc = log_open(path, &lo, &lg)) != 0) {
        snprintf(err, errlen, "cannot open the log: %s", log_last_error(NULL));
        return rc;
    }
    log_close(lg);
    return 0;
}

int query_worker_init(void **ctx, const struct ef_config *cfg)
{
    struct query_worker *w = xcalloc(1, sizeof *w);
    snprintf(w->data_dir, sizeof w->data_dir, "%s", cfg->data_dir);
    w->max_wait = cfg->max_wait_seconds > 0 ? cfg->max_wait_seconds : 10;
    w->map_bytes = cfg->read_map_bytes;
    pthread_rwlock_init(&w->env_lock, NULL);
    pthread_mutex_init(&w->check_lock, NULL);
    char path[RDIR_PATH_MAX];
    int rc = rdir_prepare(w->data_dir);
    if (rc) {
        EFLOG_ERROR("cannot prepare %s/read: %s", w->data_dir, strerror(-rc));
        goto fail;
    }
    rdir_path(path, sizeof path, w->data_dir, "position");
    rc = rpos_open(path, &w->rp);
    if (rc) {
        EFLOG_ERROR("cannot map %s: %s", path, strerror(-rc));
        goto fail;
    }
    w->generation = rpos_generation(w->rp);
    rc = open_model(w, &w->env);
    if (query_model_unavailable(rc)) {
        /* The tailer replaces such a model when it starts: until then requests wait for
         * it (query_begin), instead of the workers failing to start again and again. */
        EFLOG_WARN("read model of %s not usable until the tailer replaces it: %s", w->data_dir,
                   rmodel_strerror(rc));
        w->env_err = rc;
        w->next_open_ns = ef_mono_ns() + OPEN_RETRY_NS;
    } else if (rc) {
        EFLOG_ERROR("cannot open the read model of %s: %s", w->data_dir, rmodel_strerror(rc));
        goto fail;
    }
    rc = ef_path_join(path, sizeof path, w->data_dir, "log");
    if (rc)
        goto fail;
    /* Follow mode: log_head() and log_durable() come live from the control block mapped
     * read-only, and the query program never writes a byte of the log (no recovery, no
     * segment, no control block), whatever starts first. */
    struct log_options lo = { .segment_bytes = cfg->segment_bytes, .follow = 1 };
    rc = log_open(path, &lo, &w->lg);
    if (rc) {
        EFLOG_ERROR("cannot open the log dir=%s: %s", path, log_last_error(NULL));
        goto fail;
    }
    w->next_reader_check_ns = ef_mono_ns() + READER_CHECK_NS;
    *ctx = w;
    return 0;
fail:
    query_worker_fini(w);
    return -1;
}

void query_worker_fini(void *ctx)
{
    struct query_worker *w = ctx;
    if (!w)
        return;
    log_close(w->lg);
    rmodel_env_close(w->env);
    rpos_close(w->rp);
    pthread_rwlock_destroy(&w->env_lock);
    pthread_mutex_destroy(&w->check_lock);
    free(w);
}

/* Reopens the model after a switch (generation moved). Takes the write lock, so it waits
 * for the requests in flight on the old env to end. Called before each request and by the
 * worker's watcher thread (query_housekeeping): a worker that gets no requests (idle
 * threads are woken one at a time, by any worker, so under a light load some workers sit
 * idle) must not keep the replaced model's files open, and their disk space taken. */
int query_model_unavailable(int rc) { return rc == RMODEL_ELAYOUT || rc == RMODEL_EUNSYNCED; }

/* A worker without a model (query_worker_init) tries to open it every OPEN_RETRY_NS, and at
 * once when the tailer's switch to the replacement moves the generation. */
static void open_missing_model(struct query_worker *w)
{
    uint64_t now = ef_mono_ns();
    if (now < __atomic_load_n(&w->next_open_ns, __ATOMIC_RELAXED))
        return;
    pthread_rwlock_wrlock(&w->env_lock);
    if (!w->env && now >= __atomic_load_n(&w->next_open_ns, __ATOMIC_RELAXED)) {
        uint32_t gen = rpos_generation(w->rp);
        struct rmodel_env *e = NULL;
        int rc = open_model(w, &e);
        if (rc == 0) {
            __atomic_store_n(&w->generation, gen, __ATOMIC_RELEASE);
            __atomic_store_n(&w->env, e, __ATOMIC_RELEASE);
            EFLOG_INFO("read model opened generation=%u", gen);
        } else if (rc != w->env_err) {
            EFLOG_WARN("read model still not usable: %s", rmodel_strerror(rc));
        }
        w->env_err = rc;
        __atomic_store_n(&w->next_open_ns, now + OPEN_RETRY_NS, __ATOMIC_RELAXED);
    }
    pthread_rwlock_unlock(&w->env_lock);
}

void query_reopen_if_switched(struct query_worker *w)
{
    uint32_t gen = rpos_generation(w->rp);
    if (!__atomic_load_n(&w->env, __ATOMIC_ACQUIRE)) {
        if (gen != __atomic_load_n(&w->generation, __ATOMIC_ACQUIRE))
            __atomic_store_n(&w->next_open_ns, 0, __ATOMIC_RELAXED); /* switched: try now */
        open_missing_model(w);
        return;
    }
    if (gen == __atomic_load_n(&w->generation, __ATOMIC_ACQUIRE))
        return;
    pthread_rwlock_wrlock(&w->env_lock);
    if (gen != w->generation) {
        struct rmodel_env *e;
        int rc = open_model(w, &e);
        if (rc == 0) {
            rmodel_env_close(w->env);
            __atomic_store_n(&w->env, e, __ATOMIC_RELEASE);
            EFLOG_INFO("read model reopened generation=%u", gen);
        } else {
            EFLOG_ERROR("cannot reopen the read model: %s (keeping the old one)", rmodel_strerror(rc));
        }
        __atomic_store_n(&w->generation, gen, __ATOMIC_RELEASE);
    }
    pthread_rwlock_unlock(&w->env_lock);
}

static void maybe_reader_check(struct query_worker *w)
{
    uint64_t now = ef_mono_ns();
    if (now < __atomic_load_n(&w->next_reader_check_ns, __ATOMIC_RELAXED))
        return;
    if (pthread_mutex_trylock(&w->check_lock) != 0)
        return;
    w->next_reader_check_ns = now + READER_CHECK_NS;
    int dead = rmodel_env_reader_check(w->env); /* under the env read lock of the caller */
    if (dead > 0)
        EFLOG_WARN("cleared stale LMDB reader slots count=%d", dead);
    pthread_mutex_unlock(&w->check_lock);
}

/* The tailer grew the map beyond this process's mapping (a larger read_map_bytes after a
 * restart): adopt the new size with no transaction of this process active (the write lock
 * waits for the requests in flight). */
static void adopt_mapsize(struct query_worker *w)
{
    pthread_rwlock_wrlock(&w->env_lock);
    int rc = rmodel_env_adopt_mapsize(w->env);
    if (rc)
        EFLOG_ERROR("cannot adopt the grown read-model map: %s", rmodel_strerror(rc));
    else
        EFLOG_INFO("read model map grown by the tailer: adopted");
    pthread_rwlock_unlock(&w->env_lock);
}

int query_begin(struct qreq *q)
{
    query_reopen_if_switched(q->w);
    pthread_rwlock_rdlock(&q->w->env_lock);
    q->locked = 1;
    if (!q->w->env) {
        int err = q->w->env_err;
        query_end(q);
        return err;
    }
    maybe_reader_check(q->w);
    int rc = rmodel_txn_begin(q->w->env, 1, &q->txn);
    if (rc == MDB_MAP_RESIZED) {
        query_end(q);
        adopt_mapsize(q->w);
        pthread_rwlock_rdlock(&q->w->env_lock);
        q->locked = 1;
        rc = rmodel_txn_begin(q->w->env, 1, &q->txn);
    }
    if (rc == 0)
        rc = rmodel_position(q->txn, &q->position);
    if (rc) {
        query_end(q);
        return rc;
    }
    snprintf(q->headers, sizeof q->headers, "Log-Position: %" PRIu64 "\r\n", q->position);
    return 0;
}

void query_end(struct qreq *q)
{
    rmodel_txn_abort(q->txn); /* accepts NULL */
    q->txn = NULL;
    if (q->locked)
        pthread_rwlock_unlock(&q->w->env_lock);
    q->locked = 0;
}
