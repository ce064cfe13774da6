/* replay: keeping the write model equal to the log.
 *
 * The write model may lag the log (a worker died after appending, before committing its
 * model transaction) but must never lead it. These functions close the gap; every one of
 * them must be called with the log's append lock held (log_append_begin), so that no
 * record is appended while the model is being brought up to date and no other process
 * writes the model.
 *
 *  - wm_catch_up: applies every published record after the model's applied position (up
 *    to log_head), in transactions of WM_REPLAY_BATCH records, growing the map (wm_grow)
 *    when one fills it. If the model is ahead of the log it returns WM_EAHEAD and changes
 *    nothing.
 *  - write_model_rebuild: empties the model and replays the whole log from position 1.
 *  - write_model_restore: loads the newest usable snapshot (wsnap_load, wsnap.h) and
 *    catches up from its position; write_model_rebuild_from falls back to a full replay.
 *  - write_model_open: a worker's start: opens DIR/write and decides between catch-up and
 *    rebuild (from a snapshot when there is one; see write_model_open in replay.c for the
 *    cases).
 */
#ifndef EF_WRITE_REPLAY_H
#define EF_WRITE_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "log/log.h"
#include "write/model.h"
#include "write/wsnap.h"

#define WM_REPLAY_BATCH 4096

/* Applies the records after the model's position; *applied (may be NULL) counts them. On
 * failure err says why (record position and reason). Append lock held. */
int wm_catch_up(struct wm *wm, struct log *lg, uint64_t *applied, char *err, size_t errlen);

/* Empties the model and replays the log from position 1. Append lock held. For the
 * workers' start and for eventfoldctl. */
int write_model_rebuild(struct wm *wm, struct log *lg, char *err, size_t errlen);

/* Opens the write model in dir for a worker that has lg open read-write, and makes it
 * equal to the log. Takes and releases the append lock itself. Rebuilds (from the newest
 * valid snapshot in dir/snapshots plus the log after it, see wsnap.h; else from position 1)
 * when the environment cannot be opened or read (its files are removed and re-created),
 * when it was last written in another boot (MDB_NOSYNC: a power loss may have torn it or
 * left it ahead of the log), when it is ahead of the log, or when the catch-up finds a
 * record it cannot apply. Every rebuild is logged with its reason. */
int write_model_open(const char *dir, uint64_t map_bytes, struct log *lg, struct wm **out);

/* With the append lock held: makes wm equal to the log from the newest usable snapshot in
 * snap_dir (wsnap_load) plus the log after it. Returns 0 (restored), 1 (no usable snapshot,
 * or the catch-up after it failed: the caller replays the whole log; wm may hold the
 * snapshot's state) or a negative code. res (may be NULL) says what was used. */
int write_model_restore(struct wm *wm, struct log *lg, const char *snap_dir,
                        struct wsnap_restored *res, char *err, size_t errlen);

/* The rebuild of a worker's start: write_model_restore, else write_model_rebuild (full
 * replay). Append lock held. */
int write_model_rebuild_from(struct wm *wm, struct log *lg, const char *snap_dir, char *err,
                             size_t errlen);

#endif
