/* wsnap: snapshots of the write model, so that the command side starts fast.
 *
 * The write model is opened with MDB_NOSYNC, so after a reboot it may be torn and is
 * rebuilt (replay.h). Instead of replaying the whole log, the rebuild restores the newest
 * valid snapshot and replays only the log after its position.
 *
 * Where: DIR/write/snapshots/snap-POSITION/{data.mdb,manifest} (util/snapdir.h: the same
 * protocol as the read model's snapshots: built in tmp-PID, CRC32C, fsynced, renamed).
 *
 * Guarantees
 *  - A snapshot is a consistent copy (mdb_env_copyfd2, compact, one read transaction: command
 *    workers keep committing meanwhile) holding its own applied position P.
 *  - Never ahead of the log: the model commits (MDB_NOSYNC) before the log's fdatasync
 *    covers the record, so a copy may hold a P that a power loss could still take away. A
 *    snapshot is renamed into place only after log_sync(P) returned, i.e. P is durable.
 *  - Only a model validated in this boot is copied (its boot id is this boot's: a worker
 *    caught it up or rebuilt it); a model last written in another boot may be torn.
 *  - Takers are serialized across processes by a flock on DIR/write/snapshots/lock; the
 *    newest `keep` are kept.
 *  - Restore (append lock held, as every rebuild): snapshots newest first; one ahead of the
 *    log head, damaged (size or CRC32C), unreadable or whose content disagrees with its
 *    manifest is passed over with a warning naming it. The copy is loaded into the live
 *    environment in one write transaction (so other processes that have it open see the
 *    old or the new state, never a mix) by wsnap_load, then caught up from the log by
 *    write_model_restore (replay.h). One info line says which snapshot and how many
 *    records were replayed.
 *
 * Who takes them: every command worker runs a small taker thread (wsnap_taker_start); when
 * the durable log position reaches the newest snapshot's position + snapshot_every, the
 * first worker to take the flock copies the model; the others see its snapshot and move
 * their target on. Commands never wait for it. `eventfoldctl snapshot` takes one too.
 */
#ifndef EF_WRITE_WSNAP_H
#define EF_WRITE_WSNAP_H

#include <stddef.h>
#include <stdint.h>

#include "log/log.h"
#include "util/snapdir.h"
#include "write/model.h"

/* Codes besides the log's, the write model's, LMDB's and errno values (the write
 * snapshots' range in util/ef_error.h). */
enum {
    WSNAP_EBUSY = -20101,  /* another process is taking a snapshot (non-blocking take) */
    WSNAP_EBOOT = -20102,  /* the model was not validated in this boot */
    WSNAP_EEMPTY = -20103, /* the model has applied nothing: nothing to snapshot */
    WSNAP_EAHEAD = -20104, /* the copy's position is not in the log */
    WSNAP_ENONE = -20105,  /* no write model to snapshot (wsnap_take_now) */
};

/* Returns a static description of a code: a write snapshot's own, or ef_strerror()'s for any
 * other. */
const char *wsnap_strerror(int err);

/* model_dir/snapshots into out (SNAPDIR_PATH_MAX bytes): 0 or -ENAMETOOLONG. */
int wsnap_dir(const char *model_dir, char *out);

/* Takes a snapshot of wm now into snap_dir and prunes to the newest keep. lg must be open
 * read-write (log_sync). nonblock: WSNAP_EBUSY at once if another taker holds the lock.
 * Returns 0 (info, if non-NULL, describes it; an existing snapshot at the same position
 * is kept) or a negative code; failures other than EBUSY are logged. */
int wsnap_take(struct wm *wm, struct log *lg, const char *snap_dir, int keep, int nonblock,
               struct snapshot_info *info);

/* For eventfoldctl: opens the write model in model_dir (WSNAP_ENONE when it has none) and
 * takes a snapshot, waiting for a running taker. */
int wsnap_take_now(const char *model_dir, uint64_t map_bytes, struct log *lg, int keep,
                   struct snapshot_info *info);

/* With the append lock held: loads the newest usable snapshot in snap_dir into wm, which
 * then holds the model as of the snapshot's position (the caller catches up with the log
 * after it: write_model_restore, replay.h). Snapshots ahead of the log, damaged or
 * unreadable ones are skipped (logged). 0 with *used describing the snapshot, or 1 when
 * none was usable. */
int wsnap_load(struct wm *wm, struct log *lg, const char *snap_dir, struct snapshot_info *used);

/* What write_model_restore (replay.h) used. */
struct wsnap_restored {
    struct snapshot_info snap; /* the snapshot used */
    uint64_t replayed;         /* log records applied after it */
};

/* The background taker of a command worker (a thread; see above). every == 0: none is
 * started and *out is NULL. wm and lg must outlive it. Stop it before closing them. */
struct wsnap_taker;
int wsnap_taker_start(struct wm *wm, struct log *lg, const char *model_dir, uint64_t every,
                      int keep, struct wsnap_taker **out);
void wsnap_taker_stop(struct wsnap_taker *t); /* accepts NULL; waits for a snapshot in progress */

#endif
