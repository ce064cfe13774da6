/* rm: the read model, an LMDB environment holding every projection of API.md section 5.
 *
 * The read model is derived from the log only: rmodel_fold() applies one decoded, verified
 * record (struct log_record) to a write transaction, whatever the record's origin (a local
 * segment today, another transport tomorrow). The applied position is stored in the same
 * transaction as the projections, so a committed model is always exactly "the log folded up
 * to rmodel_position()": never between two positions.
 *
 * Databases (named dbis of one environment; value layouts in rmodel_layout.h):
 *   meta        "position" -> applied position, "format" -> layout version
 *   orders      order id -> order view (user, status, lines, amount, times, version)
 *   users       user id -> user summary (name, wallet, counters, last order time)
 *   user_cat    user id NUL category -> quantity over the user's placed orders
 *   user_orders user id NUL created position (u64 big-endian) -> order id
 *   items       item id -> item (name, category, price, restocked, reserved, sold)
 *   daily       "YYYY-MM-DD" -> created, paid, cancelled, revenue of that UTC day
 *   streams     stream NUL version (u64 big-endian) -> position, segment, offset
 *   positions   position (u64 big-endian) -> segment, offset
 *   dlq         dead-letter id (u64 big-endian) -> position, time, projection, reason
 *
 * Guarantees
 *  - rmodel_fold either applies the whole event, or (when the event cannot be applied: unknown
 *    type, schema it cannot upcast, data it cannot fold) applies nothing to the projections
 *    and records a dead letter instead. Every check that can dead-letter an event runs before
 *    its first write, so no event is ever half-applied.
 *  - Every event is indexed (streams, positions) even when dead-lettered: it is in the log.
 *
 * Caveats
 *  - Open the environment in the process (after fork()) that uses it. An rmodel_env may be shared
 *    by threads (it is opened with MDB_NOTLS); an rmodel_txn belongs to one thread.
 *  - Keep read transactions short (one per request): a long one pins old pages and grows
 *    the map.
 *  - Pointers returned into a transaction (rm_* views) are valid until it ends.
 */
#ifndef EF_RM_H
#define EF_RM_H

#include <stddef.h>
#include <stdint.h>

#include "log/record.h"
#include "util/sbuf.h"

/* Error codes: 0 is success; negative errno values; LMDB's own codes (MDB_MAP_FULL, ...,
 * all negative) are passed through; and these (the read model's range in util/ef_error.h). */
enum {
    RMODEL_ENOTFOUND = -11001, /* no such user, item, order, stream, dead letter */
    RMODEL_EFORMAT = -11002,   /* a stored value of an unknown layout version, or truncated */
    RMODEL_EBADARG = -11003,   /* invalid argument */
    RMODEL_EORDER = -11004,    /* a record at an unexpected position (not applied + 1) */
    RMODEL_EUNSYNCED = -11005, /* the machine went down while the model had unsynced commits */
};

/* Returns a static description of a code: the read model's own, or ef_strerror()'s for any
 * other (errno values, LMDB's codes, other modules'). */
const char *rmodel_strerror(int err);

#define RMODEL_FORMAT 1 /* layout version stored in meta "format" */

struct rmodel_env;
struct rmodel_txn;

/* The map size a model opens with when its options name none (a model file written with a
 * larger map keeps the size recorded in it: LMDB does not shrink a map on open). */
#define RMODEL_DEFAULT_MAP (256ull << 20)

struct rmodel_options {
    uint64_t map_bytes; /* LMDB map size; 0: RMODEL_DEFAULT_MAP; the tailer grows it when full */
    int read_only;      /* MDB_RDONLY: query workers, status */
};

/* Lazy sync (the tailer's environments).
 *
 * A commit that fsyncs its pages costs milliseconds, more while the log's group commit
 * competes for the disk, and every read-your-writes query waits for it. The read model
 * does not need that durability: it is derived from the durable log (API.md section 7)
 * and can be refolded. What it needs is to be consistent whenever it is read:
 *
 *  - A process crash (kill -9) with MDB_NOSYNC loses nothing: LMDB writes the data pages
 *    and then the meta page with write(2), or stores them into its writable map
 *    (MDB_WRITEMAP, util/lmdb_map.h), all of it in the page cache, which outlives the
 *    process; the model is exactly its last commit, with the position in the same commit
 *    (an unfinished transaction's pages are free pages no commit refers to).
 *  - A machine crash (power loss, kernel panic) can leave on disk a meta page whose pages
 *    were never written, or pages of the last tree overwritten by later commits: the
 *    environment may be corrupt (MDB_NOMETASYNC alone would keep it consistent, at the cost
 *    of one fdatasync per commit).
 *
 * So a lazy environment keeps a marker file DIR/unsynced (RMODEL_UNSYNCED_FILE) holding the
 * kernel's boot id whenever it may have commits that are not on disk: the marker is written
 * and fsynced before the first write transaction after a sync begins (before LMDB can
 * write any page, spilled ones included), and removed only after rmodel_env_sync() made
 * everything durable (the tailer syncs when idle and on close). rmodel_env_open() then refuses
 * (RMODEL_EUNSYNCED) a model whose marker names another boot: the machine went down while
 * it was dirty, so it cannot be trusted and must be replaced (fold/model_switch.h). A marker of
 * this boot only means a process died, which loses nothing. Without a readable boot id,
 * rmodel_env_lazy_sync() leaves the commits synced (MDB_NOMETASYNC); so does a marker that
 * cannot be written for a full disk (until the env is reopened). */
#define RMODEL_UNSYNCED_FILE "unsynced"

/* Opens (creating when not read_only) the environment in directory dir, which must exist.
 * Read-only: -ENOENT when there is no data.mdb, RMODEL_ENOTFOUND when its databases were never
 * created (a model nobody has initialized yet).
 * Checks the stored layout version (RMODEL_EFORMAT if it is not RMODEL_FORMAT). Clears stale reader
 * slots (mdb_reader_check). A writable env is written through a writable map when the
 * map's blocks can be reserved on disk, and through write(2) otherwise (util/lmdb_map.h).
 * *out is owned by the caller, freed by rmodel_env_close(). */
int rmodel_env_open(const char *dir, const struct rmodel_options *opt, struct rmodel_env **out);
/* Closes env; a lazy env is synced first (best effort: on failure the marker stays, so the
 * model is distrusted only after a machine crash). Accepts NULL. */
void rmodel_env_close(struct rmodel_env *env);
/* Clears reader slots of dead processes; returns how many, or a negative code. */
int rmodel_env_reader_check(struct rmodel_env *env);
/* Adopts the map size another process grew the environment to (after MDB_MAP_RESIZED from
 * rmodel_txn_begin). No transaction of this process may be active: callers exclude them. */
int rmodel_env_adopt_mapsize(struct rmodel_env *env);
/* Doubles the map of a writable env after MDB_MAP_FULL (at most RMODEL_MAX_MAP); *bytes gets
 * the new size. Readers in other processes adopt it on their next transaction
 * (MDB_MAP_RESIZED). No transaction of this process may be active. MDB_MAP_FULL when the
 * map is at its maximum already; -ENOSPC (-EDQUOT) when the disk cannot hold the larger
 * map, whose blocks are reserved before it grows (util/lmdb_map.h). */
#define RMODEL_MAX_MAP (1ull << 46) /* 64 TiB, as the write model */
int rmodel_env_grow(struct rmodel_env *env, uint64_t *bytes);
/* How much of the map the data uses (up to its last page, committed) and the map's size,
 * in bytes. 0 or an LMDB code. */
int rmodel_env_usage(struct rmodel_env *env, uint64_t *used, uint64_t *map);
/* Copies the environment, compacted, into directory dst (which must exist and be empty). */
int rmodel_env_copy(struct rmodel_env *env, const char *dst);
/* Turns lazy sync on for a writable env (right after rmodel_env_open, before any txn): its
 * commits no longer wait for the disk. Returns 1 if on, 0 if not possible (read-only, or
 * no boot id to tell a machine crash from a process crash), or a negative code. */
int rmodel_env_lazy_sync(struct rmodel_env *env);
/* Lazy sync: 1 when commits may be missing from the disk (the marker is present). */
int rmodel_env_unsynced(const struct rmodel_env *env);
/* Lazy sync: makes every commit durable and removes the marker. No write txn of this
 * process may be active. 0 (also for an env that is not lazy or has nothing to sync), or a
 * negative code (the marker then stays). */
int rmodel_env_sync(struct rmodel_env *env);

/* Begins a transaction (read-only when rdonly). *out is owned by the caller until
 * rmodel_txn_commit()/rmodel_txn_abort(), which free it. */
int rmodel_txn_begin(struct rmodel_env *env, int rdonly, struct rmodel_txn **out);
int rmodel_txn_commit(struct rmodel_txn *txn); /* frees txn even on failure */
/* Begins a write transaction for loading many records at once (a rebuild): its rows stay
 * in memory until the commit, which writes them sorted. When the model's projections and
 * indexes are empty (a rebuild from scratch), rows the txn has not written are known not
 * to exist without reading LMDB, and the commit appends them (MDB_APPEND: no search,
 * dense pages). The txn grows without bound: the caller commits it when rmodel_txn_bytes()
 * reaches its memory budget and begins another. The model it commits is the one the
 * same records folded by ordinary txns would give, row for row. rows: how many rows the
 * txn is expected to write (a hint: its table is sized for them at once). */
int rmodel_txn_begin_bulk(struct rmodel_env *env, size_t rows, struct rmodel_txn **out);
/* Memory the write txn's pending rows hold (and the sort of its commit will need). */
size_t rmodel_txn_bytes(const struct rmodel_txn *txn);
void rmodel_txn_abort(struct rmodel_txn *txn); /* accepts NULL */

/* The applied position (0 for an empty model). */
int rmodel_position(struct rmodel_txn *txn, uint64_t *pos);
/* Stores the applied position; the tailer calls it once per batch, before commit. */
int rmodel_set_position(struct rmodel_txn *txn, uint64_t pos);

/* Applies rec (a verified record) to the model. Returns 0 when applied, 1 when it was
 * recorded as a dead letter (EFLOG_WARN names position and reason), or a negative code for
 * a failure of the store itself (MDB_MAP_FULL, I/O): then the transaction must be aborted.
 * rec->position must be the next position (rmodel_position() + 1 as seen by this txn's batch);
 * the caller enforces that. */
int rmodel_fold(struct rmodel_txn *txn, const struct log_record *rec);

/* Applies rec again for dead letter id (dlq retry): on success the dead letter is removed
 * and 0 returned; if it still cannot be applied, 1 and the dead letter's reason is
 * updated. The record must be the one the dead letter names. */
int rmodel_dlq_retry(struct rmodel_txn *txn, uint64_t id, const struct log_record *rec);
/* Removes dead letter id (dlq drop). RMODEL_ENOTFOUND if there is none. */
int rmodel_dlq_drop(struct rmodel_txn *txn, uint64_t id);
/* Looks up dead letter id's log position, segment and offset (for retry). */
int rmodel_dlq_get(struct rmodel_txn *txn, uint64_t id, uint64_t *position, uint64_t *segment,
               uint64_t *offset);
/* Number of dead letters. */
int rmodel_dlq_count(struct rmodel_txn *txn, uint64_t *count);
/* Appends {"dead_letters": [{"id","position","projection","reason","at"}...]} to out. */
int rmodel_dlq_render(struct rmodel_txn *txn, struct sbuf *out);

/* --- queries (API.md section 5); each appends one JSON document to out ----------- */

/* GET /api/orders/{id}; *version is the order's stream version (for ETag). */
int rmodel_render_order(struct rmodel_txn *txn, const char *id, size_t id_len, struct sbuf *out,
                    uint64_t *version);
/* GET /api/users/{id} */
int rmodel_render_user(struct rmodel_txn *txn, const char *id, size_t id_len, struct sbuf *out);
/* GET /api/users/{id}/orders: newest first, at most limit; cursor 0 = from the newest, else
 * the value of a previous next_cursor (orders created strictly before it). RMODEL_ENOTFOUND
 * when the user does not exist. */
int rmodel_render_user_orders(struct rmodel_txn *txn, const char *id, size_t id_len, unsigned limit,
                          uint64_t cursor, struct sbuf *out);
/* GET /api/items/{id} */
int rmodel_render_item(struct rmodel_txn *txn, const char *id, size_t id_len, struct sbuf *out);
/* GET /api/stats/daily: days from..to inclusive ("YYYY-MM-DD", validated by the caller). */
int rmodel_render_daily(struct rmodel_txn *txn, const char *from, const char *to, struct sbuf *out);

/* Location of a record in the local log. */
struct rmodel_loc {
    uint64_t position;
    uint64_t segment;
    uint64_t offset;
};
/* The locations of stream's events, oldest first, at most max into locs; *n how many were
 * stored and *more 1 if there were more. RMODEL_ENOTFOUND for an empty stream. */
int rmodel_stream_locs(struct rmodel_txn *txn, const char *stream, size_t stream_len, uint64_t from_version,
                   struct rmodel_loc *locs, size_t max, size_t *n, int *more);
/* The location of position pos (RMODEL_ENOTFOUND if it was never folded). */
int rmodel_position_loc(struct rmodel_txn *txn, uint64_t pos, struct rmodel_loc *loc);

/* Order time travel: folds an order's own records (each a verified record of the order's
 * stream, oldest first) into a standalone view, then renders it like rmodel_render_order.
 * OrderCreated v1 lines are upcast from the items in txn. */
struct rmodel_asof;
struct rmodel_asof *rmodel_asof_new(void);
void rmodel_asof_free(struct rmodel_asof *a); /* accepts NULL */
/* Returns 0, or 1 when the record cannot be applied (the view is left unchanged). */
int rmodel_asof_apply(struct rmodel_txn *txn, struct rmodel_asof *a, const struct log_record *rec);
/* RMODEL_ENOTFOUND if no OrderCreated was applied. */
int rmodel_asof_render(struct rmodel_asof *a, struct sbuf *out, uint64_t *version);

/* Appends the JSON EVENT of API.md ({"position","stream","version","type","schema_version",
 * "at","data"}) for rec; data is copied verbatim (it was validated JSON when written). */
void rmodel_render_event(const struct log_record *rec, struct sbuf *out);

#endif
