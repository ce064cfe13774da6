#include <config.h>

#include "readmodel/rmodel_env.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "readmodel/rmodel_internal.h"
#include "util/bootid.h"
#include "util/durable.h"
#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"
#include "util/path.h"
#include "util/xalloc.h"

const char *const rmodel_dbi_names[RMODEL_DB_COUNT] = {
    "meta", "orders", "users", "user_cat", "user_orders",
    "items", "daily", "streams", "positions", "dlq",
};


const char *rmodel_strerror(int err)
{
    switch (err) {
    case RMODEL_ENOTFOUND: return "not found";
    case RMODEL_EFORMAT: return "read model value of an unknown format, or truncated";
    case RMODEL_EBADARG: return "invalid argument";
    case RMODEL_EORDER: return "record out of order";
    case RMODEL_EUNSYNCED: return "read model had unsynced commits when the machine went down";
    case RMODEL_ELAYOUT:
        return "read model of another layout than this release's (the tailer replaces it when it starts)";
    default: return ef_strerror_except(EF_ERR_RMODEL, err);
    }
}

static int check_format(struct rmodel_env *e, MDB_txn *txn)
{
    MDB_val k = { sizeof RMODEL_META_FORMAT - 1, (void *)RMODEL_META_FORMAT }, v;
    int rc = mdb_get(txn, e->dbi[RMODEL_DB_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        if (e->read_only)
            return 0; /* a model that was never written: empty, position 0 */
        unsigned char f = RMODEL_FORMAT;
        MDB_val fv = { 1, &f };
        return ef_mdb_rc(mdb_put(txn, e->dbi[RMODEL_DB_META], &k, &fv, 0));
    }
    if (rc)
        return ef_mdb_rc(rc);
    if (v.mv_size != 1)
        return RMODEL_EFORMAT;
    return *(unsigned char *)v.mv_data == RMODEL_FORMAT ? 0 : RMODEL_ELAYOUT;
}

/* Opens every dbi in one txn (committed so the handles stay valid for the env's life). */
static int open_dbis(struct rmodel_env *e)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(e->env, NULL, e->read_only ? MDB_RDONLY : 0, &txn);
    if (rc)
        goto fail;
    for (int i = 0; i < RMODEL_DB_COUNT; i++) {
        rc = mdb_dbi_open(txn, rmodel_dbi_names[i], e->read_only ? 0 : MDB_CREATE, &e->dbi[i]);
        if (rc)
            goto fail;
    }
    rc = check_format(e, txn);
    if (rc)
        goto fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc)
        goto fail;
    return 0;
fail:
    mdb_txn_abort(txn);
    /* Read-only, a dbi that does not exist yet: the model was never initialized. */
    return rc == MDB_NOTFOUND ? RMODEL_ENOTFOUND : ef_mdb_rc(rc);
}

/* --- lazy sync (rmodel_env.h) ------------------------------------------------------------ */

static int marker_path(const char *dir, char *out, size_t cap)
{
    return ef_path_join(out, cap, dir, RMODEL_UNSYNCED_FILE);
}

/* Reads the marker of dir: 0 when there is none (*present 0) or it is this boot's
 * (*present 1), RMODEL_EUNSYNCED when it names another boot (or is unreadable garbage), or a
 * negative errno. boot is this boot's id ("": unknown, then any marker is distrusted). */
static int check_marker(const char *dir, const char *boot, int *present)
{
    char then[64];
    *present = 0;
    int rc = ef_read_small(dir, RMODEL_UNSYNCED_FILE, then, sizeof then);
    if (rc < 0)
        return rc == -ENOENT ? 0 : rc;
    *present = 1;
    return boot[0] && strcmp(then, boot) == 0 ? 0 : RMODEL_EUNSYNCED;
}

/* Writes the marker durably (file and directory entry) before any unsynced commit. A
 * short write is ENOSPC: the caller then falls back to synced commits. */
static int write_marker(struct rmodel_env *e)
{
    int rc = ef_write_durably(e->dir, RMODEL_UNSYNCED_FILE, e->boot, strlen(e->boot));
    if (rc == 0) {
        e->unsynced = 1;
    } else {
        char path[4096];
        if (marker_path(e->dir, path, sizeof path) == 0)
            unlink(path); /* a marker that may not be durable would only cost a needless
                           * replacement later */
    }
    return rc;
}

int rmodel_env_lazy_sync(struct rmodel_env *env)
{
    if (env->read_only || !env->boot[0])
        return 0;
    /* NOSYNC only now: creating the dbis at open committed with a sync, before any
     * marker was needed. */
    int rc = mdb_env_set_flags(env->env, MDB_NOSYNC, 1);
    if (rc)
        return ef_mdb_rc(rc);
    env->lazy = 1;
    return 1;
}

int rmodel_env_unsynced(const struct rmodel_env *env) { return env->lazy && env->unsynced; }

/* Removes dir's marker (after its model was made durable); its directory is not synced. */
static int remove_marker(const char *dir)
{
    char path[4096];
    int rc = marker_path(dir, path, sizeof path);
    if (rc == 0 && unlink(path) < 0 && errno != ENOENT)
        rc = -errno;
    return rc;
}

int rmodel_env_sync(struct rmodel_env *env)
{
    if (!rmodel_env_unsynced(env))
        return 0;
    int rc = mdb_env_sync(env->env, 1);
    if (rc)
        return ef_mdb_rc(rc);
    rc = remove_marker(env->dir);
    if (rc)
        return rc;
    /* The data is durable and the marker gone from the directory: the next write txn must
     * write a new one, whether or not the removal itself reaches the disk (if it does not,
     * the old marker survives a crash and only costs a needless replacement). */
    env->unsynced = 0;
    return ef_fsync_path(env->dir, 1);
}

static int setup_env(MDB_env *env, void *arg)
{
    int rc = mdb_env_set_maxdbs(env, RMODEL_DB_COUNT);
    if (!rc)
        rc = mdb_env_set_maxreaders(env, 512);
    return rc;
}

int rmodel_env_open(const char *dir, const struct rmodel_options *opt, struct rmodel_env **out)
{
    struct rmodel_env *e = xcalloc(1, sizeof *e);
    e->read_only = opt && opt->read_only;
    uint64_t map = opt && opt->map_bytes ? opt->map_bytes : RMODEL_DEFAULT_MAP;
    /* MDB_NOTLS: query workers use one env from several threads, and a read txn is not
     * tied to a thread. MDB_NOMETASYNC: a commit fsyncs the data pages but not the meta
     * page; after a power loss the model may come back at the previous commit (never a
     * torn one: LMDB keeps two meta pages), which is safe because the position commits with
     * the data, and the tailer refolds from whatever position survived. */
    unsigned flags = MDB_NOTLS;
    flags |= e->read_only ? MDB_RDONLY : MDB_NOMETASYNC;
    int rc;
    /* Whoever opens a model checks its lazy-sync marker: nobody reads or writes a model
     * that may have been torn by a machine crash (rmodel_env.h, "Lazy sync"). */
    ef_boot_id(e->boot, sizeof e->boot);
    /* The model's own directory, not DIR/read/current: once a rebuild has switched
     * "current", syncing or closing this env must not touch the new model's marker. */
    e->dir = realpath(dir, NULL);
    if (!e->dir)
        e->dir = xstrdup(dir); /* mdb_env_open reports a missing directory */
    int present = 0;
    rc = check_marker(dir, e->boot, &present);
    if (rc)
        goto fail;
    e->unsynced = present; /* a process of this boot died with unsynced commits */
    if (e->read_only) {
        /* Read-only: a read-only map, nothing to reserve. */
        rc = ef_mdb_open_plain(dir, flags, 0644, (size_t)map, setup_env, NULL, &e->env);
    } else {
        /* The tailer (and rebuilds) write through a writable map when it can be reserved. */
        int why_not = 0;
        rc = ef_mdb_open(dir, flags, 0644, (size_t)map, setup_env, NULL, &e->env, &e->writemap,
                         &why_not);
        if (rc == 0 && !e->writemap)
            EFLOG_WARN("read model: its map cannot be reserved on disk (%s): writing it without "
                     "MDB_WRITEMAP, slower", ef_mdb_reserve_strerror(why_not));
    }
    if (rc)
        goto fail;
    int dead = 0;
    rc = mdb_reader_check(e->env, &dead); /* slots left by killed readers */
    if (rc)
        goto fail;
    rc = open_dbis(e);
    if (rc)
        goto fail;
    if (!e->read_only)
        e->cache = rmodel_cache_new();
    *out = e;
    return 0;
fail:
    rmodel_env_close(e);
    return ef_mdb_rc(rc);
}

/* The sync of a closed env: its data file (whose dirty pages the page cache kept when the
 * map went), then the marker's removal, as rmodel_env_sync. */
static int sync_closed(const char *dir)
{
    char path[4096];
    int rc = ef_path_join(path, sizeof path, dir, "data.mdb");
    if (rc == 0)
        rc = ef_fsync_path(path, 0);
    if (rc == 0)
        rc = remove_marker(dir);
    return rc ? rc : ef_fsync_path(dir, 1);
}

int rmodel_env_close_synced(struct rmodel_env *env)
{
    if (!env)
        return 0;
    int rc = 0;
    if (env->env) {
        int unsynced = rmodel_env_unsynced(env);
        /* Unmapped first: a sync through a writable map write-protects each dirty page
         * of it (a TLB shootdown per page, on every CPU that ran this process), which was
         * a large part of the sync at the end of a rebuild (bench/README.md). The pages
         * stay dirty in the page cache and the file's fsync writes them. */
        ef_mdb_close(env->env);
        if (unsynced)
            rc = sync_closed(env->dir); /* on failure the marker stays: safe, see rmodel_env.h */
    }
    rmodel_cache_free(env->cache);
    free(env->dir);
    free(env);
    return rc;
}

void rmodel_env_close(struct rmodel_env *env) { (void)rmodel_env_close_synced(env); }

int rmodel_env_reader_check(struct rmodel_env *env)
{
    int dead = 0;
    int rc = mdb_reader_check(env->env, &dead);
    return rc ? ef_mdb_rc(rc) : dead;
}

int rmodel_env_adopt_mapsize(struct rmodel_env *env)
{
    return ef_mdb_set_mapsize(env->env, 0, env->writemap); /* 0: what the writer grew it to */
}

int rmodel_env_grow(struct rmodel_env *env, uint64_t *bytes)
{
    if (env->read_only)
        return RMODEL_EBADARG;
    MDB_envinfo info;
    int rc = mdb_env_info(env->env, &info);
    if (rc)
        return ef_mdb_rc(rc);
    uint64_t size = (uint64_t)info.me_mapsize;
    if (size >= RMODEL_MAX_MAP)
        return MDB_MAP_FULL;
    size = size * 2 > RMODEL_MAX_MAP ? RMODEL_MAX_MAP : size * 2;
    /* A writable map's blocks first (ef_mdb_set_mapsize does it). The tailer is the model's
     * only writer, so a map written with write(2) needs none: its file grows page by page. */
    rc = ef_mdb_set_mapsize(env->env, (size_t)size, env->writemap);
    if (rc)
        return rc;
    *bytes = size;
    return 0;
}

int rmodel_env_usage(struct rmodel_env *env, uint64_t *used, uint64_t *map)
{
    MDB_envinfo info;
    MDB_stat st;
    int rc = mdb_env_info(env->env, &info);
    if (rc == 0)
        rc = mdb_env_stat(env->env, &st);
    if (rc)
        return ef_mdb_rc(rc);
    *used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    *map = (uint64_t)info.me_mapsize;
    return 0;
}

int rmodel_env_copy_fd(struct rmodel_env *env, int fd)
{
    return ef_mdb_rc(mdb_env_copyfd2(env->env, fd, MDB_CP_COMPACT));
}

int rmodel_env_write_begin(struct rmodel_env *env, MDB_txn **txn)
{
    if (env->read_only)
        return RMODEL_EBADARG;
    /* The marker must be on disk before LMDB may write any page of an unsynced commit
     * (pages can be spilled before the commit), so it is written here. */
    if (env->lazy && !env->unsynced) {
        int rc = write_marker(env);
        /* A full disk may still leave LMDB free pages to commit into, as before lazy
         * sync: fall back to synced commits (until the env is reopened). */
        if ((rc == -ENOSPC || rc == -EDQUOT) && mdb_env_set_flags(env->env, MDB_NOSYNC, 0) == 0) {
            env->lazy = 0;
            rc = 0;
        }
        if (rc)
            return rc;
    }
    return ef_mdb_rc(mdb_txn_begin(env->env, NULL, 0, txn));
}

int rmodel_txn_begin(struct rmodel_env *env, int rdonly, struct rmodel_txn **out)
{
    if (!rdonly && env->read_only)
        return RMODEL_EBADARG;
    MDB_txn *txn;
    int rc = rdonly ? ef_mdb_rc(mdb_txn_begin(env->env, NULL, MDB_RDONLY, &txn)) : rmodel_env_write_begin(env, &txn);
    if (rc)
        return rc;
    if (!rdonly)
        rmodel_cache_begin(env->cache, mdb_txn_id(txn));
    struct rmodel_txn *t = xcalloc(1, sizeof *t);
    t->env = env;
    t->txn = txn;
    t->rdonly = rdonly;
    *out = t;
    return 0;
}

/* 1 when every database the cache holds or buffers as rows is empty in txn (positions are
 * only written, meta and dead letters straight to LMDB, so they do not count). */
int rmodel_env_projections_empty(struct rmodel_txn *t)
{
    static const enum rmodel_dbi dbs[] = { RMODEL_DB_ORDERS, RMODEL_DB_USERS, RMODEL_DB_USER_CAT,
                                       RMODEL_DB_USER_ORDERS, RMODEL_DB_ITEMS, RMODEL_DB_DAILY, RMODEL_DB_STREAMS };
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        MDB_stat st;
        if (mdb_stat(t->txn, t->env->dbi[dbs[i]], &st) != 0 || st.ms_entries != 0)
            return 0;
    }
    return 1;
}

int rmodel_txn_begin_bulk(struct rmodel_env *env, size_t rows, struct rmodel_txn **out)
{
    int rc = rmodel_txn_begin(env, 0, out);
    if (rc == 0)
        rmodel_cache_bulk(env->cache, rmodel_env_projections_empty(*out), rows);
    return rc;
}

size_t rmodel_txn_bytes(const struct rmodel_txn *txn)
{
    return txn->rdonly ? 0 : rmodel_cache_bytes(txn->env->cache);
}

void rmodel_txn_free(struct rmodel_txn *t)
{
    sbuf_free(&t->key);
    sbuf_free(&t->val);
    sbuf_free(&t->json);
    sbuf_free(&t->reason);
    sbuf_free(&t->ubuf);
    sbuf_free(&t->ibuf);
    sbuf_free(&t->obuf);
    sbuf_free(&t->upc);
    rmodel_ev_free(&t->ev);
    free(t);
}

int rmodel_txn_commit(struct rmodel_txn *txn)
{
    int rc = rmodel_cache_flush(txn);
    if (rc) {
        rmodel_txn_abort(txn);
        return rc;
    }
    size_t id = mdb_txn_id(txn->txn);
    rc = ef_mdb_rc(mdb_txn_commit(txn->txn));
    if (!txn->rdonly) {
        /* A txn that wrote nothing commits without taking its id (the next one reuses
         * it): the kept rows then only stay valid if the env's last commit is this one. */
        MDB_envinfo info;
        if (rc == 0 && mdb_env_info(txn->env->env, &info) == 0 && info.me_last_txnid == id)
            rmodel_cache_committed(txn->env->cache, id);
        else
            rmodel_cache_reset(txn->env->cache);
    }
    rmodel_txn_free(txn);
    return rc;
}

void rmodel_txn_abort(struct rmodel_txn *txn)
{
    if (!txn)
        return;
    mdb_txn_abort(txn->txn);
    if (!txn->rdonly)
        rmodel_cache_reset(txn->env->cache); /* unflushed writes die with the txn */
    rmodel_txn_free(txn);
}

int rmodel_get_copy(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, struct sbuf *buf)
{
    return rmodel_cache_get(t, db, k, kn, buf);
}

int rmodel_get_ref(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, struct sbuf *buf,
                   const void **v, size_t *vn)
{
    return rmodel_cache_get_ref(t, db, k, kn, buf, v, vn);
}

int rmodel_put(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, const void *v, size_t vn)
{
    return rmodel_cache_put(t, db, k, kn, v, vn);
}

int rmodel_del(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn)
{
    return rmodel_cache_del(t, db, k, kn);
}

int rmodel_get_copy_raw(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, struct sbuf *buf)
{
    MDB_val key = { kn, (void *)k }, v;
    int rc = mdb_get(t->txn, t->env->dbi[db], &key, &v);
    if (rc == MDB_NOTFOUND)
        return RMODEL_ENOTFOUND;
    if (rc)
        return ef_mdb_rc(rc);
    sbuf_reset(buf);
    sbuf_append(buf, v.mv_data, v.mv_size);
    return 0;
}

int rmodel_put_raw(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, const void *v, size_t vn)
{
    MDB_val key = { kn, (void *)k }, val = { vn, (void *)v };
    return ef_mdb_rc(mdb_put(t->txn, t->env->dbi[db], &key, &val, 0));
}

int rmodel_del_raw(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn)
{
    MDB_val key = { kn, (void *)k };
    int rc = mdb_del(t->txn, t->env->dbi[db], &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : ef_mdb_rc(rc);
}

void rmodel_key2(struct sbuf *sb, const char *a, size_t an, const void *b, size_t bn)
{
    sbuf_reset(sb);
    sbuf_append(sb, a, an);
    sbuf_putc(sb, '\0');
    sbuf_append(sb, b, bn);
}

int rmodel_position(struct rmodel_txn *txn, uint64_t *pos)
{
    MDB_val k = { 8, (void *)"position" }, v;
    int rc = mdb_get(txn->txn, txn->env->dbi[RMODEL_DB_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        *pos = 0;
        return 0;
    }
    if (rc)
        return ef_mdb_rc(rc);
    if (v.mv_size != 8)
        return RMODEL_EFORMAT;
    struct rmodel_reader r = { v.mv_data, 8, 0 };
    *pos = rmodel_read_u64(&r);
    return 0;
}

int rmodel_set_position(struct rmodel_txn *txn, uint64_t pos)
{
    struct sbuf *b = &txn->val;
    sbuf_reset(b);
    rmodel_put_u64(b, pos);
    return rmodel_put(txn, RMODEL_DB_META, "position", 8, b->data, b->len);
}
