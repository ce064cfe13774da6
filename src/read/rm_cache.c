/* rm_cache: the write-back cache of a write transaction (rm_internal.h).
 *
 * The fold reads and rewrites the same few rows over and over: every order event loads
 * and stores its order, its user, its items, the user's category counters and the day.
 * Going to LMDB for each of those (a B-tree descent per get, a descent plus page copy per
 * put) was most of the fold's cost. Within one write transaction this cache holds the
 * newest value of every row of the cached databases that the transaction touched; the
 * dirty ones are written to LMDB, sorted by key, when the transaction commits (or when a
 * cursor is about to read a cached database, rm_cache_flush).
 *
 * Across transactions the clean rows stay (users, items and category counters are hot:
 * a batch then starts with them instead of reading them from LMDB again), but only as long
 * as this cache saw every commit to the environment: a write txn whose id is not the one
 * after the last commit seen here (another process wrote in between, e.g. eventfoldctl dlq)
 * starts from an empty cache. Orders are dropped (an order is rarely
 * touched by two batches) once the cache exceeds WC_KEEP_MAX rows, and everything if the
 * rest is still more than half of that.
 *
 * Invariants
 *  - Only write transactions use the cache, and only one write transaction per environment
 *    exists at a time (LMDB's writer lock), so the cache lives in the rm_env.
 *  - Between transactions every entry is clean and equals the committed value of txn
 *    `txnid`; an aborted txn empties the cache.
 *  - For a cached database, "the value of key k in this txn" is the cache entry when there
 *    is one (state PRESENT: its bytes; ABSENT: no such key), else LMDB's.
 *  - A dirty entry differs (or may differ) from LMDB's; a clean one equals it.
 *
 * The write-only indexes keyed by stream or user (streams, user_orders) are not cached but
 * buffered: their rows are appended to a list in put order and written with the dirty rows,
 * sorted, at the flush; reading such a database in a write txn flushes first. Their keys
 * arrive in random order (one stream or user after another), and sorted writes through one
 * cursor mostly land in the leaf page the cursor is on (see rm_cache_flush).
 *  - Between transactions the buffered list is empty.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "read/rm.h"
#include "read/rm_internal.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"
#include "util/xalloc.h"

enum { WC_EMPTY = 0, WC_PRESENT = 1, WC_ABSENT = 2 };

#define WC_CHUNK (256u << 10)

struct wc_entry {
    uint64_t hash;
    char *key;   /* arena memory: key bytes, then room for vcap value bytes */
    char *val;
    uint32_t klen, vlen, vcap;
    uint8_t db, state, dirty;
};

struct wc_chunk {
    struct wc_chunk *next;
    size_t used, cap;
    char mem[];
};

#define WC_RECENT 16 /* a power of two */

#define WC_KEEP_MAX 32768 /* rows kept across transactions at most */

struct rm_cache {
    struct wc_entry *slots; /* open addressing, linear probing; cap is a power of two */
    size_t cap, used;
    size_t txnid; /* the commit the kept rows reflect (0: none kept) */
    /* The dirty entries (rebuilt when the slots move), so that a commit visits only what
     * it writes, not the whole table the kept rows fill. */
    struct wc_entry **dirty;
    size_t ndirty, dirty_cap;
    /* The entries used last, by hash: an event gets and puts the same few rows several
     * times, and a hit here touches only memory that is already in the CPU cache instead
     * of a random slot of a table of megabytes. Cleared when the slots move. */
    struct wc_entry *recent[WC_RECENT];
    struct wc_chunk *chunks; /* arena of keys and values; the first is kept across txns */
    /* The buffered rows of write-only databases: key and value bytes in bytes, in put order. */
    struct wo_row *wo;
    size_t nwo, wo_cap;
    struct sbuf bytes;
};

struct wo_row {
    size_t off; /* key at bytes.data + off, then the value */
    uint32_t klen, vlen;
    uint8_t db;
};

/* Which databases are cached: those the fold reads back. Write-only indexes (streams,
 * positions, user_orders), the meta position and the dead letters go straight to LMDB. */
static int cached(enum rm_dbi db)
{
    return db == RM_DB_USERS || db == RM_DB_ITEMS || db == RM_DB_ORDERS || db == RM_DB_DAILY ||
           db == RM_DB_USER_CAT;
}

/* Which write-only databases are buffered until the flush (positions are appended in
 * order as they come, MDB_APPEND, so they gain nothing from it). */
static int buffered(enum rm_dbi db)
{
    return db == RM_DB_STREAMS || db == RM_DB_USER_ORDERS;
}

static void wo_clear(struct rm_cache *c)
{
    c->nwo = 0;
    sbuf_reset(&c->bytes);
}

static void wo_add(struct rm_cache *c, enum rm_dbi db, const void *k, size_t kn, const void *v,
                   size_t vn)
{
    if (c->nwo == c->wo_cap) {
        c->wo_cap = c->wo_cap ? 2 * c->wo_cap : 4096;
        c->wo = xrealloc(c->wo, c->wo_cap * sizeof *c->wo);
    }
    c->wo[c->nwo++] = (struct wo_row){ c->bytes.len, (uint32_t)kn, (uint32_t)vn, (uint8_t)db };
    sbuf_append(&c->bytes, k, kn);
    sbuf_append(&c->bytes, v, vn);
}

/* The keys are ids that clients choose, and the table is open addressing: with a hash
 * anyone can compute, a client could register ids that all land in one run of slots and
 * make every lookup walk it. So the hash is XXH3 keyed with a per-process random seed
 * (getrandom), which a client cannot learn. Early in boot, before the kernel's pool is
 * ready, the seed falls back to the clock, the pid and an address (logged). */
static uint64_t hash_seed;
static pthread_once_t hash_seed_once = PTHREAD_ONCE_INIT;

static void hash_seed_init(void)
{
    uint64_t s;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) == (ssize_t)sizeof s) {
        hash_seed = s;
        return;
    }
    LOG_WARN("getrandom failed, seeding the row cache's hash from the clock err=%s", strerror(errno));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t mix[3] = { (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec, (uint64_t)getpid(),
                        (uint64_t)(uintptr_t)&s };
    hash_seed = XXH3_64bits(mix, sizeof mix);
}

uint64_t rm_cache_hash(enum rm_dbi db, const void *k, size_t n)
{
    pthread_once(&hash_seed_once, hash_seed_init);
    return XXH3_64bits_withSeed(k, n, hash_seed + (uint64_t)db);
}

static uint64_t hash_key(enum rm_dbi db, const void *k, size_t n) { return rm_cache_hash(db, k, n); }

static char *arena_alloc(struct rm_cache *c, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    struct wc_chunk *ch = c->chunks;
    if (!ch || ch->cap - ch->used < n) {
        size_t cap = n > WC_CHUNK ? n : WC_CHUNK;
        struct wc_chunk *nc = xmalloc(sizeof *nc + cap);
        nc->cap = cap;
        nc->used = 0;
        nc->next = ch;
        c->chunks = nc;
        ch = nc;
    }
    char *p = ch->mem + ch->used;
    ch->used += n;
    return p;
}

static void grow(struct rm_cache *c);

/* The entry for (db, k): an existing one, or a new EMPTY-state one ready to fill. */
static struct wc_entry *slot(struct rm_cache *c, enum rm_dbi db, const void *k, size_t n)
{
    if (2 * (c->used + 1) > c->cap)
        grow(c);
    uint64_t h = hash_key(db, k, n);
    struct wc_entry **r = &c->recent[(h >> 40) & (WC_RECENT - 1)];
    if (*r && (*r)->hash == h && (*r)->db == db && (*r)->klen == n && memcmp((*r)->key, k, n) == 0)
        return *r;
    size_t mask = c->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct wc_entry *e = &c->slots[i];
        if (e->state == WC_EMPTY) {
            e->hash = h;
            e->db = (uint8_t)db;
            *r = e; /* filled by the caller, or left EMPTY (then it never matches: klen 0) */
            return e;
        }
        if (e->hash == h && e->db == db && e->klen == n && memcmp(e->key, k, n) == 0) {
            *r = e;
            return e;
        }
    }
}

static void grow(struct rm_cache *c)
{
    size_t ncap = c->cap ? 2 * c->cap : 4096;
    struct wc_entry *old = c->slots;
    size_t ocap = c->cap;
    memset(c->recent, 0, sizeof c->recent);
    c->slots = xcalloc(ncap, sizeof *c->slots);
    c->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].state == WC_EMPTY)
            continue;
        size_t j = (size_t)old[i].hash & (ncap - 1);
        while (c->slots[j].state != WC_EMPTY)
            j = (j + 1) & (ncap - 1);
        c->slots[j] = old[i];
    }
    free(old);
    c->ndirty = 0;
    for (size_t i = 0; i < ncap; i++)
        if (c->slots[i].state != WC_EMPTY && c->slots[i].dirty)
            c->dirty[c->ndirty++] = &c->slots[i]; /* fits: the same entries as before */
}

/* Stores value v (n bytes) in a new or existing entry e (whose key is set, or k to copy). */
static void set_value(struct rm_cache *c, struct wc_entry *e, const void *k, size_t kn,
                      const void *v, size_t n)
{
    assert(kn <= UINT32_MAX && n <= UINT32_MAX);
    if (e->state == WC_EMPTY || e->vcap < n) {
        /* Room to grow a little: counters and orders are rewritten at the same size. */
        size_t cap = n + 16;
        char *mem = arena_alloc(c, kn + cap);
        memcpy(mem, e->state == WC_EMPTY ? k : e->key, kn);
        if (e->state == WC_EMPTY)
            c->used++;
        e->key = mem;
        e->klen = (uint32_t)kn;
        e->val = mem + kn;
        e->vcap = (uint32_t)cap;
    }
    if (n)
        memcpy(e->val, v, n);
    e->vlen = (uint32_t)n;
}

static void mark_dirty(struct rm_cache *c, struct wc_entry *e)
{
    if (e->dirty)
        return;
    if (c->ndirty == c->dirty_cap) {
        c->dirty_cap = c->dirty_cap ? 2 * c->dirty_cap : 1024;
        c->dirty = xrealloc(c->dirty, c->dirty_cap * sizeof *c->dirty);
    }
    c->dirty[c->ndirty++] = e;
    e->dirty = 1;
}

struct rm_cache *rm_cache_new(void) { return xcalloc(1, sizeof(struct rm_cache)); }

void rm_cache_free(struct rm_cache *c)
{
    if (!c)
        return;
    while (c->chunks) {
        struct wc_chunk *n = c->chunks->next;
        free(c->chunks);
        c->chunks = n;
    }
    free(c->slots);
    free(c->dirty);
    free(c->wo);
    sbuf_free(&c->bytes);
    free(c);
}

void rm_cache_reset(struct rm_cache *c)
{
    if (!c)
        return;
    wo_clear(c);
    if (c->used == 0)
        return;
    memset(c->slots, 0, c->cap * sizeof *c->slots);
    memset(c->recent, 0, sizeof c->recent);
    c->used = 0;
    c->ndirty = 0;
    /* Keep one chunk (the newest) for the next txn; a big batch's extra memory goes. */
    struct wc_chunk *keep = c->chunks;
    struct wc_chunk *ch = keep->next;
    while (ch) {
        struct wc_chunk *n = ch->next;
        free(ch);
        ch = n;
    }
    keep->next = NULL;
    keep->used = 0;
}

/* Keeps the rows worth keeping after a commit: every row but orders, in a fresh table
 * and arena (so the memory of dropped rows goes too). */
static void keep_hot_rows(struct rm_cache *c)
{
    struct wc_entry *old = c->slots;
    size_t ocap = c->cap;
    struct wc_chunk *chunks = c->chunks;
    c->slots = xcalloc(ocap, sizeof *c->slots);
    c->chunks = NULL;
    c->used = 0;
    memset(c->recent, 0, sizeof c->recent);
    for (size_t i = 0; i < ocap; i++) {
        struct wc_entry *o = &old[i];
        if (o->state == WC_EMPTY || o->db == RM_DB_ORDERS)
            continue;
        assert(!o->dirty);
        struct wc_entry *e = slot(c, (enum rm_dbi)o->db, o->key, o->klen);
        set_value(c, e, o->key, o->klen, o->val, o->vlen);
        e->state = o->state;
    }
    free(old);
    while (chunks) {
        struct wc_chunk *n = chunks->next;
        free(chunks);
        chunks = n;
    }
}

void rm_cache_begin(struct rm_cache *c, size_t txnid)
{
    if (c && c->used && txnid != c->txnid + 1)
        rm_cache_reset(c); /* someone else committed since: the kept rows may be stale */
}

void rm_cache_committed(struct rm_cache *c, size_t txnid)
{
    if (!c || c->used == 0)
        return;
    assert(c->ndirty == 0 && c->nwo == 0);
    c->txnid = txnid;
    if (c->used <= WC_KEEP_MAX)
        return;
    keep_hot_rows(c);
    if (c->used > WC_KEEP_MAX / 2)
        rm_cache_reset(c);
}

void rm_cache_prefetch(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn)
{
    struct rm_cache *c = t->env->cache;
    if (t->rdonly || !cached(db) || c->cap == 0)
        return;
    uint64_t h = hash_key(db, k, kn);
    __builtin_prefetch(&c->slots[(size_t)h & (c->cap - 1)]);
}

/* A read or delete of a buffered database must see the rows put before it: they are
 * written out first (rare: the fold only puts into those). */
static int flush_if_buffered(struct rm_txn *t, enum rm_dbi db)
{
    return !t->rdonly && t->env->cache->nwo && buffered(db) ? rm_cache_flush(t) : 0;
}

int rm_cache_get(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn, struct sbuf *buf)
{
    struct rm_cache *c = t->env->cache;
    int rc = flush_if_buffered(t, db);
    if (rc)
        return rc;
    if (t->rdonly || !cached(db))
        return rm_get_copy_raw(t, db, k, kn, buf);
    struct wc_entry *e = slot(c, db, k, kn);
    if (e->state == WC_EMPTY) {
        rc = rm_get_copy_raw(t, db, k, kn, buf);
        if (rc && rc != RM_ENOTFOUND)
            return rc; /* e stays EMPTY: nothing was claimed */
        if (rc == RM_ENOTFOUND) {
            set_value(c, e, k, kn, NULL, 0);
            e->state = WC_ABSENT;
        } else {
            set_value(c, e, k, kn, buf->data, buf->len);
            e->state = WC_PRESENT;
        }
        e->dirty = 0;
        return rc;
    }
    if (e->state == WC_ABSENT)
        return RM_ENOTFOUND;
    sbuf_reset(buf);
    sbuf_append(buf, e->val, e->vlen);
    return 0;
}

int rm_cache_put(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn, const void *v, size_t vn)
{
    if (t->rdonly || (!cached(db) && !buffered(db)))
        return rm_put_raw(t, db, k, kn, v, vn);
    struct rm_cache *c = t->env->cache;
    if (kn == 0 || kn > 511) /* LMDB's key limit: report it now, as mdb_put would */
        return ef_mdb_rc(MDB_BAD_VALSIZE);
    if (buffered(db)) {
        if (vn > UINT32_MAX)
            return ef_mdb_rc(MDB_BAD_VALSIZE);
        wo_add(c, db, k, kn, v, vn);
        return 0;
    }
    struct wc_entry *e = slot(c, db, k, kn);
    set_value(c, e, k, kn, v, vn);
    e->state = WC_PRESENT;
    mark_dirty(c, e);
    return 0;
}

int rm_cache_del(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn)
{
    struct rm_cache *c = t->env->cache;
    int rc = flush_if_buffered(t, db);
    if (rc)
        return rc;
    if (t->rdonly || !cached(db) || kn == 0 || kn > 511) /* LMDB reports a bad key */
        return rm_del_raw(t, db, k, kn);
    struct wc_entry *e = slot(c, db, k, kn);
    if (e->state == WC_EMPTY)
        set_value(c, e, k, kn, NULL, 0);
    e->vlen = 0;
    e->state = WC_ABSENT;
    mark_dirty(c, e);
    return 0;
}

/* A row to write at the flush (a dirty entry, or a buffered row: e NULL) and its sort key:
 * the database, then the key's first 7 bytes (big-endian, zero-padded), which decides most
 * comparisons without touching the key; seq keeps equal keys in put order. */
struct wc_sorted {
    uint64_t pre;
    const char *key, *val;
    uint32_t klen, vlen;
    uint32_t seq;
    uint8_t db, present;
    struct wc_entry *e;
};

static uint64_t sort_prefix(uint8_t db, const char *key, uint32_t klen)
{
    uint64_t pre = (uint64_t)db << 56;
    for (uint32_t i = 0; i < 7 && i < klen; i++)
        pre |= (uint64_t)(unsigned char)key[i] << (48 - 8 * i);
    return pre;
}

/* LMDB's default key order (memcmp, then the shorter first), within a database. */
static int cmp_sorted(const void *a, const void *b)
{
    const struct wc_sorted *x = a, *y = b;
    if (x->pre != y->pre)
        return x->pre < y->pre ? -1 : 1;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int r = memcmp(x->key, y->key, n);
    if (r)
        return r;
    if (x->klen != y->klen)
        return x->klen < y->klen ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Writes one row through cursor c (on the row's database): its value, or its deletion (a
 * key LMDB does not have is already deleted). */
static int write_row(MDB_cursor *c, const struct wc_sorted *w)
{
    MDB_val k = { w->klen, (void *)w->key };
    if (w->present) {
        MDB_val v = { w->vlen, (void *)w->val };
        return ef_mdb_rc(mdb_cursor_put(c, &k, &v, 0));
    }
    int rc = mdb_cursor_get(c, &k, NULL, MDB_SET);
    if (rc == MDB_NOTFOUND)
        return 0;
    return ef_mdb_rc(rc ? rc : mdb_cursor_del(c, 0));
}

/* The rows to write, dirty entries then buffered rows, unsorted; *n gets their count. */
static struct wc_sorted *collect(struct rm_cache *c, size_t *n)
{
    size_t total = c->ndirty + c->nwo;
    assert(total <= UINT32_MAX);
    struct wc_sorted *w = xmalloc(total * sizeof *w);
    size_t k = 0;
    for (size_t i = 0; i < c->ndirty; i++, k++) {
        struct wc_entry *e = c->dirty[i];
        w[k] = (struct wc_sorted){ sort_prefix(e->db, e->key, e->klen), e->key, e->val, e->klen,
                                   e->vlen, (uint32_t)k, e->db, e->state == WC_PRESENT, e };
    }
    for (size_t i = 0; i < c->nwo; i++, k++) {
        const struct wo_row *r = &c->wo[i];
        const char *key = c->bytes.data + r->off;
        w[k] = (struct wc_sorted){ sort_prefix(r->db, key, r->klen), key, key + r->klen, r->klen,
                                   r->vlen, (uint32_t)k, r->db, 1, NULL };
    }
    *n = total;
    return w;
}

int rm_cache_flush(struct rm_txn *t)
{
    struct rm_cache *c = t->env->cache;
    if (t->rdonly || !c || (c->ndirty == 0 && c->nwo == 0))
        return 0;
    size_t n;
    struct wc_sorted *w = collect(c, &n);
    c->ndirty = 0;
    /* Sorted puts walk the B-trees in order, and through one cursor per database: when a
     * key falls inside the leaf page the cursor is on, LMDB searches that page only instead
     * of descending from the root (mdb_cursor_set), which sorted keys make the common case. */
    qsort(w, n, sizeof *w, cmp_sorted);
    int rc = 0;
    MDB_cursor *cur = NULL;
    int cur_db = -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (w[i].db != cur_db) {
            if (cur)
                mdb_cursor_close(cur);
            cur = NULL;
            rc = ef_mdb_rc(mdb_cursor_open(t->txn, t->env->dbi[w[i].db], &cur));
            if (rc)
                break;
            cur_db = w[i].db;
        }
        rc = write_row(cur, &w[i]);
    }
    if (cur)
        mdb_cursor_close(cur);
    for (size_t i = 0; i < n; i++)
        if (w[i].e)
            w[i].e->dirty = 0;
    free(w);
    wo_clear(c);
    /* Entries stay (clean) so later reads in this txn still hit; on an error the txn is
     * doomed anyway (callers abort it). */
    return rc;
}
