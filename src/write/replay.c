#include <config.h>

#include "write/replay.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/bootid.h"
#include "util/clock.h"
#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"
#include "write/apply.h"
#include "write/wsnap.h"

/* Applies up to WM_REPLAY_BATCH records from rd in one transaction. Returns the number
 * applied (0: nothing more up to head) or a negative code. */
static int64_t replay_batch(struct wm *wm, struct log_reader *rd, uint64_t head, char *err,
                            size_t errlen)
{
    MDB_txn *txn;
    int rc = wm_begin(wm, 1, &txn);
    if (rc) {
        snprintf(err, errlen, "begin: %s", ef_strerror(rc));
        return rc;
    }
    int64_t n = 0;
    struct log_record rec;
    while (n < WM_REPLAY_BATCH) {
        rc = log_reader_next(rd, head, &rec);
        if (rc == 0)
            break;
        if (rc < 0) {
            snprintf(err, errlen, "reading the log: %s", ef_strerror(rc));
            goto fail;
        }
        if ((rc = wm_apply_record(wm, txn, &rec, err, errlen)) != 0)
            goto fail;
        n++;
    }
    if (n == 0) {
        mdb_txn_abort(txn);
        return 0;
    }
    rc = mdb_txn_commit(txn);
    if (rc) {
        snprintf(err, errlen, "commit: %s", ef_strerror(rc));
        return ef_mdb_rc(rc);
    }
    return n;
fail:
    mdb_txn_abort(txn);
    return rc;
}

/* One pass of wm_catch_up: from the model's applied position to head; *total counts
 * the records applied. */
static int catch_up_once(struct wm *wm, struct log *lg, uint64_t *total, char *err,
                         size_t errlen)
{
    uint64_t pos, head = log_head(lg);
    MDB_txn *txn;
    int rc = wm_begin(wm, 0, &txn);
    if (rc) {
        snprintf(err, errlen, "begin: %s", ef_strerror(rc));
        return rc;
    }
    int64_t deposited;
    rc = wm_get_applied(wm, txn, &pos);
    int has_deposited = rc == 0 ? wm_get_deposited(wm, txn, &deposited) : 0;
    mdb_txn_abort(txn);
    if (rc || has_deposited < 0) {
        rc = rc ? rc : has_deposited;
        snprintf(err, errlen, "reading the applied position: %s", ef_strerror(rc));
        return rc;
    }
    if (pos > 0 && !has_deposited) {
        /* The model (or the snapshot it was restored from) predates the deposit total,
         * which only a replay from position 1 can compute. */
        snprintf(err, errlen, "write model of an older build: it has no deposit total");
        return WM_EAPPLY;
    }
    if (pos > head) {
        snprintf(err, errlen, "write model at %" PRIu64 ", log head %" PRIu64, pos, head);
        return WM_EAHEAD;
    }
    if (pos == head)
        return 0;
    struct log_reader *rd;
    if ((rc = log_reader_open(lg, pos + 1, &rd)) != 0) {
        snprintf(err, errlen, "opening a log reader at %" PRIu64 ": %s", pos + 1,
                 ef_strerror(rc));
        return rc;
    }
    int64_t n;
    while ((n = replay_batch(wm, rd, head, err, errlen)) > 0)
        *total += (uint64_t)n;
    log_reader_close(rd);
    if (n < 0)
        return (int)n;
    return 0;
}

/* A batch that fills the map is aborted; the map is doubled (wm_grow: no transaction is
 * active here) and the catch-up goes on from the last committed batch. */
int wm_catch_up(struct wm *wm, struct log *lg, uint64_t *applied, char *err, size_t errlen)
{
    uint64_t total = 0;
    int rc;
    while ((rc = catch_up_once(wm, lg, &total, err, errlen)) == MDB_MAP_FULL &&
           (rc = wm_grow(wm)) == 0)
        ;
    if (applied)
        *applied = total;
    return rc;
}

int write_model_rebuild(struct wm *wm, struct log *lg, char *err, size_t errlen)
{
    char boot[64];
    MDB_txn *txn;
    ef_boot_id(boot, sizeof boot);
    int rc = wm_begin(wm, 1, &txn);
    if (rc) {
        snprintf(err, errlen, "begin: %s", ef_strerror(rc));
        return rc;
    }
    if ((rc = wm_clear(wm, txn)) != 0 || (rc = wm_set_boot_id(wm, txn, boot)) != 0) {
        snprintf(err, errlen, "emptying the model: %s", ef_strerror(rc));
        mdb_txn_abort(txn);
        return rc;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        snprintf(err, errlen, "commit: %s", ef_strerror(rc));
        return ef_mdb_rc(rc);
    }
    uint64_t n;
    uint64_t t0 = ef_mono_ns();
    if ((rc = wm_catch_up(wm, lg, &n, err, errlen)) != 0)
        return rc;
    EFLOG_INFO("write model rebuilt from the log records=%" PRIu64 " ms=%" PRIu64, n,
             (ef_mono_ns() - t0) / 1000000);
    return 0;
}

/* Whether the stored boot id differs from this boot's (an unknown boot id never forces a
 * rebuild: without /proc there is nothing to compare). */
static int other_boot(struct wm *wm, int *rc)
{
    char now[64], then[64];
    MDB_txn *txn;
    ef_boot_id(now, sizeof now);
    if ((*rc = wm_begin(wm, 0, &txn)) != 0)
        return 0;
    *rc = wm_get_boot_id(wm, txn, then, sizeof then);
    mdb_txn_abort(txn);
    return *rc == 0 && now[0] && then[0] && strcmp(now, then) != 0;
}

/* Records this boot's id (after a catch-up proved the model sound in this boot). */
static int stamp_boot(struct wm *wm)
{
    char now[64];
    MDB_txn *txn;
    ef_boot_id(now, sizeof now);
    int rc = wm_begin(wm, 1, &txn);
    if (rc)
        return rc;
    if ((rc = wm_set_boot_id(wm, txn, now)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    return ef_mdb_rc(rc);
}

/* With the append lock held: open (re-creating unreadable files) and reconcile. */
static int open_locked(const char *dir, uint64_t map_bytes, struct log *lg, struct wm **out)
{
    char err[512] = "";
    struct wm *wm = NULL;
    int rc = wm_open(dir, map_bytes, &wm);
    if (rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH ||
        rc == MDB_PAGE_NOTFOUND) {
        EFLOG_WARN("write model unreadable, re-creating it dir=%s err=\"%s\"", dir,
                 ef_strerror(rc));
        if ((rc = wm_destroy_files(dir)) == 0)
            rc = wm_open(dir, map_bytes, &wm);
        if (rc == 0)
            rc = WM_ECORRUPT; /* force the rebuild below */
    } else if (rc != 0) {
        EFLOG_ERROR("cannot open the write model dir=%s err=\"%s\"", dir, ef_strerror(rc));
        return rc;
    }
    const char *why = NULL;
    if (rc == WM_ECORRUPT)
        why = "re-created";
    else if (other_boot(wm, &rc))
        why = "last written in another boot (unsynced data may be lost)";
    else if (rc == 0 && (rc = wm_catch_up(wm, lg, NULL, err, sizeof err)) != 0)
        why = rc == WM_EAHEAD ? "ahead of the log" : "catch-up failed";
    char snaps[SNAPDIR_PATH_MAX];
    if (why && (rc = wsnap_dir(dir, snaps)) == 0) {
        EFLOG_WARN("rebuilding the write model reason=\"%s\" detail=\"%s\"", why, err);
        if ((rc = write_model_rebuild_from(wm, lg, snaps, err, sizeof err)) != 0) {
            EFLOG_ERROR("write model rebuild failed err=\"%s\"", err);
            wm_close(wm);
            return rc;
        }
    } else if (rc == 0) {
        rc = stamp_boot(wm);
    }
    if (rc) {
        EFLOG_ERROR("write model not usable err=\"%s\"", ef_strerror(rc));
        wm_close(wm);
        return rc;
    }
    *out = wm;
    return 0;
}

int write_model_open(const char *dir, uint64_t map_bytes, struct log *lg, struct wm **out)
{
    int rc = log_append_begin(lg);
    if (rc) {
        EFLOG_ERROR("cannot take the log append lock err=\"%s\"", log_last_error(lg));
        return rc;
    }
    rc = open_locked(dir, map_bytes, lg, out);
    log_append_end(lg);
    return rc;
}

int write_model_restore(struct wm *wm, struct log *lg, const char *snap_dir,
                        struct wsnap_restored *res, char *err, size_t errlen)
{
    struct snapshot_info s;
    uint64_t t0 = ef_mono_ns(), replayed = 0;
    if (wsnap_load(wm, lg, snap_dir, &s) != 0)
        return 1;
    if (wm_catch_up(wm, lg, &replayed, err, errlen) != 0) {
        EFLOG_WARN("catch-up after write-model snapshot failed snapshot=%s/%s err=\"%s\"",
                   snap_dir, s.name, err);
        return 1;
    }
    EFLOG_INFO("write model restored from snapshot snapshot=%s/%s position=%" PRIu64
               " replayed=%" PRIu64 " ms=%" PRIu64, snap_dir, s.name, s.position, replayed,
               (ef_mono_ns() - t0) / 1000000u);
    if (res) {
        res->snap = s;
        res->replayed = replayed;
    }
    return 0;
}

int write_model_rebuild_from(struct wm *wm, struct log *lg, const char *snap_dir, char *err,
                             size_t errlen)
{
    int rc = write_model_restore(wm, lg, snap_dir, NULL, err, errlen);
    if (rc <= 0)
        return rc;
    EFLOG_INFO("no usable write-model snapshot, replaying the whole log dir=%s", snap_dir);
    return write_model_rebuild(wm, lg, err, errlen);
}
