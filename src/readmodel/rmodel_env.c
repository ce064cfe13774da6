#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "readmodel/rmodel.h"
#include "readmodel/rmodel_internal.h"
#include "util/bootid.h"
#include "util/durable.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"
#include "util/xalloc.h"

const char *const rm_dbi_names[RM_DB_COUNT] = {
    "meta", "orders", "users", "user_cat", "user_orders",
    "items", "daily", "streams", "positions", "dlq",
};

#define RM_DEFAULT_MAP (256ull << 20)

const char *rm_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case RM_ENOTFOUND: return "not found";
    case RM_EFORMAT: return "read model value of an unknown format, or truncated";
    case RM_EBADARG: return "invalid argument";
    case RM_EORDER: return "record out of order";
    case RM_EUNSYNCED: return "read model had unsynced commits when the machine went down";
    default: break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    return mdb_strerror(err); /* LMDB's codes (MDB_KEYEXIST .. MDB_LAST_ERRCODE) */
}

static int check_format(struct rm_env *e, MDB_txn *txn)
{
    MDB_val k = { 6, (void *)"format" }, v;
    int rc = mdb_get(txn, e->dbi[RM_DB_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        if (e->read_only)
            return 0; /* a model that was never written: empty, position 0 */
        unsigned char f = RM_FORMAT;
        MDB_val fv = { 1, &f };
        return ef_mdb_rc(mdb_put(txn, e->dbi[RM_DB_META], &k, &fv, 0));
    }
    if (rc)
        return ef_mdb_rc(rc);
    return v.mv_size == 1 && *(unsigned char *)v.mv_data == RM_FORMAT ? 0 : RM_EFORMAT;
}

/* Opens every dbi in one txn (committed so the handles stay valid for the env's life). */
static int open_dbis(struct rm_env *e)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(e->env, NULL, e->read_only ? MDB_RDONLY : 0, &txn);
    if (rc)
        goto fail;
    for (int i = 0; i < RM_DB_COUNT; i++) {
        rc = mdb_dbi_open(txn, rm_dbi_names[i], e->read_only ? 0 : MDB_CREATE, &e->dbi[i]);
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
    return rc == MDB_NOTFOUND ? RM_ENOTFOUND : ef_mdb_rc(rc);
}

/* --- lazy sync (rm.h) ------------------------------------------------------------ */

static int marker_path(const char *dir, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", dir, RM_UNSYNCED_FILE);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* Reads the marker of dir: 0 when there is none (*present 0) or it is this boot's
 * (*present 1), RM_EUNSYNCED when it names another boot (or is unreadable garbage), or a
 * negative errno. boot is this boot's id ("": unknown, then any marker is distrusted). */
static int check_marker(const char *dir, const char *boot, int *present)
{
    char then[64];
    *present = 0;
    int rc = ef_read_small(dir, RM_UNSYNCED_FILE, then, sizeof then);
    if (rc < 0)
        return rc == -ENOENT ? 0 : rc;
    *present = 1;
    return boot[0] && strcmp(then, boot) == 0 ? 0 : RM_EUNSYNCED;
}

/* Writes the marker durably (file and directory entry) before any unsynced commit. A
 * short write is ENOSPC: the caller then falls back to synced commits. */
static int write_marker(struct rm_env *e)
{
    int rc = ef_write_durably(e->dir, RM_UNSYNCED_FILE, e->boot, strlen(e->boot));
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

int rm_env_lazy_sync(struct rm_env *env)
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

int rm_env_unsynced(const struct rm_env *env) { return env->lazy && env->unsynced; }

int rm_env_sync(struct rm_env *env)
{
    if (!rm_env_unsynced(env))
        return 0;
    int rc = mdb_env_sync(env->env, 1);
    if (rc)
        return ef_mdb_rc(rc);
    char path[4096];
    rc = marker_path(env->dir, path, sizeof path);
    if (rc == 0 && unlink(path) < 0 && errno != ENOENT)
        rc = -errno;
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
    int rc = mdb_env_set_maxdbs(env, RM_DB_COUNT);
    if (!rc)
        rc = mdb_env_set_mapsize(env, (size_t)*(uint64_t *)arg);
    if (!rc)
        rc = mdb_env_set_maxreaders(env, 512);
    return rc;
}

int rm_env_open(const char *dir, const struct rm_options *opt, struct rm_env **out)
{
    struct rm_env *e = xcalloc(1, sizeof *e);
    e->read_only = opt && opt->read_only;
    uint64_t map = opt && opt->map_bytes ? opt->map_bytes : RM_DEFAULT_MAP;
    /* MDB_NOTLS: query workers use one env from several threads, and a read txn is not
     * tied to a thread. MDB_NOMETASYNC: a commit fsyncs the data pages but not the meta
     * page; after a power loss the model may come back at the previous commit (never a
     * torn one: LMDB keeps two meta pages), which is safe because the position commits with
     * the data, and the tailer refolds from whatever position survived. */
    unsigned flags = MDB_NOTLS;
    flags |= e->read_only ? MDB_RDONLY : MDB_NOMETASYNC;
    int rc;
    /* Whoever opens a model checks its lazy-sync marker: nobody reads or writes a model
     * that may have been torn by a machine crash (rm.h, "Lazy sync"). */
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
        rc = ef_mdb_open_plain(dir, flags, 0644, setup_env, &map, &e->env);
    } else {
        /* The tailer (and rebuilds) write through a writable map when it can be reserved. */
        int why_not = 0;
        rc = ef_mdb_open(dir, flags, 0644, setup_env, &map, &e->env, &e->writemap, &why_not);
        if (rc == 0 && !e->writemap)
            LOG_WARN("read model: its map cannot be reserved on disk (%s): writing it without "
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
        e->cache = rm_cache_new();
    *out = e;
    return 0;
fail:
    rm_env_close(e);
    return ef_mdb_rc(rc);
}

void rm_env_close(struct rm_env *env)
{
    if (!env)
        return;
    if (env->env) {
        if (rm_env_unsynced(env))
            rm_env_sync(env); /* on failure the marker stays: safe, see rm.h */
        ef_mdb_close(env->env);
    }
    rm_cache_free(env->cache);
    free(env->dir);
    free(env);
}

int rm_env_reader_check(struct rm_env *env)
{
    int dead = 0;
    int rc = mdb_reader_check(env->env, &dead);
    return rc ? ef_mdb_rc(rc) : dead;
}

int rm_env_adopt_mapsize(struct rm_env *env)
{
    return ef_mdb_rc(mdb_env_set_mapsize(env->env, 0)); /* 0: the size in the file's meta page */
}

int rm_env_grow(struct rm_env *env, uint64_t *bytes)
{
    if (env->read_only)
        return RM_EBADARG;
    MDB_envinfo info;
    int rc = mdb_env_info(env->env, &info);
    if (rc)
        return ef_mdb_rc(rc);
    uint64_t size = (uint64_t)info.me_mapsize;
    if (size >= RM_MAX_MAP)
        return MDB_MAP_FULL;
    size = size * 2 > RM_MAX_MAP ? RM_MAX_MAP : size * 2;
    /* A writable map's blocks first (util/lmdb_map.h). The tailer is the model's only
     * writer, so a map written with write(2) needs none: its file grows page by page. */
    if (env->writemap && (rc = ef_mdb_reserve(env->env, (size_t)size)) != 0)
        return rc;
    rc = mdb_env_set_mapsize(env->env, (size_t)size);
    if (rc)
        return ef_mdb_rc(rc);
    *bytes = size;
    return 0;
}

int rm_env_copy(struct rm_env *env, const char *dst)
{
    return ef_mdb_rc(mdb_env_copy2(env->env, dst, MDB_CP_COMPACT));
}

int rm_txn_begin(struct rm_env *env, int rdonly, struct rm_txn **out)
{
    if (!rdonly && env->read_only)
        return RM_EBADARG;
    /* The marker must be on disk before LMDB may write any page of an unsynced commit
     * (pages can be spilled before the commit), so it is written here. */
    if (!rdonly && env->lazy && !env->unsynced) {
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
    MDB_txn *txn;
    int rc = mdb_txn_begin(env->env, NULL, rdonly ? MDB_RDONLY : 0, &txn);
    if (rc)
        return ef_mdb_rc(rc);
    if (!rdonly)
        rm_cache_begin(env->cache, mdb_txn_id(txn));
    struct rm_txn *t = xcalloc(1, sizeof *t);
    t->env = env;
    t->txn = txn;
    t->rdonly = rdonly;
    *out = t;
    return 0;
}

/* 1 when every database the cache holds or buffers is empty in txn (positions, meta and
 * dead letters are written straight to LMDB, so they do not count). */
static int projections_empty(struct rm_txn *t)
{
    static const enum rm_dbi dbs[] = { RM_DB_ORDERS, RM_DB_USERS, RM_DB_USER_CAT,
                                       RM_DB_USER_ORDERS, RM_DB_ITEMS, RM_DB_DAILY, RM_DB_STREAMS };
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        MDB_stat st;
        if (mdb_stat(t->txn, t->env->dbi[dbs[i]], &st) != 0 || st.ms_entries != 0)
            return 0;
    }
    return 1;
}

int rm_txn_begin_bulk(struct rm_env *env, size_t rows, struct rm_txn **out)
{
    int rc = rm_txn_begin(env, 0, out);
    if (rc == 0)
        rm_cache_bulk(env->cache, projections_empty(*out), rows);
    return rc;
}

size_t rm_txn_bytes(const struct rm_txn *txn)
{
    return txn->rdonly ? 0 : rm_cache_bytes(txn->env->cache);
}

static void txn_free(struct rm_txn *t)
{
    sbuf_free(&t->key);
    sbuf_free(&t->val);
    sbuf_free(&t->json);
    sbuf_free(&t->reason);
    sbuf_free(&t->ubuf);
    sbuf_free(&t->ibuf);
    sbuf_free(&t->obuf);
    sbuf_free(&t->upc);
    rm_ev_free(&t->ev);
    free(t);
}

int rm_txn_commit(struct rm_txn *txn)
{
    int rc = rm_cache_flush(txn);
    if (rc) {
        rm_txn_abort(txn);
        return rc;
    }
    size_t id = mdb_txn_id(txn->txn);
    rc = ef_mdb_rc(mdb_txn_commit(txn->txn));
    if (!txn->rdonly) {
        /* A txn that wrote nothing commits without taking its id (the next one reuses
         * it): the kept rows then only stay valid if the env's last commit is this one. */
        MDB_envinfo info;
        if (rc == 0 && mdb_env_info(txn->env->env, &info) == 0 && info.me_last_txnid == id)
            rm_cache_committed(txn->env->cache, id);
        else
            rm_cache_reset(txn->env->cache);
    }
    txn_free(txn);
    return rc;
}

void rm_txn_abort(struct rm_txn *txn)
{
    if (!txn)
        return;
    mdb_txn_abort(txn->txn);
    if (!txn->rdonly)
        rm_cache_reset(txn->env->cache); /* unflushed writes die with the txn */
    txn_free(txn);
}

int rm_get_copy(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn, struct sbuf *buf)
{
    return rm_cache_get(t, db, k, kn, buf);
}

int rm_put(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn, const void *v, size_t vn)
{
    return rm_cache_put(t, db, k, kn, v, vn);
}

int rm_del(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn)
{
    return rm_cache_del(t, db, k, kn);
}

int rm_get_copy_raw(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn, struct sbuf *buf)
{
    MDB_val key = { kn, (void *)k }, v;
    int rc = mdb_get(t->txn, t->env->dbi[db], &key, &v);
    if (rc == MDB_NOTFOUND)
        return RM_ENOTFOUND;
    if (rc)
        return ef_mdb_rc(rc);
    sbuf_reset(buf);
    sbuf_append(buf, v.mv_data, v.mv_size);
    return 0;
}

int rm_put_raw(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn, const void *v, size_t vn)
{
    MDB_val key = { kn, (void *)k }, val = { vn, (void *)v };
    return ef_mdb_rc(mdb_put(t->txn, t->env->dbi[db], &key, &val, 0));
}

int rm_del_raw(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn)
{
    MDB_val key = { kn, (void *)k };
    int rc = mdb_del(t->txn, t->env->dbi[db], &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : ef_mdb_rc(rc);
}

void rm_key2(struct sbuf *sb, const char *a, size_t an, const void *b, size_t bn)
{
    sbuf_reset(sb);
    sbuf_append(sb, a, an);
    sbuf_putc(sb, '\0');
    sbuf_append(sb, b, bn);
}

int rm_position(struct rm_txn *txn, uint64_t *pos)
{
    MDB_val k = { 8, (void *)"position" }, v;
    int rc = mdb_get(txn->txn, txn->env->dbi[RM_DB_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        *pos = 0;
        return 0;
    }
    if (rc)
        return ef_mdb_rc(rc);
    if (v.mv_size != 8)
        return RM_EFORMAT;
    struct rm_reader r = { v.mv_data, 8, 0 };
    *pos = rm_read_u64(&r);
    return 0;
}

int rm_set_position(struct rm_txn *txn, uint64_t pos)
{
    struct sbuf *b = &txn->val;
    sbuf_reset(b);
    rm_put_u64(b, pos);
    return rm_put(txn, RM_DB_META, "position", 8, b->data, b->len);
}
