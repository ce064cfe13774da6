/* rmodel_internal: the environment and transaction structures shared by the files of
 * src/readmodel that implement the rmodel_*.h headers (rmodel.h lists them). Not for other
 * modules. */
#ifndef EF_RM_INTERNAL_H
#define EF_RM_INTERNAL_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "readmodel/rmodel_event.h"
#include "readmodel/rmodel_layout.h"
#include "util/sbuf.h"

enum rmodel_dbi {
    RMODEL_DB_META,
    RMODEL_DB_ORDERS,
    RMODEL_DB_USERS,
    RMODEL_DB_USER_CAT,
    RMODEL_DB_USER_ORDERS,
    RMODEL_DB_ITEMS,
    RMODEL_DB_DAILY,
    RMODEL_DB_STREAMS,
    RMODEL_DB_POSITIONS,
    RMODEL_DB_DLQ,
    RMODEL_DB_COUNT
};

/* The dbi names, in enum rmodel_dbi order (tests compare models dbi by dbi). */
extern const char *const rmodel_dbi_names[RMODEL_DB_COUNT];

struct rmodel_cache;

struct rmodel_env {
    MDB_env *env;
    MDB_dbi dbi[RMODEL_DB_COUNT];
    int read_only;
    int writemap; /* written through a writable map, its blocks reserved (util/lmdb_map.h) */
    struct rmodel_cache *cache; /* the write txn's row cache (rmodel_cache.c); NULL when read-only */
    /* Lazy sync (rmodel_env.h): lazy is set when the env was opened with MDB_NOSYNC; unsynced
     * while the marker file exists. boot is this boot's id, dir the env's directory. */
    int lazy, unsynced;
    char boot[64];
    char *dir;
    /* A pipelined bulk load (rmodel_bulk.h) is running: the highest dead-letter id put in
     * its batches not committed yet (0: none), which LMDB cannot tell the fold. */
    int bulk;
    uint64_t dlq_pending;
};

/* Scratch buffers live in the txn so the fold allocates nothing per event once warm. */
struct rmodel_txn {
    struct rmodel_env *env;
    MDB_txn *txn;
    int rdonly;
    struct sbuf key, val, json, reason;
    struct sbuf ubuf, ibuf, obuf, upc; /* copies of a user, an item, an order; upcast text */
    struct rmodel_ev ev;                   /* the event being folded (parse state reused) */
    int64_t day_start;                 /* day_key is the UTC day of [day_start, +1 day) */
    char day_key[11];                  /* "" until the first daily_get */
    struct rmodel_daily day_new;           /* a transition's new day counters (rmodel_fold.c) */
};

/* mdb_get that copies the value into buf (so later puts cannot move it). Returns 0,
 * RMODEL_ENOTFOUND, or an LMDB code. In a write txn, rows of the cached databases (users,
 * items, orders, daily, user_cat) are read from and written to the txn's row cache, and
 * rows put to the write-only indexes keyed by stream or user (streams, user_orders) are
 * buffered; both reach LMDB at commit: code that reads those databases with its own LMDB
 * cursor inside a write txn calls rmodel_cache_flush() first. */
int rmodel_get_copy(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, struct sbuf *buf);
/* rmodel_get_copy without a copy where the value can be read in place: *v and *vn are the
 * value, valid until the txn ends; in a write txn a later put or delete of this row may
 * change those bytes in place, so decode what is needed before writing the row back. A
 * database the write cache does not hold is copied into buf (valid as long as buf is). */
int rmodel_get_ref(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, struct sbuf *buf,
                   const void **v, size_t *vn);
int rmodel_put(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, const void *v, size_t vn);
/* Deletes a key; a missing key is not an error. */
int rmodel_del(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn);
/* The same, straight to LMDB (no cache). */
int rmodel_get_copy_raw(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, struct sbuf *buf);
int rmodel_put_raw(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, const void *v, size_t vn);
int rmodel_del_raw(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn);

/* The row cache of write txns (rmodel_cache.c). new/free own the cache; reset empties it
 * (discarding unflushed writes); flush writes the dirty rows to LMDB (0 or a store error:
 * then the txn must be aborted). get/put/del implement rmodel_get_copy/rmodel_put/rmodel_del. */
/* The cache's key hash: XXH3 keyed with this process's random seed (rmodel_cache.c says
 * why). Exposed for the tests. */
uint64_t rmodel_cache_hash(enum rmodel_dbi db, const void *k, size_t n);
struct rmodel_cache *rmodel_cache_new(void);
void rmodel_cache_free(struct rmodel_cache *c); /* accepts NULL */
void rmodel_cache_reset(struct rmodel_cache *c); /* accepts NULL */
/* A write txn with LMDB id txnid begins (the kept rows are dropped unless it directly
 * follows the last commit seen); one committed as txnid (flushed: every row is clean). */
void rmodel_cache_begin(struct rmodel_cache *c, size_t txnid);
void rmodel_cache_committed(struct rmodel_cache *c, size_t txnid);
int rmodel_cache_flush(struct rmodel_txn *t);
/* Bulk txn (rmodel_txn_begin_bulk): fresh when the cached and buffered databases are empty in
 * LMDB (the cache then answers every lookup itself and the flush appends); its table is
 * sized for rows rows. */
void rmodel_cache_bulk(struct rmodel_cache *c, int fresh, size_t rows);
/* Bytes the cache holds for the txn, including the sort array of its next flush. */
size_t rmodel_cache_bytes(const struct rmodel_cache *c);
/* A hint: the slot of (db, k) is about to be looked up (its cache line is fetched now, so
 * that the misses of an event's rows overlap instead of following one another). */
void rmodel_cache_prefetch(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn);
int rmodel_cache_get(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, struct sbuf *buf);
/* rmodel_cache_get without the copy where it can: *v points at the row's value in the cache
 * (a write txn's cached databases) until the txn ends; a later put of the same row may
 * change those bytes (rmodel_get_ref). Elsewhere the value is copied into buf. */
int rmodel_cache_get_ref(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, struct sbuf *buf,
                         const void **v, size_t *vn);
int rmodel_cache_put(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn, const void *v, size_t vn);
int rmodel_cache_del(struct rmodel_txn *t, enum rmodel_dbi db, const void *k, size_t kn);
/* The position index's entry of a record, kept until the flush (write_positions writes a
 * row per RMODEL_POS_CHUNK positions). Records come one position after another: 0, or
 * RMODEL_EBADARG (a read-only txn, or not the position after the last one put). */
int rmodel_cache_put_position(struct rmodel_txn *t, uint64_t position, uint64_t segment, uint64_t offset);
/* Pipelined bulk loading (rmodel_bulk.c). write: writes c's rows into txn (dbi: the env's
 * handles) and leaves c with no row to write; reads nothing of c but those rows, so another
 * thread may look rows up in c meanwhile. pipeline: the cache of a batch folded in a txn
 * that only reads LMDB: every database it does not cache is buffered, and a row it does not
 * hold is looked up in back (the batch being written; NULL: none), then, unless seen
 * (NULL: no filter) says no batch wrote it, in LMDB; each row it writes is added to seen.
 * end_bulk: drops c's rows, keeping its memory for the next batch. */
int rmodel_cache_write(struct rmodel_cache *c, MDB_txn *txn, const MDB_dbi *dbi);
struct ef_bloom;
void rmodel_cache_pipeline(struct rmodel_cache *c, const struct rmodel_cache *back, struct ef_bloom *seen);
void rmodel_cache_end_bulk(struct rmodel_cache *c);
/* Begins env's LMDB write txn (writing the lazy-sync marker first when due). */
int rmodel_env_write_begin(struct rmodel_env *env, MDB_txn **txn);
/* 1 when the databases the cache holds or buffers are all empty in t. */
int rmodel_env_projections_empty(struct rmodel_txn *t);
/* Frees t's memory only (its LMDB txn ended already). */
void rmodel_txn_free(struct rmodel_txn *t);

/* Builds "a NUL b" into sb (composite keys). */
void rmodel_key2(struct sbuf *sb, const char *a, size_t an, const void *b, size_t bn);

/* Order-stream logic shared by the fold and time travel: applies the parsed order event ev
 * (of record rec) to o, which is all-zero before the order's OrderCreated. OrderCreated v1
 * lines are upcast from the items of t (their text copied into t->upc, so o's strings point
 * into ev's tree, t->upc or whatever o pointed to before). Writes nothing to the store.
 * Returns 0, 1 with a reason in t->reason when the event cannot be applied (o unchanged),
 * or a negative code. */
int rmodel_order_apply(struct rmodel_txn *t, struct rmodel_order *o, const struct log_record *rec,
                   const struct rmodel_ev *ev);

/* Appends order o (whose id is id) as GET /api/orders/{id} answers it: the query and time
 * travel render the same view. */
void rmodel_render_order_view(const struct rmodel_order *o, const char *id, size_t id_len,
                              struct sbuf *out);

/* Loads and decodes a user / item / order into the txn's copy buffer for it. */
int rmodel_load_user(struct rmodel_txn *t, struct rmodel_str id, struct rmodel_user *u);
int rmodel_load_item(struct rmodel_txn *t, struct rmodel_str id, struct rmodel_item *it);
int rmodel_load_order(struct rmodel_txn *t, struct rmodel_str id, struct rmodel_order *o);

/* Parses and applies rec to the projections only (no index, no dead letter): 0 applied,
 * 1 inapplicable (reason in t->reason, nothing written), negative on a store failure. */
int rmodel_fold_apply(struct rmodel_txn *t, const struct log_record *rec);
/* Records a dead letter for rec with the next id. */
int rmodel_dlq_add(struct rmodel_txn *t, const struct log_record *rec, const char *projection,
               const char *reason);

#endif
