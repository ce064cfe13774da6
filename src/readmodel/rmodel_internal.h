/* rm_internal: the environment and transaction structures shared by the files of src/read
 * that implement rm.h (environment, fold, queries, dead letters). Not for other modules. */
#ifndef EF_RM_INTERNAL_H
#define EF_RM_INTERNAL_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "readmodel/rmodel_event.h"
#include "readmodel/rmodel_layout.h"
#include "util/sbuf.h"

enum rm_dbi {
    RM_DB_META,
    RM_DB_ORDERS,
    RM_DB_USERS,
    RM_DB_USER_CAT,
    RM_DB_USER_ORDERS,
    RM_DB_ITEMS,
    RM_DB_DAILY,
    RM_DB_STREAMS,
    RM_DB_POSITIONS,
    RM_DB_DLQ,
    RM_DB_COUNT
};

/* The dbi names, in enum rm_dbi order (tests compare models dbi by dbi). */
extern const char *const rm_dbi_names[RM_DB_COUNT];

struct rm_cache;

struct rm_env {
    MDB_env *env;
    MDB_dbi dbi[RM_DB_COUNT];
    int read_only;
    int writemap; /* written through a writable map, its blocks reserved (util/lmdb_map.h) */
    struct rm_cache *cache; /* the write txn's row cache (rm_cache.c); NULL when read-only */
    /* Lazy sync (rm.h): lazy is set when the env was opened with MDB_NOSYNC; unsynced
     * while the marker file exists. boot is this boot's id, dir the env's directory. */
    int lazy, unsynced;
    char boot[64];
    char *dir;
};

/* Scratch buffers live in the txn so the fold allocates nothing per event once warm. */
struct rm_txn {
    struct rm_env *env;
    MDB_txn *txn;
    int rdonly;
    struct sbuf key, val, json, reason;
    struct sbuf ubuf, ibuf, obuf, upc; /* copies of a user, an item, an order; upcast text */
    struct rm_ev ev;                   /* the event being folded (parse state reused) */
    int64_t day_start;                 /* day_key is the UTC day of [day_start, +1 day) */
    char day_key[11];                  /* "" until the first daily_get */
    struct rm_daily day_new;           /* a transition's new day counters (rm_fold.c) */
};

/* mdb_get that copies the value into buf (so later puts cannot move it). Returns 0,
 * RM_ENOTFOUND, or an LMDB code. In a write txn, rows of the cached databases (users,
 * items, orders, daily, user_cat) are read from and written to the txn's row cache, and
 * rows put to the write-only indexes keyed by stream or user (streams, user_orders) are
 * buffered; both reach LMDB at commit: code that reads those databases with its own LMDB
 * cursor inside a write txn calls rm_cache_flush() first. */
int rm_get_copy(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn, struct sbuf *buf);
int rm_put(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn, const void *v, size_t vn);
/* Deletes a key; a missing key is not an error. */
int rm_del(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn);
/* The same, straight to LMDB (no cache). */
int rm_get_copy_raw(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn, struct sbuf *buf);
int rm_put_raw(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn, const void *v, size_t vn);
int rm_del_raw(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn);

/* The row cache of write txns (rm_cache.c). new/free own the cache; reset empties it
 * (discarding unflushed writes); flush writes the dirty rows to LMDB (0 or a store error:
 * then the txn must be aborted). get/put/del implement rm_get_copy/rm_put/rm_del. */
/* The cache's key hash: XXH3 keyed with this process's random seed (rm_cache.c says
 * why). Exposed for the tests. */
uint64_t rm_cache_hash(enum rm_dbi db, const void *k, size_t n);
struct rm_cache *rm_cache_new(void);
void rm_cache_free(struct rm_cache *c); /* accepts NULL */
void rm_cache_reset(struct rm_cache *c); /* accepts NULL */
/* A write txn with LMDB id txnid begins (the kept rows are dropped unless it directly
 * follows the last commit seen); one committed as txnid (flushed: every row is clean). */
void rm_cache_begin(struct rm_cache *c, size_t txnid);
void rm_cache_committed(struct rm_cache *c, size_t txnid);
int rm_cache_flush(struct rm_txn *t);
/* Bulk txn (rm_txn_begin_bulk): fresh when the cached and buffered databases are empty in
 * LMDB (the cache then answers every lookup itself and the flush appends); its table is
 * sized for rows rows. */
void rm_cache_bulk(struct rm_cache *c, int fresh, size_t rows);
/* Bytes the cache holds for the txn, including the sort array of its next flush. */
size_t rm_cache_bytes(const struct rm_cache *c);
/* A hint: the slot of (db, k) is about to be looked up (its cache line is fetched now, so
 * that the misses of an event's rows overlap instead of following one another). */
void rm_cache_prefetch(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn);
int rm_cache_get(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn, struct sbuf *buf);
int rm_cache_put(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn, const void *v, size_t vn);
int rm_cache_del(struct rm_txn *t, enum rm_dbi db, const void *k, size_t kn);
/* Builds "a NUL b" into sb (composite keys). */
void rm_key2(struct sbuf *sb, const char *a, size_t an, const void *b, size_t bn);

/* Order-stream logic shared by the fold and time travel: applies the parsed order event ev
 * (of record rec) to o, which is all-zero before the order's OrderCreated. OrderCreated v1
 * lines are upcast from the items of t (their text copied into t->upc, so o's strings point
 * into ev's tree, t->upc or whatever o pointed to before). Writes nothing to the store.
 * Returns 0, 1 with a reason in t->reason when the event cannot be applied (o unchanged),
 * or a negative code. */
int rm_order_apply(struct rm_txn *t, struct rm_order *o, const struct log_record *rec,
                   const struct rm_ev *ev);

/* Loads and decodes a user / item / order into the txn's copy buffer for it. */
int rm_load_user(struct rm_txn *t, struct rm_str id, struct rm_user *u);
int rm_load_item(struct rm_txn *t, struct rm_str id, struct rm_item *it);
int rm_load_order(struct rm_txn *t, struct rm_str id, struct rm_order *o);

/* Parses and applies rec to the projections only (no index, no dead letter): 0 applied,
 * 1 inapplicable (reason in t->reason, nothing written), negative on a store failure. */
int rm_fold_apply(struct rm_txn *t, const struct log_record *rec);
/* Records a dead letter for rec with the next id. */
int rm_dlq_add(struct rm_txn *t, const struct log_record *rec, const char *projection,
               const char *reason);

#endif
