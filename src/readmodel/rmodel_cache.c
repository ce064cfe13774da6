/* rmodel_cache: the write-back cache of a write transaction (rmodel_internal.h).
 *
 * The fold reads and rewrites the same few rows over and over: every order event loads
 * and stores its order, its user, its items, the user's category counters and the day.
 * Going to LMDB for each of those (a B-tree descent per get, a descent plus page copy per
 * put) was most of the fold's cost. Within one write transaction this cache holds the
 * newest value of every row of the cached databases that the transaction touched; the
 * dirty ones are written to LMDB, sorted by key, when the transaction commits (or when a
 * cursor is about to read a cached database, rmodel_cache_flush).
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
 *    exists at a time (LMDB's writer lock), so the cache lives in the rmodel_env.
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
 * cursor mostly land in the leaf page the cursor is on (see rmodel_cache_flush). A put to
 * the stream index is an entry that the flush merges into its row (rmodel_layout.h), so the
 * fold never reads that index.
 *  - Between transactions the buffered list is empty.
 *
 * Bulk transactions (rmodel_txn_begin_bulk: rebuilds) use the same cache, the same fold and the
 * same flush, without keeping rows across txns: every row the txn writes stays in memory
 * until its commit (the caller bounds that memory with rmodel_cache_bytes); when it ends its
 * table is freed and its arena's blocks are kept for the next bulk txn. Into a model whose
 * cached and buffered databases are empty ("fresh"), a row the cache does not hold does
 * not exist, so no lookup reaches LMDB; the first flush ends freshness (LMDB holds rows
 * from then on).
 *
 * The batches of a pipelined bulk load (rmodel_bulk.h) are folded in a txn that only reads
 * LMDB while another thread writes the batch before: their cache buffers every database
 * it does not cache (the position index as an array of locations, its records coming one
 * position after another), and looks a row it does not hold up in a filter of the keys
 * written (seen: a row no batch wrote does not exist), then in that batch's cache (back),
 * read-only, then in LMDB.
 *
 * Every flush writes its rows sorted, and appends (MDB_APPEND: no search, dense pages)
 * those sorted after the last key their database holds: all of them into an empty one.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
/* Inlined: the row cache hashes a short key several times per event, and a call into the
 * shared library per key cost more than hashing it (rebuilds 5% faster, bench/README.md). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "readmodel/rmodel.h"
#include "readmodel/rmodel_internal.h"
#include "util/bloom.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"
#include "util/xalloc.h"

enum { WC_EMPTY = 0, WC_PRESENT = 1, WC_ABSENT = 2 };

#define WC_CHUNK (256u << 10)
/* A bulk txn's memory comes in large blocks that the kernel may back with huge pages
 * (madvise): it is touched once, page after page, and faulting it in 4 KiB pages was a
 * large part of a rebuild's time (bench/README.md). */
#define WC_BULK_CHUNK (4u << 20)
#define WC_HUGE (2u << 20)

/* n bytes (any size), 2 MiB-aligned and marked for huge pages when big enough (a hint:
 * without transparent huge pages it is ordinary memory). Freed with free(). */
static void *huge_alloc(size_t n)
{
    if (n < WC_HUGE)
        return xmalloc(n);
    void *p;
    if (posix_memalign(&p, WC_HUGE, n) != 0)
        return xmalloc(n); /* aborts if memory is really short */
    (void)madvise(p, n & ~(size_t)(WC_HUGE - 1), MADV_HUGEPAGE);
    return p;
}

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

struct rmodel_cache {
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
    /* Their bytes, in chunks (appending never copies what was buffered before); the first
     * is kept when the list is emptied. */
    struct wc_chunk *wo_chunks;
    size_t wo_chunk_bytes;
    /* Bulk loading (rmodel_txn_begin_bulk). fresh: the cached and buffered databases were empty
     * in LMDB when the txn began and nothing was flushed since, so a row the cache does not
     * hold does not exist (no LMDB lookup). Cleared by the first flush and at the txn's end. */
    int fresh;
    int bulk;           /* a bulk txn is running: its rows go when it ends */
    /* Pipelined bulk loading (rmodel_bulk.h): the batch before this one, being written by
     * another thread, and only read here (find), never changed; a miss of this cache looks
     * there before LMDB. Every database but the cached ones is buffered (the fold's txn
     * only reads LMDB). seen: a filter of every key of the cached databases that this and
     * earlier batches wrote (or deleted: a needless lookup, no harm) into a model that had
     * none; a row is added as it turns dirty (NULL: LMDB is asked about every miss). */
    const struct rmodel_cache *back;
    int pipelined;
    struct ef_bloom *seen;
    size_t chunk_bytes; /* memory of the arena's chunks (rmodel_cache_bytes) */
    /* Memory of ended bulk txns, kept for the next one (a rebuild commits several): chunks
     * of WC_BULK_CHUNK bytes, and the flush's sort buffer. Touching new memory costs page
     * faults and zeroing; reusing it does not. Never more than one bulk txn used. */
    struct wc_chunk *spare;
    struct wc_entry *spare_slots; /* the table of the last bulk txn, spare_cap slots */
    size_t spare_cap;
    void *sort_buf;
    size_t sort_cap;
    /* The position index's entries since the last flush (rmodel_cache_put_position):
     * record pos_first + i is at locs[i]. Positions come one after another, so they need
     * no sort, and the flush writes them a row per RMODEL_POS_CHUNK. Kept (emptied) across
     * flushes. */
    uint64_t pos_first;
    struct rmodel_ploc *locs;
    size_t nlocs, locs_cap;
    /* The flush's rows, sorted: rows[i] describes row_at(i) (copied out once, in index
     * order, so that writing them in key order reads this array instead of entries
     * scattered over the table: that was a cache miss per row), order[k] is the k-th row
     * to write. Kept for the next bulk txn's flush like sort_buf. */
    struct wc_row *rows;
    uint32_t *order;
    size_t rows_cap;
};

/* A row to write at the flush: a dirty entry, or a buffered row. */
struct wc_row {
    const char *key, *val;
    uint32_t klen, vlen;
    uint8_t db, present;
};

struct wo_row {
    const char *key; /* in wo_chunks: the key, then the value */
    uint32_t klen, vlen;
    uint8_t db;
};

/* Which databases are cached: those the fold reads back. The write-only indexes are
 * buffered (streams, user_orders; positions as an array, rmodel_cache_put_position); the
 * meta position and the dead letters go straight to LMDB. */
static int cached(enum rmodel_dbi db)
{
    return db == RMODEL_DB_USERS || db == RMODEL_DB_ITEMS || db == RMODEL_DB_ORDERS || db == RMODEL_DB_DAILY ||
           db == RMODEL_DB_USER_CAT;
}

/* Which write-only databases are buffered as rows until the flush (positions are kept
 * apart, as an array: rmodel_cache_put_position). A pipelined batch buffers every database
 * it does not cache: its txn cannot write. */
static int buffered(const struct rmodel_cache *c, enum rmodel_dbi db)
{
    if (c->pipelined)
        return !cached(db);
    return db == RMODEL_DB_STREAMS || db == RMODEL_DB_USER_ORDERS;
}

/* n bytes from the chunk list *head (a new chunk of at least WC_CHUNK when the first is
 * full); *bytes counts the chunks' memory. */
static char *chunk_alloc(struct rmodel_cache *c, struct wc_chunk **head, size_t *bytes, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    struct wc_chunk *ch = *head;
    if (!ch || ch->cap - ch->used < n) {
        size_t least = c->bulk ? WC_BULK_CHUNK - sizeof *ch : WC_CHUNK;
        size_t cap = n > least ? n : least;
        struct wc_chunk *nc;
        if (c->bulk && cap == least && c->spare) {
            nc = c->spare;
            c->spare = nc->next;
        } else {
            nc = c->bulk ? huge_alloc(sizeof *nc + cap) : xmalloc(sizeof *nc + cap);
        }
        *bytes += sizeof *nc + cap;
        nc->cap = cap;
        nc->used = 0;
        nc->next = ch;
        *head = nc;
        ch = nc;
    }
    char *p = ch->mem + ch->used;
    ch->used += n;
    return p;
}

/* Gives the chunks of list back: bulk-sized ones to the spare list, the others to free(). */
static void chunks_release(struct rmodel_cache *c, struct wc_chunk *list)
{
    while (list) {
        struct wc_chunk *n = list->next;
        if (list->cap == WC_BULK_CHUNK - sizeof *list) {
            list->next = c->spare;
            c->spare = list;
        } else {
            free(list);
        }
        list = n;
    }
}

/* Frees every chunk of *head but the newest, which is emptied; *bytes follows. */
static void chunks_trim(struct wc_chunk **head, size_t *bytes)
{
    struct wc_chunk *keep = *head;
    if (!keep)
        return;
    for (struct wc_chunk *ch = keep->next, *next; ch; ch = next) {
        next = ch->next;
        free(ch);
    }
    keep->next = NULL;
    keep->used = 0;
    *bytes = sizeof *keep + keep->cap;
}

static void chunks_free(struct wc_chunk *ch)
{
    while (ch) {
        struct wc_chunk *n = ch->next;
        free(ch);
        ch = n;
    }
}

static void wo_clear(struct rmodel_cache *c)
{
    c->nwo = 0;
    c->nlocs = 0;
    if (c->bulk) {
        chunks_release(c, c->wo_chunks);
        c->wo_chunks = NULL;
        c->wo_chunk_bytes = 0;
        return;
    }
    chunks_trim(&c->wo_chunks, &c->wo_chunk_bytes);
}

static void wo_add(struct rmodel_cache *c, enum rmodel_dbi db, const void *k, size_t kn, const void *v,
                   size_t vn)
{
    if (c->nwo == c->wo_cap) {
        c->wo_cap = c->wo_cap ? 2 * c->wo_cap : 4096;
        c->wo = xrealloc(c->wo, c->wo_cap * sizeof *c->wo);
    }
    char *p = chunk_alloc(c, &c->wo_chunks, &c->wo_chunk_bytes, kn + vn);
    memcpy(p, k, kn);
    if (vn)
        memcpy(p + kn, v, vn);
    c->wo[c->nwo++] = (struct wo_row){ p, (uint32_t)kn, (uint32_t)vn, (uint8_t)db };
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
    EFLOG_WARN("getrandom failed, seeding the row cache's hash from the clock err=%s", strerror(errno));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t mix[3] = { (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec, (uint64_t)getpid(),
                        (uint64_t)(uintptr_t)&s };
    hash_seed = XXH3_64bits(mix, sizeof mix);
}

uint64_t rmodel_cache_hash(enum rmodel_dbi db, const void *k, size_t n)
{
    pthread_once(&hash_seed_once, hash_seed_init);
    return XXH3_64bits_withSeed(k, n, hash_seed + (uint64_t)db);
}

static uint64_t hash_key(enum rmodel_dbi db, const void *k, size_t n) { return rmodel_cache_hash(db, k, n); }

static char *arena_alloc(struct rmodel_cache *c, size_t n)
{
    return chunk_alloc(c, &c->chunks, &c->chunk_bytes, n);
}

static void grow(struct rmodel_cache *c);

/* 1 when entry e holds (db, k), whose hash is h. */
static int holds(const struct wc_entry *e, enum rmodel_dbi db, const void *k, size_t n, uint64_t h)
{
    return e->hash == h && e->db == db && e->klen == n && memcmp(e->key, k, n) == 0;
}

/* The slot of (db, k) with hash h in a table with a free slot: its entry, or the EMPTY
 * slot where it would go (linear probing). Changes nothing. */
static struct wc_entry *probe(const struct rmodel_cache *c, enum rmodel_dbi db, const void *k, size_t n,
                              uint64_t h)
{
    size_t mask = c->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct wc_entry *e = &c->slots[i];
        if (e->state == WC_EMPTY || holds(e, db, k, n, h))
            return e;
    }
}

/* The entry for (db, k): an existing one, or a new EMPTY-state one ready to fill. */
static struct wc_entry *slot(struct rmodel_cache *c, enum rmodel_dbi db, const void *k, size_t n)
{
    if (2 * (c->used + 1) > c->cap)
        grow(c);
    uint64_t h = hash_key(db, k, n);
    struct wc_entry **r = &c->recent[(h >> 40) & (WC_RECENT - 1)];
    if (*r && holds(*r, db, k, n, h))
        return *r;
    struct wc_entry *e = probe(c, db, k, n, h);
    if (e->state == WC_EMPTY) {
        e->hash = h;
        e->db = (uint8_t)db;
    }
    *r = e; /* an EMPTY one is filled by the caller, or left EMPTY (never matching: klen 0) */
    return e;
}

/* The entry for (db, k) with hash h, or NULL: a lookup that changes nothing (the back
 * cache of a pipelined batch is read by one thread while another writes it out). */
static const struct wc_entry *find(const struct rmodel_cache *c, enum rmodel_dbi db, const void *k,
                                   size_t n, uint64_t h)
{
    if (c->cap == 0)
        return NULL;
    const struct wc_entry *e = probe(c, db, k, n, h);
    return e->state == WC_EMPTY ? NULL : e;
}

static void resize(struct rmodel_cache *c, size_t ncap);

/* A live cache's table starts at the size it reaches anyway: WC_KEEP_MAX rows kept across
 * transactions, up to twice that within one before its commit drops the orders, at most
 * half full. Growing to it by doublings moved every entry into new memory each time, whose
 * pages the kernel zeroes at first touch: the last two doublings stopped a live tailer's
 * fold for 22 and 27 ms (bench/README.md). A table that size is calloc'ed memory mapped on
 * demand: a page costs its fault when a row first lands in it, not all at once. A bulk
 * txn's table grows from small, sized by what the rebuild holds. */
#define WC_LIVE_SLOTS (4 * (size_t)WC_KEEP_MAX)

static void grow(struct rmodel_cache *c)
{
    resize(c, c->cap ? 2 * c->cap : c->bulk ? 4096 : WC_LIVE_SLOTS);
}

/* Moves the entries into a table of ncap slots (a power of two, more than twice used). */
static void resize(struct rmodel_cache *c, size_t ncap)
{
    assert((ncap & (ncap - 1)) == 0 && ncap > 2 * c->used);
    struct wc_entry *old = c->slots;
    size_t ocap = c->cap;
    memset(c->recent, 0, sizeof c->recent);
    if (c->bulk) {
        if (c->spare_slots && c->spare_cap == ncap) {
            c->slots = c->spare_slots; /* touched already: no page faults */
        } else {
            free(c->spare_slots);
            c->slots = huge_alloc(ncap * sizeof *c->slots);
        }
        c->spare_slots = NULL;
        c->spare_cap = 0;
        memset(c->slots, 0, ncap * sizeof *c->slots);
    } else {
        c->slots = xcalloc(ncap, sizeof *c->slots);
    }
    c->cap = ncap;
    c->ndirty = 0;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].state == WC_EMPTY)
            continue;
        size_t j = (size_t)old[i].hash & (ncap - 1);
        while (c->slots[j].state != WC_EMPTY)
            j = (j + 1) & (ncap - 1);
        c->slots[j] = old[i];
        if (old[i].dirty)
            c->dirty[c->ndirty++] = &c->slots[j]; /* fits: the same entries as before */
    }
    free(old);
}

/* Stores value v (n bytes) in a new or existing entry e (whose key is set, or k to copy). */
static void set_value(struct rmodel_cache *c, struct wc_entry *e, const void *k, size_t kn,
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

static void mark_dirty(struct rmodel_cache *c, struct wc_entry *e)
{
    if (e->dirty)
        return;
    if (c->seen)
        ef_bloom_add(c->seen, e->hash); /* before it can reach LMDB: later batches ask */
    if (c->ndirty == c->dirty_cap) {
        c->dirty_cap = c->dirty_cap ? 2 * c->dirty_cap : 1024;
        c->dirty = xrealloc(c->dirty, c->dirty_cap * sizeof *c->dirty);
    }
    c->dirty[c->ndirty++] = e;
    e->dirty = 1;
}

struct rmodel_cache *rmodel_cache_new(void) { return xcalloc(1, sizeof(struct rmodel_cache)); }

void rmodel_cache_free(struct rmodel_cache *c)
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
    free(c->locs);
    chunks_free(c->wo_chunks);
    chunks_free(c->spare);
    free(c->spare_slots);
    free(c->sort_buf);
    free(c->rows);
    free(c->order);
    free(c);
}

/* Drops the rows of a bulk txn that ended: they are not worth keeping (a rebuild's next
 * txn reads few of them). Their memory is kept for the next bulk txn (the arena's blocks,
 * and the table, which it zeroes if it needs as many slots): new memory costs a page fault
 * and the kernel's zeroing per page touched. */
static void drop_bulk(struct rmodel_cache *c)
{
    free(c->spare_slots);
    c->spare_slots = c->slots; /* the next bulk txn's, if it needs as many */
    c->spare_cap = c->cap;
    c->slots = NULL;
    c->cap = c->used = c->ndirty = 0;
    memset(c->recent, 0, sizeof c->recent);
    chunks_release(c, c->chunks);
    c->chunks = NULL;
    c->chunk_bytes = 0;
    c->txnid = 0;
    c->bulk = c->fresh = c->pipelined = 0;
    c->back = NULL;
    c->seen = NULL;
}

void rmodel_cache_reset(struct rmodel_cache *c)
{
    if (!c)
        return;
    c->fresh = 0;
    wo_clear(c);
    if (c->bulk) {
        drop_bulk(c);
        return;
    }
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
    c->chunk_bytes = sizeof *keep + keep->cap;
}

/* Keeps the rows worth keeping after a commit: every row but orders. The table is emptied
 * in place and the kept entries put back, their keys and values copied into a new arena so
 * that the memory of the dropped rows goes. The table is not replaced: a new one of the
 * megabytes a busy cache reaches cost a page fault and the kernel's zeroing per page, 10 to
 * 19 ms of a live tailer's fold every 32 000 orders or so (bench/README.md). */
static void keep_hot_rows(struct rmodel_cache *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->cap; i++)
        n += c->slots[i].state != WC_EMPTY && c->slots[i].db != RMODEL_DB_ORDERS;
    struct wc_entry *hot = xmalloc((n ? n : 1) * sizeof *hot);
    n = 0;
    for (size_t i = 0; i < c->cap; i++) {
        const struct wc_entry *o = &c->slots[i];
        if (o->state != WC_EMPTY && o->db != RMODEL_DB_ORDERS) {
            assert(!o->dirty);
            hot[n++] = *o;
        }
    }
    struct wc_chunk *chunks = c->chunks; /* the kept rows' bytes until they are copied */
    c->chunks = NULL;
    c->chunk_bytes = 0;
    c->used = 0;
    memset(c->slots, 0, c->cap * sizeof *c->slots);
    memset(c->recent, 0, sizeof c->recent);
    for (size_t i = 0; i < n; i++) {
        const struct wc_entry *o = &hot[i];
        struct wc_entry *e = slot(c, (enum rmodel_dbi)o->db, o->key, o->klen);
        set_value(c, e, o->key, o->klen, o->val, o->vlen);
        e->state = o->state;
    }
    free(hot);
    chunks_free(chunks);
}

void rmodel_cache_begin(struct rmodel_cache *c, size_t txnid)
{
    if (c && c->used && txnid != c->txnid + 1)
        rmodel_cache_reset(c); /* someone else committed since: the kept rows may be stale */
}

void rmodel_cache_committed(struct rmodel_cache *c, size_t txnid)
{
    if (!c)
        return;
    c->fresh = 0;
    if (c->bulk) {
        drop_bulk(c);
        return;
    }
    if (c->used == 0)
        return;
    assert(c->ndirty == 0 && c->nwo == 0);
    c->txnid = txnid;
    if (c->used <= WC_KEEP_MAX)
        return;
    keep_hot_rows(c);
    if (c->used > WC_KEEP_MAX / 2)
        rmodel_cache_reset(c);
}

void rmodel_cache_prefetch(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn)
{
    struct rmodel_cache *c = t->env->cache;
    if (t->rdonly || !cached(db) || c->cap == 0)
        return;
    uint64_t h = hash_key(db, k, kn);
    __builtin_prefetch(&c->slots[(size_t)h & (c->cap - 1)]);
    /* A pipelined batch that misses looks in the batch before, then in the filter: a row
     * first touched in this batch costs those misses too (every new order does). */
    if (c->back && c->back->cap)
        __builtin_prefetch(&c->back->slots[(size_t)h & (c->back->cap - 1)]);
    if (c->seen)
        ef_bloom_prefetch(c->seen, h);
}

/* A read or delete of a buffered database must see the rows put before it: they are
 * written out first (rare: the fold only puts into those). */
static int flush_if_buffered(struct rmodel_txn *t, enum rmodel_dbi db)
{
    if (t->rdonly || !buffered(t->env->cache, db))
        return 0;
    if (t->env->cache->pipelined)
        return RMODEL_EBADARG; /* its rows are in batches not written yet: nothing to read */
    return t->env->cache->nwo ? rmodel_cache_flush(t) : 0;
}

/* A row this cache does not hold, in a pipelined batch: its value in the batch before
 * (the back cache), else whether an earlier batch can have written it. Returns 1 with e
 * filled (clean) from the back cache, 0 when LMDB must be asked, RMODEL_ENOTFOUND when the
 * row cannot exist. */
static int miss_elsewhere(struct rmodel_cache *c, struct wc_entry *e, enum rmodel_dbi db, const void *k,
                          size_t kn)
{
    uint64_t h = e->hash;
    /* The filter first: every row the batch before holds is either in it (written, or
     * read from a row some batch wrote) or absent, so a key no batch wrote is absent
     * without a probe of that batch's table (a cache miss per new row). */
    if (c->seen && !ef_bloom_maybe(c->seen, h))
        return RMODEL_ENOTFOUND;
    const struct wc_entry *b = c->back ? find(c->back, db, k, kn, h) : NULL;
    if (b) {
        set_value(c, e, k, kn, b->val, b->state == WC_PRESENT ? b->vlen : 0);
        e->state = b->state;
        e->dirty = 0;
        return 1;
    }
    if (c->fresh)
        return RMODEL_ENOTFOUND;
    return 0;
}

/* The entry of (db, k), a cached database, in write txn t: filled from the batch before
 * or LMDB when this cache did not hold it. 0 with *out PRESENT, RMODEL_ENOTFOUND (*out
 * ABSENT), or a store error (nothing claimed). */
static int load_entry(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, struct wc_entry **out)
{
    struct rmodel_cache *c = t->env->cache;
    struct wc_entry *e = slot(c, db, k, kn);
    *out = e;
    if (e->state == WC_PRESENT)
        return 0;
    if (e->state == WC_ABSENT)
        return RMODEL_ENOTFOUND;
    int rc = c->pipelined ? miss_elsewhere(c, e, db, k, kn) : 0;
    if (rc == 1)
        return e->state == WC_ABSENT ? RMODEL_ENOTFOUND : 0;
    MDB_val key = { kn, (void *)k }, v = { 0, NULL };
    if (rc == 0 && !c->fresh) {
        rc = mdb_get(t->txn, t->env->dbi[db], &key, &v);
        rc = rc == MDB_NOTFOUND ? RMODEL_ENOTFOUND : ef_mdb_rc(rc);
        if (rc && rc != RMODEL_ENOTFOUND)
            return rc; /* e stays EMPTY: nothing was claimed */
    } else {
        rc = RMODEL_ENOTFOUND;
    }
    /* Copied at once: LMDB's bytes are valid only until the txn's next put. */
    set_value(c, e, k, kn, v.mv_data, rc ? 0 : v.mv_size);
    e->state = rc ? WC_ABSENT : WC_PRESENT;
    e->dirty = 0;
    return rc;
}

int rmodel_cache_get(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, struct sbuf *buf)
{
    int rc = flush_if_buffered(t, db);
    if (rc)
        return rc;
    if (t->rdonly || !cached(db))
        return rmodel_get_copy_raw(t, db, k, kn, buf);
    struct wc_entry *e;
    if ((rc = load_entry(t, db, k, kn, &e)) != 0)
        return rc;
    sbuf_reset(buf);
    sbuf_append(buf, e->val, e->vlen);
    return 0;
}

int rmodel_cache_get_ref(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, struct sbuf *buf,
                         const void **v, size_t *vn)
{
    if (t->rdonly) { /* LMDB's own bytes: a read txn's pages do not move */
        MDB_val key = { kn, (void *)k }, val;
        int rc = mdb_get(t->txn, t->env->dbi[db], &key, &val);
        if (rc)
            return rc == MDB_NOTFOUND ? RMODEL_ENOTFOUND : ef_mdb_rc(rc);
        *v = val.mv_data;
        *vn = val.mv_size;
        return 0;
    }
    if (!cached(db)) {
        int rc = rmodel_cache_get(t, db, k, kn, buf);
        *v = buf->data;
        *vn = buf->len;
        return rc;
    }
    struct wc_entry *e;
    int rc = load_entry(t, db, k, kn, &e);
    if (rc)
        return rc;
    *v = e->val;
    *vn = e->vlen;
    return 0;
}

int rmodel_cache_put(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, const void *v, size_t vn)
{
    if (t->rdonly || (!cached(db) && !buffered(t->env->cache, db)))
        return rmodel_put_raw(t, db, k, kn, v, vn);
    struct rmodel_cache *c = t->env->cache;
    if (kn == 0 || kn > 511) /* LMDB's key limit: report it now, as mdb_put would */
        return ef_mdb_rc(MDB_BAD_VALSIZE);
    if (buffered(c, db)) {
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

int rmodel_cache_put_position(struct rmodel_txn *t, uint64_t position, uint64_t segment, uint64_t offset)
{
    struct rmodel_cache *c = t->env->cache;
    if (t->rdonly)
        return RMODEL_EBADARG;
    if (c->nlocs == 0)
        c->pos_first = position;
    else if (position != c->pos_first + c->nlocs)
        return RMODEL_EBADARG; /* the tailer folds every position once, in order */
    if (c->nlocs == c->locs_cap) {
        c->locs_cap = c->locs_cap ? 2 * c->locs_cap : 1024;
        c->locs = xrealloc(c->locs, c->locs_cap * sizeof *c->locs);
    }
    c->locs[c->nlocs++] = (struct rmodel_ploc){ segment, offset };
    return 0;
}

int rmodel_cache_del(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn)
{
    struct rmodel_cache *c = t->env->cache;
    int rc = flush_if_buffered(t, db);
    if (rc)
        return rc;
    if (!t->rdonly && c->pipelined && !cached(db))
        return RMODEL_EBADARG; /* write-only databases: the fold never deletes from them */
    if (t->rdonly || !cached(db) || kn == 0 || kn > 511) /* LMDB reports a bad key */
        return rmodel_del_raw(t, db, k, kn);
    struct wc_entry *e = slot(c, db, k, kn);
    if (e->state == WC_EMPTY)
        set_value(c, e, k, kn, NULL, 0);
    e->vlen = 0;
    e->state = WC_ABSENT;
    mark_dirty(c, e);
    return 0;
}

/* Row i of the flush: the dirty entries (unique keys), then the buffered rows in put
 * order. Nothing is copied out: a flush of millions of rows (a bulk txn) sorts indexes. */
static struct wc_row row_at(const struct rmodel_cache *c, uint32_t i)
{
    if (i < c->ndirty) {
        const struct wc_entry *e = c->dirty[i];
        return (struct wc_row){ e->key, e->val, e->klen, e->vlen, e->db, e->state == WC_PRESENT };
    }
    const struct wo_row *r = &c->wo[i - c->ndirty];
    return (struct wc_row){ r->key, r->key + r->klen, r->klen, r->vlen, r->db, 1 };
}

/* LMDB's order of rows i and j: database, then key bytes (memcmp, the shorter first), then
 * put order. */
static int cmp_rows(const struct wc_row *rows, uint32_t i, uint32_t j)
{
    const struct wc_row x = rows[i], y = rows[j];
    if (x.db != y.db)
        return x.db < y.db ? -1 : 1;
    int r = memcmp(x.key, y.key, x.klen < y.klen ? x.klen : y.klen);
    if (r)
        return r;
    if (x.klen != y.klen)
        return x.klen < y.klen ? -1 : 1;
    return i < j ? -1 : i > j;
}

/* The flush's sort: rows in LMDB's order (database, then key bytes, the shorter key first
 * when one is a prefix of the other), equal keys in put order. A most-significant-byte-
 * first radix sort of small items (8 key bytes at a time, copied out of the rows so most
 * passes do not touch the keys), stable, on the "virtual key" of a row: its database byte
 * then its key. Keys share long prefixes ("order-o..."), which cost one counting pass per
 * shared byte and no comparisons; a comparison sort spent most of the flush there. */
struct rs_item {
    uint64_t pre;    /* the virtual key's bytes [depth, depth + 8), big-endian, 0-padded */
    const char *key; /* the row's key (its bytes 8 on are read from here, not via the row) */
    uint32_t len;    /* the virtual key's length */
    uint32_t idx;    /* the row's index: its put order */
};

#define RS_SMALL 24 /* buckets this small are insertion-sorted */

/* The virtual key's bytes [depth, depth + 8) of a row with database db and key. */
static uint64_t rs_pre(uint8_t db, const char *key, size_t len, size_t depth)
{
    uint64_t v = 0;
    for (size_t b = 0; b < 8 && depth + b < len; b++) {
        size_t d = depth + b;
        unsigned char ch = d == 0 ? db : (unsigned char)key[d - 1];
        v |= (uint64_t)ch << (56 - 8 * b);
    }
    return v;
}

/* Bucket of item x at byte sh of its pre: 0 when the key has ended, else the byte + 1. */
static unsigned rs_bucket(const struct rs_item *x, size_t depth, unsigned sh)
{
    return depth + sh < x->len ? (unsigned)(x->pre >> (56 - 8 * sh) & 0xff) + 1 : 0;
}

/* x before y? Both agree on their first depth bytes; pre holds the next 8 (zero-padded:
 * when the pres differ that decides, a padded key being a prefix of, or smaller than, the
 * other; when they are equal the lengths or the bytes beyond do). Equal keys: put order. */
static int rs_less(const struct rs_item *x, const struct rs_item *y, const struct wc_row *c,
                   size_t depth)
{
    if (x->pre != y->pre)
        return x->pre < y->pre;
    if (x->len <= depth + 8 || y->len <= depth + 8)
        return x->len != y->len ? x->len < y->len : x->idx < y->idx;
    return cmp_rows(c, x->idx, y->idx) < 0;
}

static void rs_insertion(struct rs_item *a, size_t n, const struct wc_row *c, size_t depth)
{
    for (size_t i = 1; i < n; i++) {
        struct rs_item x = a[i];
        size_t j = i;
        while (j > 0 && rs_less(&x, &a[j - 1], c, depth)) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/* Sorts a[0..n) whose virtual keys agree on their first depth + sh bytes. The largest
 * bucket is sorted by the loop itself and the others recursively, so the recursion is at
 * most log2(n) deep. Only the range of buckets in use is walked (keys are mostly a few
 * distinct bytes per position: digits, letters). */
static void rs_sort(struct rs_item *a, struct rs_item *tmp, size_t n, const struct wc_row *c,
                    size_t depth, unsigned sh)
{
    while (n > RS_SMALL) {
        if (sh == 8) {
            depth += 8;
            sh = 0;
            for (size_t i = 0; i < n; i++)
                a[i].pre = rs_pre(0, a[i].key, a[i].len, depth); /* depth > 0: no db */
        }
        /* Bytes every key has alike (a shared prefix: "order-o..." ) are skipped at once. */
        uint64_t diff = 0;
        uint32_t minlen = UINT32_MAX;
        for (size_t i = 0; i < n; i++) {
            diff |= a[i].pre ^ a[0].pre;
            minlen = a[i].len < minlen ? a[i].len : minlen;
        }
        size_t same = diff ? (size_t)__builtin_clzll(diff) / 8 : 8;
        size_t alive = minlen > depth ? minlen - depth : 0; /* bytes no key has ended within */
        if (same > alive)
            same = alive;
        if (same > sh) {
            sh = (unsigned)same;
            continue;
        }
        uint32_t count[257] = { 0 };
        unsigned lo = 256, hi = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned b = rs_bucket(&a[i], depth, sh);
            lo = b < lo ? b : lo;
            hi = b > hi ? b : hi;
            count[b]++;
        }
        if (lo == hi) {
            if (lo == 0)
                return; /* equal keys, already in put order */
            sh++;       /* one byte shared by all: the next one */
            continue;
        }
        size_t start[257], pos[257], at = 0;
        unsigned big = hi;
        for (unsigned b = lo; b <= hi; b++) {
            start[b] = pos[b] = at;
            at += count[b];
            if (b > 0 && count[b] > count[big])
                big = b;
        }
        for (size_t i = 0; i < n; i++)
            tmp[pos[rs_bucket(&a[i], depth, sh)]++] = a[i];
        memcpy(a, tmp, n * sizeof *a);
        for (unsigned b = lo > 0 ? lo : 1; b <= hi; b++)
            if (b != big && count[b] > 1)
                rs_sort(a + start[b], tmp + start[b], count[b], c, depth, sh + 1);
        a += start[big];
        tmp += start[big];
        n = count[big];
        sh++;
    }
    rs_insertion(a, n, c, depth);
}

/* Sorts the rows the flush will write: fills c->rows and c->order (their memory kept
 * for the next sort of a bulk txn). */
static void sort_rows(struct rmodel_cache *c)
{
    size_t n = c->ndirty + c->nwo;
    assert(n <= UINT32_MAX);
    struct rs_item *a;
    size_t need = (n ? n : 1) * 2 * sizeof *a;
    if (c->sort_cap < need) {
        free(c->sort_buf);
        c->sort_buf = huge_alloc(need);
        c->sort_cap = need;
    }
    a = c->sort_buf;
    if (c->rows_cap < n) {
        free(c->rows);
        free(c->order);
        c->rows_cap = n;
        c->rows = huge_alloc(n * sizeof *c->rows);
        c->order = huge_alloc(n * sizeof *c->order);
    }
    for (size_t i = 0; i < n; i++) {
        struct wc_row w = row_at(c, (uint32_t)i);
        c->rows[i] = w;
        a[i] = (struct rs_item){ rs_pre(w.db, w.key, (size_t)w.klen + 1, 0), w.key, w.klen + 1,
                                 (uint32_t)i };
    }
    rs_sort(a, a + n, n, c->rows, 0, 0);
    for (size_t i = 0; i < n; i++)
        c->order[i] = a[i].idx;
}

/* The sort's memory, after a flush of an ordinary txn (bulk ones keep it for the next). */
static void sort_release(struct rmodel_cache *c)
{
    if (c->bulk)
        return;
    free(c->sort_buf);
    free(c->rows);
    free(c->order);
    c->sort_buf = NULL;
    c->rows = NULL;
    c->order = NULL;
    c->sort_cap = c->rows_cap = 0;
}

/* Writes one row through cursor c (on the row's database): its value, or its deletion (a
 * key LMDB does not have is already deleted). */
static int write_row(MDB_cursor *c, const struct wc_row *w)
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

/* Into a database that was empty (a fresh bulk txn), sorted rows go at the end of the
 * B-tree: no search, and pages filled densely. */
static int append_row(MDB_cursor *c, const struct wc_row *w)
{
    MDB_val k = { w->klen, (void *)w->key }, v = { w->vlen, (void *)w->val };
    return ef_mdb_rc(mdb_cursor_put(c, &k, &v, MDB_APPEND));
}

/* Appending skips what a put-by-put write would not leave behind: a deletion (the key is
 * past every key of its database, so not in it), and a row whose key the next row puts
 * again (equal keys are sorted in put order, so the last one wins as it would by
 * overwriting). */
static int skip_append(const struct wc_row *x, const struct wc_row *next)
{
    if (!x->present)
        return 1;
    return next && next->db == x->db && next->klen == x->klen && memcmp(next->key, x->key, x->klen) == 0;
}

/* Rows from..to - 1 of the flush (in key order) put entries to one row of the stream index
 * (rmodel_layout.h): the row written holds LMDB's entries (unless appending: the key is
 * past every key there), then theirs, one per slot. scratch: the value's memory. */
static int merge_stream_row(MDB_cursor *cur, const struct wc_row *rows, const uint32_t *order, size_t from,
                            size_t to, int append, struct sbuf *scratch)
{
    uint64_t pos[RMODEL_STREAM_CHUNK] = { 0 };
    const struct wc_row *x = &rows[order[from]];
    MDB_val k = { x->klen, (void *)x->key }, v;
    int rc = 0;
    if (!append) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET);
        if (rc == 0)
            rc = rmodel_stream_merge(v.mv_data, v.mv_size, 1, pos);
        else if (rc == MDB_NOTFOUND)
            rc = 0;
        else
            return ef_mdb_rc(rc);
    }
    for (size_t i = from; i < to && rc == 0; i++)
        rc = rmodel_stream_merge(rows[order[i]].val, rows[order[i]].vlen, 0, pos);
    if (rc)
        return rc;
    rmodel_stream_encode(pos, scratch);
    v = (MDB_val){ scratch->len, scratch->data };
    return ef_mdb_rc(mdb_cursor_put(cur, &k, &v, append ? MDB_APPEND : 0));
}

static int same_key(const struct wc_row *a, const struct wc_row *b)
{
    return a->db == b->db && a->klen == b->klen && memcmp(a->key, b->key, a->klen) == 0;
}

/* LMDB's default order of keys: bytes, then the shorter first. */
static int key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
    int r = memcmp(a, b, an < bn ? an : bn);
    return r ? r : (an > bn) - (an < bn);
}

/* The cursor's database's last key, copied into last (*has 0: the database is empty).
 * Copied: the page it points into may move while rows are written. */
static int last_key(MDB_cursor *cur, struct sbuf *last, int *has)
{
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    *has = rc == 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return ef_mdb_rc(rc);
    sbuf_reset(last);
    sbuf_append(last, k.mv_data, k.mv_size);
    return 0;
}

/* Writes the position index's rows of the positions c holds (c->locs), in position
 * order: the row of the first one continued where it ends (the rows before it are full),
 * then a row per RMODEL_POS_CHUNK positions, appended past the last key the index holds
 * (always, in a rebuild). A position the index already holds is replaced, with those
 * after it in its row. */
static int write_positions(const struct rmodel_cache *c, MDB_txn *txn, MDB_dbi dbi, struct sbuf *last,
                           struct sbuf *row)
{
    MDB_cursor *cur;
    int has_last = 0, rc = ef_mdb_rc(mdb_cursor_open(txn, dbi, &cur));
    if (rc)
        return rc;
    rc = last_key(cur, last, &has_last);
    for (size_t i = 0; i < c->nlocs && rc == 0;) {
        uint64_t first, slot;
        rmodel_pos_chunk(c->pos_first + i, &first, &slot);
        unsigned char be[8];
        rmodel_put_be64(be, first);
        struct rmodel_ploc prev;
        int has_prev = 0;
        sbuf_reset(row);
        if (slot > 0) { /* a row holds the positions before this one: continue it */
            MDB_val k = { 8, be }, v;
            uint64_t count = 0;
            size_t bytes = 0;
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
            if (rc == MDB_NOTFOUND)
                rc = RMODEL_EORDER; /* the index misses a position before pos_first */
            else if (rc)
                rc = ef_mdb_rc(rc);
            else if ((rc = rmodel_ploc_walk(v.mv_data, v.mv_size, slot, &count, &bytes, &prev)) == 0 &&
                     count != slot)
                rc = RMODEL_EORDER;
            if (rc)
                break;
            sbuf_append(row, v.mv_data, bytes);
            has_prev = 1;
        } else {
            rmodel_put_u8(row, RMODEL_VAL_V1);
        }
        for (; slot < RMODEL_POS_CHUNK && i < c->nlocs; slot++, i++) {
            rmodel_ploc_put(row, has_prev ? &prev : NULL, c->locs[i]);
            prev = c->locs[i];
            has_prev = 1;
        }
        struct wc_row w = { (const char *)be, row->data, 8, (uint32_t)row->len, RMODEL_DB_POSITIONS, 1 };
        if (has_last && key_cmp(be, 8, last->data, last->len) <= 0)
            rc = write_row(cur, &w);
        else
            rc = append_row(cur, &w);
    }
    mdb_cursor_close(cur);
    return rc;
}

/* Writes the dirty and buffered rows of c, sorted, into txn (dbi: the env's handles), and
 * leaves them clean (the buffered ones dropped). Sorted puts walk the B-trees in order,
 * and through one cursor per database: when a key falls inside the leaf page the cursor
 * is on, LMDB searches that page only instead of descending from the root
 * (mdb_cursor_set), which sorted keys make the common case. Rows sorted after every key
 * their database holds (all of them, into an empty database; an index keyed by position;
 * new ids greater than the old ones) are appended (MDB_APPEND): no search, and pages filled
 * densely. Reads nothing of c but its rows: the back cache of a pipelined batch is written
 * by one thread while another looks rows up in it. */
static int flush_rows(struct rmodel_cache *c, MDB_txn *txn, const MDB_dbi *dbi)
{
    size_t n = c->ndirty + c->nwo;
    sort_rows(c);
    const struct wc_row *rows = c->rows;
    const uint32_t *order = c->order;
    int rc = 0, append = 0, has_last = 0;
    struct sbuf last = SBUF_INIT, scratch = SBUF_INIT;
    MDB_cursor *cur = NULL;
    int cur_db = -1;
    struct wc_row x, next = n ? rows[order[0]] : (struct wc_row){ 0 };
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* Rows are read in key order, which is random in memory: fetch them ahead. */
        if (i + 16 < n)
            __builtin_prefetch(&rows[order[i + 16]]);
        if (i + 8 < n)
            __builtin_prefetch(rows[order[i + 8]].key);
        x = next;
        if (i + 1 < n)
            next = rows[order[i + 1]];
        if (x.db != cur_db) {
            if (cur)
                mdb_cursor_close(cur);
            cur = NULL;
            rc = ef_mdb_rc(mdb_cursor_open(txn, dbi[x.db], &cur));
            if (rc == 0)
                rc = last_key(cur, &last, &has_last);
            if (rc)
                break;
            cur_db = x.db;
            append = !has_last;
        }
        /* Sorted: once a row is past the last key, so are the rest of its database. */
        if (!append && key_cmp(x.key, x.klen, last.data, last.len) > 0)
            append = 1;
        if (x.db == RMODEL_DB_STREAMS) { /* entries, merged into their row */
            size_t to = i + 1;
            while (to < n && same_key(&rows[order[to]], &x))
                to++;
            rc = merge_stream_row(cur, rows, order, i, to, append, &scratch);
            i = to - 1;
            if (to < n)
                next = rows[order[to]];
            continue;
        }
        if (append && skip_append(&x, i + 1 < n ? &next : NULL))
            continue;
        rc = append ? append_row(cur, &x) : write_row(cur, &x);
    }
    if (cur)
        mdb_cursor_close(cur);
    cur = NULL;
    if (rc == 0 && c->nlocs)
        rc = write_positions(c, txn, dbi[RMODEL_DB_POSITIONS], &last, &scratch);
    sort_release(c);
    sbuf_free(&last);
    sbuf_free(&scratch);
    for (size_t i = 0; i < c->ndirty; i++)
        c->dirty[i]->dirty = 0;
    c->ndirty = 0;
    wo_clear(c);
    return rc;
}

int rmodel_cache_flush(struct rmodel_txn *t)
{
    struct rmodel_cache *c = t->env->cache;
    if (t->rdonly || !c || (c->ndirty == 0 && c->nwo == 0 && c->nlocs == 0))
        return 0;
    c->fresh = 0; /* LMDB holds rows now: later misses must look there */
    /* Entries stay (clean) so later reads in this txn still hit; on an error the txn is
     * doomed anyway (callers abort it). */
    return flush_rows(c, t->txn, t->env->dbi);
}

int rmodel_cache_write(struct rmodel_cache *c, MDB_txn *txn, const MDB_dbi *dbi)
{
    return c->ndirty == 0 && c->nwo == 0 && c->nlocs == 0 ? 0 : flush_rows(c, txn, dbi);
}

void rmodel_cache_pipeline(struct rmodel_cache *c, const struct rmodel_cache *back, struct ef_bloom *seen)
{
    c->pipelined = 1;
    c->fresh = 0;
    c->back = back;
    c->seen = seen;
}

void rmodel_cache_end_bulk(struct rmodel_cache *c)
{
    wo_clear(c);
    drop_bulk(c);
}

void rmodel_cache_bulk(struct rmodel_cache *c, int fresh, size_t rows)
{
    if (fresh)
        rmodel_cache_reset(c); /* kept rows of an empty model: none, or stale */
    c->fresh = fresh;
    c->bulk = 1;
    /* Sized once for the rows expected (at most half full), rather than doubled step by
     * step: each doubling moves every entry to a random slot of a new table. */
    size_t cap = 4096;
    while (cap / 2 < rows && cap < (SIZE_MAX / sizeof *c->slots) / 4)
        cap *= 2;
    if (cap > c->cap)
        resize(c, cap);
}

size_t rmodel_cache_bytes(const struct rmodel_cache *c)
{
    /* Everything the txn's rows hold, and the sort array the flush will allocate. */
    return c->chunk_bytes + c->cap * sizeof *c->slots + c->dirty_cap * sizeof *c->dirty +
           c->wo_cap * sizeof *c->wo + c->wo_chunk_bytes + c->locs_cap * sizeof *c->locs +
           (c->ndirty + c->nwo) * (2 * sizeof(struct rs_item) + sizeof(uint32_t) + sizeof(struct wc_row));
}
