/* model: the write model, the command side's own LMDB environment (DIR/write).
 *
 * It holds exactly what the shop rules need to decide a command, plus the idempotency
 * table, and it is a pure function of the log: every change is made by applying a log
 * record (apply.h), live, in catch-up, or in a rebuild. It is never the source of truth,
 * so it is opened with MDB_NOSYNC (no fsync of its own); the rule that keeps this safe is
 * that it must never be used while it is ahead of the log (see replay.h).
 *
 * Databases and their values. Integers are in host byte order and copied with memcpy (no
 * alignment assumed): the environment is local, derived and rebuildable, never shipped.
 * Every value starts with a format byte (WM_FORMAT); another value fails with WM_ECORRUPT.
 *   meta       "applied" -> u64 position of the last applied record
 *              "boot_id" -> the kernel boot id of the boot that last wrote the model
 *              "deposited" -> i64 sum of every FundsDeposited amount applied, saturated at
 *                         INT64_MAX: it bounds every money total the read models derive
 *                         (doc/events.md, "Money"), so a deposit that would take it past
 *                         INT64_MAX is refused. Written with the first record applied, so
 *                         it is absent only in an empty model and in one of an older build:
 *                         wm_catch_up refuses such a model (applied > 0), which makes its
 *                         opener rebuild it from the log.
 *   users      user id -> fmt u8, pad[7], balance i64, version u64                (24 bytes)
 *   items      item id -> fmt u8, pad u8, name_len u16, category_len u16, pad[2],
 *                         price i64, available i64, reserved i64, sold i64, version u64
 *                         (48 bytes), then name, then category
 *   orders     order id -> fmt u8, status u8, nlines u16, user_len u16, pad[2],
 *                         amount i64, version u64 (24 bytes), then the user id, then per
 *                         line: item_len u8, quantity i64, price i64, item id bytes
 *   idem       Idempotency-Key -> fmt u8, pad u8, status u16, body_len u32,
 *                         fingerprint[16], position u64, version u64, at_ms i64 (48
 *                         bytes), then the answer body
 *   idem_time  at_ms as big-endian u64 followed by the key -> empty: the keys ordered by
 *                         the time of their event, so the oldest are pruned first
 *
 * Snapshots of the model live in DIR/write/snapshots/ (wsnap.h); wm_destroy_files leaves
 * them alone.
 *
 * Transactions are plain LMDB transactions (MDB_txn); the caller begins and ends them.
 * Caveats: open in each process after fork(); a handle may be used by one thread at a
 * time (the command path holds the log's append lock around every write transaction).
 * The environment is written through a writable map (MDB_WRITEMAP) whenever its blocks can
 * be reserved on disk, so a full disk is an error code and never a SIGBUS (util/lmdb_map.h).
 * The map starts at the configured size and doubles when it fills up (wm_grow), which is
 * only allowed while no transaction of the process is active: the caller's own are kept
 * out by the append lock, and a snapshot copy running on another thread (wm_copy) by a
 * lock inside the wm that every resize takes exclusively.
 */
#ifndef EF_WRITE_MODEL_H
#define EF_WRITE_MODEL_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "domain/state.h"
#include "domain/event.h"

#define WM_FORMAT 1
#define WM_BODY_MAX 1024 /* stored answer bodies; the largest is about 250 bytes */

/* Error codes: 0 success; LMDB codes (MDB_MAP_FULL, ...) as they are; negative errno
 * values; and these (the write model's range in util/ef_error.h). */
enum {
    WM_ECORRUPT = -20001, /* a stored value does not match its layout */
    WM_EAHEAD = -20002,   /* the model has applied positions the log does not have */
    WM_EAPPLY = -20003,   /* a record cannot be applied (gap, unknown event, broken invariant) */
};

/* Returns a static description of a code: the write model's own, or ef_strerror()'s for any
 * other. */
const char *wm_strerror(int err);

struct wm;

/* Opens (creating if needed) the environment in dir with a map of map_bytes. *out is
 * owned by the caller; wm_close() frees it. */
int wm_open(const char *dir, uint64_t map_bytes, struct wm **out);
void wm_close(struct wm *wm); /* accepts NULL */
/* Removes the environment's files in dir (used when it cannot be opened at all). */
int wm_destroy_files(const char *dir);

/* Begins a transaction (write != 0: read-write). When another process has grown the map
 * (MDB_MAP_RESIZED), adopts its size and begins again; like wm_grow(), that needs no other
 * transaction of this environment active in this process. */
int wm_begin(struct wm *wm, int write, MDB_txn **txn);

/* The map grows, never past this (the config's largest write_map_bytes). */
#define WM_MAP_MAX (64ull << 40)

/* Doubles the map after MDB_MAP_FULL (to twice what another process has grown it to, if
 * that is larger), and logs it. The larger map's blocks are reserved on disk first, in
 * every mode, since another process may write it through a writable map (util/lmdb_map.h).
 * Other processes adopt the new size in their next wm_begin().
 * Caller: no transaction of this environment may be active in this process (the command
 * path holds the log's append lock, under which every write-model transaction runs).
 * Returns 0, MDB_MAP_FULL when the map is at WM_MAP_MAX, or -ENOSPC (-EDQUOT) when the disk
 * cannot hold the larger map. Aborts the process when LMDB cannot map the environment again
 * (see wm_map_lost in model.c). */
int wm_grow(struct wm *wm);
/* Clears reader slots left by dead processes (mdb_reader_check); returns how many. */
int wm_reader_check(struct wm *wm);

int wm_get_applied(struct wm *wm, MDB_txn *txn, uint64_t *pos);
int wm_set_applied(struct wm *wm, MDB_txn *txn, uint64_t pos);
/* The deposit total: 1 with *total set, 0 when absent (*total = 0), or a negative code. */
int wm_get_deposited(struct wm *wm, MDB_txn *txn, int64_t *total);
int wm_set_deposited(struct wm *wm, MDB_txn *txn, int64_t total);
/* The stored boot id ("" when none) into out (cap >= 64). */
int wm_get_boot_id(struct wm *wm, MDB_txn *txn, char *out, size_t cap);
int wm_set_boot_id(struct wm *wm, MDB_txn *txn, const char *boot_id);

/* Getters return 1 (found, *out filled), 0 (absent) or a negative code. */
int wm_get_user(struct wm *wm, MDB_txn *txn, const char *id, struct user_state *out);
int wm_get_item(struct wm *wm, MDB_txn *txn, const char *id, struct item_state *out);
int wm_get_order(struct wm *wm, MDB_txn *txn, const char *id, struct order_state *out);
int wm_put_user(struct wm *wm, MDB_txn *txn, const char *id, const struct user_state *u);
int wm_put_item(struct wm *wm, MDB_txn *txn, const char *id, const struct item_state *it);
int wm_put_order(struct wm *wm, MDB_txn *txn, const char *id, const struct order_state *o);

/* The remembered answer to a command that carried an Idempotency-Key. */
struct wm_idem {
    unsigned char fingerprint[EV_FINGERPRINT_LEN];
    int status;
    uint64_t position;
    uint64_t version;
    int64_t at_ms;
    size_t body_len;
    char body[WM_BODY_MAX + 1]; /* NUL-terminated */
};
int wm_get_idem(struct wm *wm, MDB_txn *txn, const char *key, struct wm_idem *out);
int wm_put_idem(struct wm *wm, MDB_txn *txn, const char *key, const struct wm_idem *e);
/* Deletes up to max entries whose time is before cutoff_ms, oldest first; *pruned counts
 * them (may be NULL). */
int wm_prune_idem(struct wm *wm, MDB_txn *txn, int64_t cutoff_ms, int max, int *pruned);

/* Empties every database (a rebuild's first step). */
int wm_clear(struct wm *wm, MDB_txn *txn);

/* Databases in a fixed order, for tests that compare two models byte for byte. */
#define WM_NDBI 6
const char *wm_dbi_name(int i);
int wm_dbi(struct wm *wm, int i, MDB_dbi *out);

/* Snapshots (wsnap.h). wm_copy writes a compacted, consistent copy of the environment
 * (one read transaction; writers go on) into fd, a file or a pipe (snapdir_write_data).
 * wm_open_copy opens such a copy read-only (no lock file, no writes; MDB_NOTFOUND when a
 * database is missing: not a write model); close it with wm_close(). */
int wm_copy(struct wm *wm, int fd);
int wm_open_copy(const char *file, struct wm **out);

#endif
