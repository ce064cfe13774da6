/* rmodel_env: the read model's LMDB environment, its transactions and applied position.
 *
 * Every other part of the store (rmodel.h lists them) works inside an rmodel_txn begun
 * here. A process opens the environment of DIR/read/current (rdir.h) once and begins one
 * short transaction per request or per batch.
 *
 * Guarantees
 *  - A write transaction commits the projections and the applied position together
 *    (rmodel_set_position before rmodel_txn_commit): a reader sees the model at one position.
 *  - A bulk write transaction (a rebuild) commits the same rows, row for row, as ordinary
 *    transactions folding the same records would.
 *  - A lazy environment (the tailer's) is consistent after a process crash, and refused
 *    (RMODEL_EUNSYNCED) after a machine crash that may have torn it; see "Lazy sync".
 *
 * Caveats
 *  - Open the environment in the process (after fork()) that uses it. An rmodel_env may be
 *    shared by threads (it is opened with MDB_NOTLS); an rmodel_txn belongs to one thread.
 *  - Keep read transactions short (one per request): a long one pins old pages and grows
 *    the map.
 *  - Resizing the map (rmodel_env_grow, rmodel_env_adopt_mapsize) needs no transaction of
 *    this process to be active: callers exclude them.
 */
#ifndef EF_RMODEL_ENV_H
#define EF_RMODEL_ENV_H

#include <stddef.h>
#include <stdint.h>

#include "readmodel/rmodel.h"

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
 * Checks the stored layout version (RMODEL_ELAYOUT if it is not RMODEL_FORMAT). Clears stale reader
 * slots (mdb_reader_check). A writable env is written through a writable map when the
 * map's blocks can be reserved on disk, and through write(2) otherwise (util/lmdb_map.h).
 * *out is owned by the caller, freed by rmodel_env_close(). */
int rmodel_env_open(const char *dir, const struct rmodel_options *opt, struct rmodel_env **out);
/* Closes env; a lazy env is then synced (best effort: on failure the marker stays, so the
 * model is distrusted only after a machine crash). Accepts NULL. */
void rmodel_env_close(struct rmodel_env *env);
/* The same, returning 0 or the error that kept the model unsynced (a negative code). */
int rmodel_env_close_synced(struct rmodel_env *env);
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
/* Writes a compacted copy of the environment (one read transaction: the writer goes on)
 * into fd, a file or a pipe (snapdir_write_data). 0 or a negative code. */
int rmodel_env_copy_fd(struct rmodel_env *env, int fd);
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

#endif
