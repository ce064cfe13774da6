#include <config.h>

#include "write/model.h"

#include <assert.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"
#include "util/path.h"
#include "util/xalloc.h"

enum { DBI_META, DBI_USERS, DBI_ITEMS, DBI_ORDERS, DBI_IDEM, DBI_IDEM_TIME };

static const char *const dbi_names[WM_NDBI] = {
    "meta", "users", "items", "orders", "idem", "idem_time",
};

struct wm {
    MDB_env *env;
    MDB_dbi dbi[WM_NDBI];
    /* mdb_env_set_mapsize() needs no transaction of this process to be open, and LMDB does
     * not check it. Command threads only resize under the log's append lock, which keeps
     * their own transactions out; the snapshot thread's copy (wm_copy) runs outside that
     * lock, so it holds this lock shared and every resize takes it exclusively. */
    pthread_rwlock_t map_lock;
    int writemap; /* opened with MDB_WRITEMAP, its map reserved on disk (util/lmdb_map.h) */
};

/* A wm with its lock ready and no env yet; NULL when the lock cannot be made. */
static struct wm *wm_new(void)
{
    struct wm *wm = xcalloc(1, sizeof *wm);
    if (pthread_rwlock_init(&wm->map_lock, NULL) != 0) {
        free(wm);
        return NULL;
    }
    return wm;
}

const char *wm_strerror(int err)
{
    switch (err) {
    case WM_ECORRUPT:
        return "write model value does not match its layout";
    case WM_EAHEAD:
        return "write model is ahead of the log";
    case WM_EAPPLY:
        return "log record cannot be applied to the write model";
    default:
        return ef_strerror_except(EF_ERR_WM, err);
    }
}

static void wm_map_lost(int rc) __attribute__((noreturn));

/* Opens every named database in one transaction (txn_flags: 0 or MDB_RDONLY; dbi_flags:
 * MDB_CREATE or 0) and commits it, which keeps the handles for the env's lifetime. */
static int open_dbis(struct wm *wm, unsigned txn_flags, unsigned dbi_flags)
{
    MDB_txn *txn;
    int rc = ef_mdb_rc(mdb_txn_begin(wm->env, NULL, txn_flags, &txn));
    if (rc)
        return rc;
    for (int i = 0; i < WM_NDBI; i++)
        if ((rc = ef_mdb_rc(mdb_dbi_open(txn, dbi_names[i], dbi_flags, &wm->dbi[i]))) != 0) {
            mdb_txn_abort(txn);
            return rc;
        }
    return ef_mdb_rc(mdb_txn_commit(txn));
}

static int setup_env(MDB_env *env, void *arg)
{
    return mdb_env_set_maxdbs(env, WM_NDBI);
}

int wm_open(const char *dir, uint64_t map_bytes, struct wm **out)
{
    struct wm *wm = wm_new();
    if (!wm)
        return -ENOMEM;
    int rc;
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        rc = -errno;
        goto fail;
    }
    /* MDB_NOSYNC: derived data, see the header. MDB_NOTLS: read txns are not tied to a
     * thread (the server may run handlers on several threads). */
    int why_not = 0;
    if ((rc = ef_mdb_rc(ef_mdb_open(dir, MDB_NOSYNC | MDB_NOTLS, 0640, (size_t)map_bytes,
                                    setup_env, NULL, &wm->env, &wm->writemap, &why_not))) != 0)
        goto fail;
    if (!wm->writemap)
        EFLOG_WARN("write model: its map cannot be reserved on disk (%s): writing it without "
                 "MDB_WRITEMAP, slower", ef_mdb_reserve_strerror(why_not));
    wm_reader_check(wm); /* stale slots of killed processes */
    if ((rc = open_dbis(wm, 0, MDB_CREATE)) != 0)
        goto fail;
    *out = wm;
    return 0;
fail:
    wm_close(wm);
    return rc;
}

void wm_close(struct wm *wm)
{
    if (!wm)
        return;
    ef_mdb_close(wm->env);
    pthread_rwlock_destroy(&wm->map_lock);
    free(wm);
}

int wm_destroy_files(const char *dir)
{
    static const char *const files[] = { "data.mdb", "lock.mdb" };
    char path[4200];
    for (size_t i = 0; i < 2; i++) {
        if (ef_path_join(path, sizeof path, dir, files[i]))
            return -ENAMETOOLONG;
        if (unlink(path) < 0 && errno != ENOENT)
            return -errno;
    }
    return 0;
}

/* mdb_env_set_mapsize() unmaps before it maps again: when the new mmap fails (no address
 * space: a 64-bit process near WM_MAP_MAX), the environment has no map left and any
 * further transaction would touch unmapped memory. That is out of memory in all but name,
 * handled as xmalloc handles it: the worker aborts and the master starts a fresh one,
 * which maps the configured size again. */
static void wm_map_lost(int rc)
{
    EFLOG_ERROR("write model: cannot map the environment again err=\"%s\"; aborting",
              mdb_strerror(rc));
    abort();
}

/* Resizes the map (0: adopt what other processes grew it to; never below the file: see
 * util/lmdb_map.h) with no transaction of this process open (map_lock, see struct wm).
 * 0, or -errno when the map could not grow (its blocks could not be reserved: it is
 * unchanged). */
static int set_mapsize(struct wm *wm, size_t bytes)
{
    int rc = pthread_rwlock_wrlock(&wm->map_lock);
    if (rc != 0)
        wm_map_lost(rc);
    rc = ef_mdb_set_mapsize(wm->env, bytes, wm->writemap);
    pthread_rwlock_unlock(&wm->map_lock);
    if (rc == MDB_PANIC)
        wm_map_lost(rc);
    return rc;
}

int wm_begin(struct wm *wm, int write, MDB_txn **txn)
{
    unsigned flags = write ? 0 : MDB_RDONLY;
    int rc = mdb_txn_begin(wm->env, NULL, flags, txn);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process grew the map (wm_grow) and has written past the end of ours:
         * take the size it recorded in the meta page and begin again. */
        /* The grower reserved it first (wm_grow); a writable map is stored into only once
         * its blocks are there, so set_mapsize checks rather than trusts. */
        if ((rc = set_mapsize(wm, 0)) != 0) {
            EFLOG_ERROR("write model: cannot reserve the adopted map err=\"%s\"", strerror(-rc));
            return rc;
        }
        EFLOG_INFO("write model map grown by another process, adopted bytes=%zu",
                   ef_mdb_mapsize(wm->env));
        rc = mdb_txn_begin(wm->env, NULL, flags, txn);
    }
    return ef_mdb_rc(rc);
}

int wm_grow(struct wm *wm)
{
    MDB_envinfo info;
    int rc = mdb_env_info(wm->env, &info);
    if (rc)
        return ef_mdb_rc(rc);
    size_t old = info.me_mapsize;
    /* First the size another process may have grown it to (0: the one in the meta page;
     * LMDB never goes below the data's size), then twice the larger of the two. */
    if ((rc = set_mapsize(wm, 0)) != 0) {
        EFLOG_ERROR("write model: cannot reserve the adopted map err=\"%s\"", strerror(-rc));
        return rc;
    }
    if ((rc = mdb_env_info(wm->env, &info)) != 0)
        return ef_mdb_rc(rc);
    size_t cur = info.me_mapsize > old ? info.me_mapsize : old;
    if (cur >= WM_MAP_MAX / 2) {
        EFLOG_ERROR("write model: map full and at its limit bytes=%zu max=%llu", cur,
                  (unsigned long long)WM_MAP_MAX);
        return MDB_MAP_FULL;
    }
    /* Blocks first, whatever this process's mode: another process may map it writable.
     * No fallocate on this filesystem means nobody does (ef_mdb_open). A writable map's
     * blocks are reserved by set_mapsize itself. */
    if ((!wm->writemap && (rc = ef_mdb_reserve(wm->env, cur * 2)) != 0 && rc != -EOPNOTSUPP) ||
        (rc = set_mapsize(wm, cur * 2)) != 0) {
        EFLOG_ERROR("write model: map full, and no disk space to grow it bytes=%zu err=\"%s\"",
                  cur * 2, strerror(-rc));
        return rc;
    }
    EFLOG_WARN("write model map full, grown old_bytes=%zu new_bytes=%zu", old, cur * 2);
    return 0;
}

int wm_reader_check(struct wm *wm)
{
    int dead = 0;
    if (mdb_reader_check(wm->env, &dead) != 0)
        return 0;
    if (dead)
        EFLOG_WARN("cleared stale write-model readers count=%d", dead);
    return dead;
}

const char *wm_dbi_name(int i) { return dbi_names[i]; }

int wm_dbi(struct wm *wm, int i, MDB_dbi *out)
{
    if (i < 0 || i >= WM_NDBI)
        return -EINVAL;
    *out = wm->dbi[i];
    return 0;
}

/* --- raw get/put ------------------------------------------------------------------ */

static MDB_val key_of(const char *s)
{
    MDB_val k = { strlen(s), (void *)s };
    return k;
}

/* 1 found, 0 absent, or a negative code. */
static int get(struct wm *wm, MDB_txn *txn, int db, MDB_val k, MDB_val *v)
{
    int rc = mdb_get(txn, wm->dbi[db], &k, v);
    if (rc == MDB_NOTFOUND)
        return 0;
    return rc ? ef_mdb_rc(rc) : 1;
}

static int put(struct wm *wm, MDB_txn *txn, int db, MDB_val k, const struct sbuf *v)
{
    MDB_val val = { v->len, v->data };
    return ef_mdb_rc(mdb_put(txn, wm->dbi[db], &k, &val, 0));
}

/* A bounds-checked reader over one value. */
struct rd {
    const unsigned char *p;
    size_t left;
    int bad;
};

static void rd_copy(struct rd *r, void *dst, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
}

static void rd_str(struct rd *r, char *dst, size_t n, size_t cap)
{
    if (n >= cap) {
        r->bad = 1;
        dst[0] = '\0';
        return;
    }
    rd_copy(r, dst, n);
    dst[r->bad ? 0 : n] = '\0';
}

static struct rd rd_start(MDB_val v)
{
    struct rd r = { v.mv_data, v.mv_size, 0 };
    uint8_t fmt = 0;
    rd_copy(&r, &fmt, 1);
    if (fmt != WM_FORMAT)
        r.bad = 1;
    return r;
}

#define PUT(sb, x) sbuf_append((sb), &(x), sizeof(x))

static void put_pad(struct sbuf *sb, size_t n)
{
    static const unsigned char zeros[8];
    assert(n <= sizeof zeros);
    sbuf_append(sb, zeros, n);
}

/* --- meta --------------------------------------------------------------------------- */

int wm_get_applied(struct wm *wm, MDB_txn *txn, uint64_t *pos)
{
    MDB_val v;
    int rc = get(wm, txn, DBI_META, key_of("applied"), &v);
    if (rc <= 0) {
        *pos = 0;
        return rc;
    }
    if (v.mv_size != sizeof *pos)
        return WM_ECORRUPT;
    memcpy(pos, v.mv_data, sizeof *pos);
    return 0;
}

int wm_set_applied(struct wm *wm, MDB_txn *txn, uint64_t pos)
{
    MDB_val k = key_of("applied"), v = { sizeof pos, &pos };
    return ef_mdb_rc(mdb_put(txn, wm->dbi[DBI_META], &k, &v, 0));
}

int wm_get_deposited(struct wm *wm, MDB_txn *txn, int64_t *total)
{
    MDB_val v;
    *total = 0;
    int rc = get(wm, txn, DBI_META, key_of("deposited"), &v);
    if (rc <= 0)
        return rc;
    if (v.mv_size != sizeof *total)
        return WM_ECORRUPT;
    memcpy(total, v.mv_data, sizeof *total);
    return *total < 0 ? WM_ECORRUPT : 1;
}

int wm_set_deposited(struct wm *wm, MDB_txn *txn, int64_t total)
{
    assert(total >= 0);
    MDB_val k = key_of("deposited"), v = { sizeof total, &total };
    return ef_mdb_rc(mdb_put(txn, wm->dbi[DBI_META], &k, &v, 0));
}

int wm_get_boot_id(struct wm *wm, MDB_txn *txn, char *out, size_t cap)
{
    MDB_val v;
    out[0] = '\0';
    int rc = get(wm, txn, DBI_META, key_of("boot_id"), &v);
    if (rc <= 0)
        return rc;
    if (v.mv_size >= cap)
        return WM_ECORRUPT;
    memcpy(out, v.mv_data, v.mv_size);
    out[v.mv_size] = '\0';
    return 0;
}

int wm_set_boot_id(struct wm *wm, MDB_txn *txn, const char *boot_id)
{
    MDB_val k = key_of("boot_id"), v = { strlen(boot_id), (void *)boot_id };
    return ef_mdb_rc(mdb_put(txn, wm->dbi[DBI_META], &k, &v, 0));
}

/* --- users ------------------------------------------------------------------------- */

int wm_get_user(struct wm *wm, MDB_txn *txn, const char *id, struct user_state *out)
{
    MDB_val v;
    int rc = get(wm, txn, DBI_USERS, key_of(id), &v);
    if (rc <= 0)
        return rc;
    struct rd r = rd_start(v);
    unsigned char pad[7];
    rd_copy(&r, pad, sizeof pad);
    rd_copy(&r, &out->balance, sizeof out->balance);
    rd_copy(&r, &out->version, sizeof out->version);
    return r.bad || r.left ? WM_ECORRUPT : 1;
}

int wm_put_user(struct wm *wm, MDB_txn *txn, const char *id, const struct user_state *u)
{
    assert(user_state_ok(u));
    struct sbuf sb = SBUF_INIT;
    uint8_t fmt = WM_FORMAT;
    PUT(&sb, fmt);
    put_pad(&sb, 7);
    PUT(&sb, u->balance);
    PUT(&sb, u->version);
    int rc = put(wm, txn, DBI_USERS, key_of(id), &sb);
    sbuf_free(&sb);
    return rc;
}

/* --- items ------------------------------------------------------------------------- */

int wm_get_item(struct wm *wm, MDB_txn *txn, const char *id, struct item_state *out)
{
    MDB_val v;
    int rc = get(wm, txn, DBI_ITEMS, key_of(id), &v);
    if (rc <= 0)
        return rc;
    struct rd r = rd_start(v);
    uint8_t pad1;
    uint16_t name_len, cat_len, pad2;
    rd_copy(&r, &pad1, 1);
    rd_copy(&r, &name_len, 2);
    rd_copy(&r, &cat_len, 2);
    rd_copy(&r, &pad2, 2);
    rd_copy(&r, &out->price, 8);
    rd_copy(&r, &out->available, 8);
    rd_copy(&r, &out->reserved, 8);
    rd_copy(&r, &out->sold, 8);
    rd_copy(&r, &out->version, 8);
    rd_str(&r, out->name, name_len, sizeof out->name);
    rd_str(&r, out->category, cat_len, sizeof out->category);
    return r.bad || r.left ? WM_ECORRUPT : 1;
}

int wm_put_item(struct wm *wm, MDB_txn *txn, const char *id, const struct item_state *it)
{
    assert(item_state_ok(it));
    struct sbuf sb = SBUF_INIT;
    uint8_t fmt = WM_FORMAT;
    uint16_t name_len = (uint16_t)strlen(it->name), cat_len = (uint16_t)strlen(it->category);
    PUT(&sb, fmt);
    put_pad(&sb, 1);
    PUT(&sb, name_len);
    PUT(&sb, cat_len);
    put_pad(&sb, 2);
    PUT(&sb, it->price);
    PUT(&sb, it->available);
    PUT(&sb, it->reserved);
    PUT(&sb, it->sold);
    PUT(&sb, it->version);
    sbuf_append(&sb, it->name, name_len);
    sbuf_append(&sb, it->category, cat_len);
    int rc = put(wm, txn, DBI_ITEMS, key_of(id), &sb);
    sbuf_free(&sb);
    return rc;
}

/* --- orders ------------------------------------------------------------------------ */

int wm_get_order(struct wm *wm, MDB_txn *txn, const char *id, struct order_state *out)
{
    MDB_val v;
    int rc = get(wm, txn, DBI_ORDERS, key_of(id), &v);
    if (rc <= 0)
        return rc;
    struct rd r = rd_start(v);
    uint8_t status;
    uint16_t nlines, user_len, pad;
    rd_copy(&r, &status, 1);
    rd_copy(&r, &nlines, 2);
    rd_copy(&r, &user_len, 2);
    rd_copy(&r, &pad, 2);
    rd_copy(&r, &out->amount, 8);
    rd_copy(&r, &out->version, 8);
    rd_str(&r, out->user_id, user_len, sizeof out->user_id);
    if (nlines < 1 || nlines > STATE_LINES_MAX || status < ORDER_CREATED || status > ORDER_CANCELLED)
        r.bad = 1;
    out->status = (enum order_status)status;
    out->nlines = r.bad ? 0 : nlines;
    for (size_t i = 0; i < out->nlines; i++) {
        struct order_line_state *l = &out->lines[i];
        uint8_t item_len;
        rd_copy(&r, &item_len, 1);
        rd_copy(&r, &l->quantity, 8);
        rd_copy(&r, &l->price, 8);
        rd_str(&r, l->item_id, item_len, sizeof l->item_id);
    }
    return r.bad || r.left ? WM_ECORRUPT : 1;
}

int wm_put_order(struct wm *wm, MDB_txn *txn, const char *id, const struct order_state *o)
{
    assert(order_state_ok(o));
    struct sbuf sb = SBUF_INIT;
    uint8_t fmt = WM_FORMAT, status = (uint8_t)o->status;
    uint16_t nlines = (uint16_t)o->nlines, user_len = (uint16_t)strlen(o->user_id);
    PUT(&sb, fmt);
    PUT(&sb, status);
    PUT(&sb, nlines);
    PUT(&sb, user_len);
    put_pad(&sb, 2);
    PUT(&sb, o->amount);
    PUT(&sb, o->version);
    sbuf_append(&sb, o->user_id, user_len);
    for (size_t i = 0; i < o->nlines; i++) {
        const struct order_line_state *l = &o->lines[i];
        uint8_t item_len = (uint8_t)strlen(l->item_id);
        PUT(&sb, item_len);
        PUT(&sb, l->quantity);
        PUT(&sb, l->price);
        sbuf_append(&sb, l->item_id, item_len);
    }
    int rc = put(wm, txn, DBI_ORDERS, key_of(id), &sb);
    sbuf_free(&sb);
    return rc;
}

/* --- idempotency ------------------------------------------------------------------- */

int wm_get_idem(struct wm *wm, MDB_txn *txn, const char *key, struct wm_idem *out)
{
    MDB_val v;
    int rc = get(wm, txn, DBI_IDEM, key_of(key), &v);
    if (rc <= 0)
        return rc;
    struct rd r = rd_start(v);
    uint8_t pad;
    uint16_t status;
    uint32_t body_len;
    rd_copy(&r, &pad, 1);
    rd_copy(&r, &status, 2);
    rd_copy(&r, &body_len, 4);
    rd_copy(&r, out->fingerprint, sizeof out->fingerprint);
    rd_copy(&r, &out->position, 8);
    rd_copy(&r, &out->version, 8);
    rd_copy(&r, &out->at_ms, 8);
    rd_str(&r, out->body, body_len, sizeof out->body);
    out->status = status;
    out->body_len = body_len;
    return r.bad || r.left ? WM_ECORRUPT : 1;
}

/* Key of the time index: big-endian time, so LMDB's byte order is time order. */
static void time_key(struct sbuf *sb, int64_t at_ms, const char *key)
{
    uint64_t t = at_ms < 0 ? 0 : (uint64_t)at_ms;
    unsigned char be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (unsigned char)(t >> (56 - 8 * i));
    sbuf_append(sb, be, 8);
    sbuf_puts(sb, key);
}

int wm_put_idem(struct wm *wm, MDB_txn *txn, const char *key, const struct wm_idem *e)
{
    assert(e->body_len <= WM_BODY_MAX);
    struct sbuf sb = SBUF_INIT, tk = SBUF_INIT;
    uint8_t fmt = WM_FORMAT;
    uint16_t status = (uint16_t)e->status;
    uint32_t body_len = (uint32_t)e->body_len;
    PUT(&sb, fmt);
    put_pad(&sb, 1);
    PUT(&sb, status);
    PUT(&sb, body_len);
    sbuf_append(&sb, e->fingerprint, sizeof e->fingerprint);
    PUT(&sb, e->position);
    PUT(&sb, e->version);
    PUT(&sb, e->at_ms);
    sbuf_append(&sb, e->body, e->body_len);
    int rc = put(wm, txn, DBI_IDEM, key_of(key), &sb);
    if (rc == 0) {
        time_key(&tk, e->at_ms, key);
        MDB_val k = { tk.len, tk.data }, empty = { 0, NULL };
        rc = ef_mdb_rc(mdb_put(txn, wm->dbi[DBI_IDEM_TIME], &k, &empty, 0));
    }
    sbuf_free(&sb);
    sbuf_free(&tk);
    return rc;
}

/* Deletes the idem entry named by one time-index key, unless the entry was replaced by a
 * newer one with the same key (its time then differs and its own index entry remains). */
static int prune_one(struct wm *wm, MDB_txn *txn, MDB_val tk, int64_t at_ms)
{
    char key[EV_IDEM_KEY_MAX + 1];
    size_t n = tk.mv_size - 8;
    if (n > EV_IDEM_KEY_MAX)
        return WM_ECORRUPT;
    memcpy(key, (char *)tk.mv_data + 8, n);
    key[n] = '\0';
    struct wm_idem *e = xmalloc(sizeof *e);
    int rc = wm_get_idem(wm, txn, key, e);
    if (rc == 1 && e->at_ms == at_ms) {
        MDB_val k = key_of(key);
        rc = ef_mdb_rc(mdb_del(txn, wm->dbi[DBI_IDEM], &k, NULL));
    }
    free(e);
    return rc < 0 ? rc : 0;
}

int wm_prune_idem(struct wm *wm, MDB_txn *txn, int64_t cutoff_ms, int max, int *pruned)
{
    MDB_cursor *cur;
    int n = 0;
    int rc = ef_mdb_rc(mdb_cursor_open(txn, wm->dbi[DBI_IDEM_TIME], &cur));
    if (rc)
        return rc;
    while (n < max) {
        MDB_val k, v;
        int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (g == MDB_NOTFOUND)
            break;
        if (g) {
            rc = ef_mdb_rc(g);
            break;
        }
        if (k.mv_size < 8) {
            rc = WM_ECORRUPT;
            break;
        }
        uint64_t t = 0;
        for (int i = 0; i < 8; i++)
            t = t << 8 | ((const unsigned char *)k.mv_data)[i];
        if (t >= (uint64_t)(cutoff_ms < 0 ? 0 : cutoff_ms))
            break;
        if ((rc = prune_one(wm, txn, k, (int64_t)t)) != 0 ||
            (rc = ef_mdb_rc(mdb_cursor_del(cur, 0))) != 0)
            break;
        n++;
    }
    mdb_cursor_close(cur);
    if (pruned)
        *pruned = n;
    return rc;
}

int wm_clear(struct wm *wm, MDB_txn *txn)
{
    for (int i = 0; i < WM_NDBI; i++) {
        int rc = ef_mdb_rc(mdb_drop(txn, wm->dbi[i], 0));
        if (rc)
            return rc;
    }
    return 0;
}

/* --- snapshots (write/wsnap.h) ------------------------------------------------------ */

int wm_copy(struct wm *wm, int fd)
{
    /* One read transaction inside LMDB: a consistent state, and writers are not blocked;
     * a resize waits for it (map_lock). */
    int rc = pthread_rwlock_rdlock(&wm->map_lock);
    if (rc)
        return -rc;
    rc = ef_mdb_rc(mdb_env_copyfd2(wm->env, fd, MDB_CP_COMPACT));
    pthread_rwlock_unlock(&wm->map_lock);
    return rc;
}

int wm_open_copy(const char *file, struct wm **out)
{
    struct wm *wm = wm_new();
    if (!wm)
        return -ENOMEM;
    int rc;
    if ((rc = ef_mdb_rc(mdb_env_create(&wm->env))) != 0 ||
        (rc = ef_mdb_rc(mdb_env_set_maxdbs(wm->env, WM_NDBI))) != 0)
        goto fail;
    /* NOLOCK: nobody writes a copy, and no lock file appears next to it. */
    if ((rc = ef_mdb_rc(mdb_env_open(wm->env, file,
                                  MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS, 0))) != 0 ||
        (rc = open_dbis(wm, MDB_RDONLY, 0)) != 0) /* MDB_NOTFOUND: not a write model */
        goto fail;
    *out = wm;
    return 0;
fail:
    wm_close(wm);
    return rc;
}
