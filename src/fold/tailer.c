#include <config.h>

#include "fold/tailer.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fold/model_switch.h"
#include "log/log.h"
#include "readmodel/rdir.h"
#include "readmodel/rmodel.h"
#include "readmodel/rmodel_bulk.h"
#include "readmodel/rmodel_env.h"
#include "readmodel/rmodel_fold.h"
#include "readmodel/rpos.h"
#include "readmodel/rsnap.h"
#include "util/clock.h"
#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/lockfile.h"
#include "util/path.h"

const char *tailer_strerror(int err)
{
    switch (err) {
    case TAILER_EDAMAGE: return "damaged record in the log";
    case TAILER_ESEQ: return "log positions out of sequence";
    default: return ef_strerror_except(EF_ERR_TAILER, err);
    }
}

struct tailer {
    const struct tailer_options *opt;
    struct log *lg;
    struct log_reader *rd;
    struct rmodel_env *env;
    struct rpos *rp;
    int lock_fd;
    uint64_t pos;           /* committed position */
    uint64_t committed;     /* records committed by this run */
    uint64_t last_snapshot; /* position of the newest snapshot (or the one being taken) */
    uint32_t generation;    /* of the model that is open (live tailer) */
    struct rsnap_job snap; /* taken beside the fold; joined before env is closed/resized */
    /* Bulk mode: the pipeline that commits a batch while the next one is folded (NULL
     * before the first batch, after a failed commit, or where it could not start: then
     * batches commit in this thread). While it runs, pos is the position folded, which
     * may be one batch ahead of the model's. */
    struct rmodel_bulk *bulk;
    int bulk_unavailable;
};

static int stopping(const struct tailer *tl)
{
    return tl->opt->stop && *tl->opt->stop;
}

/* One tailer per data directory: an exclusive lock on DIR/read/tailer.lock (a rebuild
 * takes DIR/read/rebuild.lock instead: it folds into a model of its own). Released by the
 * kernel when the process dies. */
static int take_lock(struct tailer *tl)
{
    char path[RDIR_PATH_MAX];
    int rc = rdir_path(path, sizeof path, tl->opt->data_dir, "tailer.lock");
    if (rc) {
        EFLOG_ERROR("data directory path too long data=%s", tl->opt->data_dir);
        return rc;
    }
    rc = ef_lock_file(path, 1, &tl->lock_fd);
    if (rc == -EWOULDBLOCK)
        EFLOG_ERROR("another tailer holds %s", path);
    else if (rc)
        EFLOG_ERROR("cannot lock %s: %s", path, strerror(-rc));
    return rc;
}

static int open_model(struct tailer *tl)
{
    const struct tailer_options *o = tl->opt;
    char path[RDIR_PATH_MAX];
    int rc = 0;
    if (o->model_dir)
        snprintf(path, sizeof path, "%s", o->model_dir);
    else
        rc = rdir_path(path, sizeof path, o->data_dir, "current");
    /* Lazy sync (rmodel_env.h): commits do not wait for the disk, so a folded write reaches the
     * queries within a fraction of a millisecond; the marker protocol keeps the model
     * trustworthy across machine crashes, and the tailer syncs when idle. */
    struct rmodel_options ro = { o->map_bytes, 0 };
    if (rc == 0)
        rc = rmodel_env_open(path, &ro, &tl->env);
    if ((rc == RMODEL_EUNSYNCED || rc == RMODEL_ELAYOUT) && !o->model_dir) {
        uint64_t from;
        if (rc == RMODEL_EUNSYNCED)
            EFLOG_WARN("the read model had unsynced commits when the machine went down: replacing "
                       "it with the newest snapshot and folding on from there dir=%s", path);
        else
            EFLOG_WARN("the read model has another layout than this release's (format %d): "
                       "replacing it with the newest snapshot of this layout, or an empty model, "
                       "and folding on from there (eventfoldctl rebuild folds a long log faster) "
                       "dir=%s", RMODEL_FORMAT, path);
        rc = model_switch_replace(o->data_dir, o->map_bytes, &from);
        if (rc == 0)
            rc = rmodel_env_open(path, &ro, &tl->env);
        if (rc == 0)
            EFLOG_INFO("read model replaced position=%" PRIu64, from);
    }
    if (rc == 0 && (rc = rmodel_env_lazy_sync(tl->env)) >= 0) {
        if (rc == 0)
            EFLOG_WARN("no boot id: read-model commits stay synced (slower) dir=%s", path);
        rc = 0;
    }
    if (rc)
        EFLOG_ERROR("cannot open the read model dir=%s: %s", path, ef_strerror(rc));
    return rc;
}

static int open_all(struct tailer *tl)
{
    const struct tailer_options *o = tl->opt;
    char path[RDIR_PATH_MAX];
    int rc = rdir_prepare(o->data_dir);
    if (rc) {
        EFLOG_ERROR("cannot prepare the read model directory %s/read: %s", o->data_dir, strerror(-rc));
        return rc;
    }
    if (!o->model_dir && (rc = take_lock(tl)) != 0)
        return rc;
    rc = ef_path_join(path, sizeof path, o->data_dir, "log");
    if (rc) {
        EFLOG_ERROR("data directory path too long data=%s", o->data_dir);
        return rc;
    }
    struct log_options lo = { .segment_bytes = o->segment_bytes };
    rc = log_open(path, &lo, &tl->lg);
    if (rc) {
        EFLOG_ERROR("cannot open the log dir=%s: %s", path, log_last_error(NULL));
        return rc;
    }
    if (o->model_dir)
        return open_model(tl);
    rdir_path(path, sizeof path, o->data_dir, "position");
    rc = rpos_open(path, &tl->rp);
    if (rc) {
        EFLOG_ERROR("cannot map %s: %s", path, strerror(-rc));
        return rc;
    }
    /* The generation is read before the model is opened: a switch in between makes the
     * first loop reopen once more, never miss the switch. */
    tl->generation = rpos_generation(tl->rp);
    return open_model(tl);
}

static int read_position(struct tailer *tl)
{
    struct rmodel_txn *t;
    int rc = rmodel_txn_begin(tl->env, 1, &t);
    if (rc == 0) {
        rc = rmodel_position(t, &tl->pos);
        rmodel_txn_abort(t);
    }
    if (rc)
        EFLOG_ERROR("cannot read the read model's position: %s", rmodel_strerror(rc));
    return rc;
}

/* Reads the next durable record; 1 with rec filled, 0 when none is durable yet. */
static int next_record(struct tailer *tl, uint64_t limit, struct log_record *rec)
{
    int rc = log_reader_next(tl->rd, limit, rec);
    if (rc == LOG_ECORRUPT) {
        EFLOG_ERROR("tailer stopped: %s (position after %" PRIu64 ")", log_last_error(tl->lg), tl->pos);
        return TAILER_EDAMAGE;
    }
    if (rc < 0) {
        EFLOG_ERROR("tailer stopped: cannot read the log: %s", log_last_error(tl->lg));
        return rc;
    }
    if (rc == 1 && rec->position != tl->pos + 1) {
        EFLOG_ERROR("tailer stopped: expected position %" PRIu64 ", the log gave %" PRIu64
                  " segment=%" PRIu64 " offset=%" PRIu64,
                  tl->pos + 1, rec->position, rec->segment, rec->offset);
        return TAILER_ESEQ;
    }
    return rc;
}

static int is_capacity_error(int rc) { return rc == -ENOSPC || rc == -EDQUOT || rc == MDB_MAP_FULL; }

/* Checked every 256 records: 1 when the batch should commit now. A live batch ends after
 * TAILER_BATCH_MS; a bulk one when its memory reaches the budget (it reports progress
 * meanwhile, every 65536 records, since it commits rarely). */
static int batch_done(struct tailer *tl, struct rmodel_txn *t, int n, uint64_t start, uint64_t pos)
{
    const struct tailer_options *o = tl->opt;
    if (!o->bulk_bytes)
        return ef_mono_ns() - start > TAILER_BATCH_MS * 1000000ull;
    if ((n & 0xffff) == 0 && o->progress)
        o->progress(pos, log_durable(tl->lg), o->progress_arg);
    /* The pipeline holds two batches: the one folded here and the one being written. */
    size_t bytes = rmodel_txn_bytes(t), budget = tl->bulk ? o->bulk_bytes / 2 : o->bulk_bytes;
    if (bytes < budget)
        return 0;
    EFLOG_INFO("bulk batch reached its memory budget: committing position=%" PRIu64 " records=%d "
             "bytes=%zu", pos, n, bytes);
    return 1;
}

/* The rows a bulk batch to limit is expected to cache, to size its table at once: one per
 * two records (lifecycle events add none, an OrderCreated one or two: a log of those only
 * grows the table once or twice; a table sized for more than it holds costs its zeroing),
 * as far as the memory budget lets the table grow (a row costs far more than 512 bytes of
 * the budget with its entry, key, value and index rows). */
static size_t bulk_rows(const struct tailer *tl, uint64_t limit)
{
    uint64_t records = limit > tl->pos ? limit - tl->pos : 0;
    uint64_t rows = records / 2, most = tl->opt->bulk_bytes / (tl->bulk ? 1024 : 512);
    return (size_t)(rows < most ? rows : most);
}

/* Ends the bulk pipeline (waiting for the batch being written). */
static void bulk_stop(struct tailer *tl)
{
    rmodel_bulk_stop(tl->bulk);
    tl->bulk = NULL;
}

/* A batch's commit failed in the pipeline (err): back to the position the model holds, as
 * after an aborted batch, with no pipeline (the next batch starts another). */
static int bulk_failed(struct tailer *tl, int err, uint64_t committed)
{
    bulk_stop(tl);
    tl->pos = committed;
    if (!is_capacity_error(err))
        EFLOG_ERROR("tailer stopped: commit failed position=%" PRIu64 ": %s", committed, rmodel_strerror(err));
    return err;
}

/* Begins the txn of the next batch: a live one, a bulk one, or a bulk one of the pipeline
 * (started here if need be; where it cannot start, bulk batches commit in this thread). */
static int begin_batch(struct tailer *tl, uint64_t limit, struct rmodel_txn **t)
{
    const struct tailer_options *o = tl->opt;
    if (!o->bulk_bytes)
        return rmodel_txn_begin(tl->env, 0, t);
    if (!tl->bulk && !tl->bulk_unavailable) {
        int rc = rmodel_bulk_start(tl->env, &tl->bulk);
        if (rc) {
            EFLOG_WARN("cannot start the bulk load's writer thread, committing in this thread: %s",
                       rmodel_strerror(rc));
            tl->bulk_unavailable = 1;
        }
    }
    return tl->bulk ? rmodel_bulk_begin(tl->bulk, bulk_rows(tl, limit), t)
                    : rmodel_txn_begin_bulk(tl->env, bulk_rows(tl, limit), t);
}

/* Hands a pipelined batch of n records, folded up to tl->pos, to the writer. A batch that
 * did not end on its memory budget (full) ends a pass: it is waited for, so that the
 * model is at tl->pos when fold_batch returns. */
static int submit_batch(struct tailer *tl, struct rmodel_txn *t, int n, int full)
{
    uint64_t committed;
    int rc = rmodel_set_position(t, tl->pos);
    if (rc) {
        rmodel_txn_abort(t);
        rmodel_bulk_wait(tl->bulk, &committed);
        return bulk_failed(tl, rc, committed);
    }
    rc = rmodel_bulk_submit(tl->bulk, t, tl->pos, &committed);
    if (rc == 0 && !full)
        rc = rmodel_bulk_wait(tl->bulk, &committed);
    if (rc)
        return bulk_failed(tl, rc, committed);
    tl->committed += (uint64_t)n;
    if (tl->opt->progress)
        tl->opt->progress(committed, log_durable(tl->lg), tl->opt->progress_arg);
    return n;
}

/* Folds one batch up to limit and commits it with its position (in bulk mode: hands it to
 * the pipeline, which commits it while the next batch is folded). Returns the number of
 * records committed (0: nothing was durable yet) or a negative code. */
static int fold_batch(struct tailer *tl, uint64_t limit)
{
    const struct tailer_options *o = tl->opt;
    struct rmodel_txn *t;
    int rc = begin_batch(tl, limit, &t);
    if (rc && tl->bulk) {
        /* The batch before may still be in flight: back to the position the model holds
         * (a failed commit of it is the error to report: a full map is grown). */
        uint64_t committed;
        int wrc = rmodel_bulk_wait(tl->bulk, &committed);
        if (wrc)
            return bulk_failed(tl, wrc, committed);
        bulk_stop(tl);
        tl->pos = committed;
    }
    if (rc)
        return rc;
    uint64_t pos = tl->pos, start = ef_mono_ns();
    int n = 0;
    uint64_t max = o->max_records ? o->max_records - tl->committed : UINT64_MAX;
    int batch = o->bulk_bytes ? INT_MAX : o->batch_max > 0 ? o->batch_max : TAILER_BATCH_MAX;
    int full = 0;
    while (n < batch && (uint64_t)n < max) {
        struct log_record rec;
        rc = next_record(tl, limit, &rec);
        if (rc <= 0)
            break;
        rc = rmodel_fold(t, &rec);
        if (rc < 0) {
            if (!is_capacity_error(rc))
                EFLOG_ERROR("tailer stopped: fold failed position=%" PRIu64 ": %s", rec.position,
                          rmodel_strerror(rc));
            break;
        }
        tl->pos = rec.position;
        n++;
        if ((n & 255) == 0 && (full = batch_done(tl, t, n, start, tl->pos)) != 0)
            break;
        if (stopping(tl))
            break;
    }
    if (rc < 0 || n == 0) {
        rmodel_txn_abort(t);
        tl->pos = pos; /* nothing of this batch was committed */
        uint64_t committed;
        int wrc = tl->bulk ? rmodel_bulk_wait(tl->bulk, &committed) : 0;
        if (wrc)
            return bulk_failed(tl, wrc, committed);
        return rc < 0 ? rc : 0;
    }
    if (tl->bulk)
        return submit_batch(tl, t, n, full);
    rc = rmodel_set_position(t, tl->pos);
    if (rc == 0)
        rc = rmodel_txn_commit(t);
    else
        rmodel_txn_abort(t);
    if (rc) {
        if (!is_capacity_error(rc))
            EFLOG_ERROR("tailer stopped: commit failed position=%" PRIu64 ": %s", tl->pos, rmodel_strerror(rc));
        tl->pos = pos;
        return rc;
    }
    if (tl->rp)
        rpos_publish(tl->rp, tl->pos);
    tl->committed += (uint64_t)n;
    if (tl->opt->progress)
        tl->opt->progress(tl->pos, log_durable(tl->lg), tl->opt->progress_arg);
    return n;
}

/* Waits for a snapshot being taken (the env is about to be closed or resized). A failed
 * snapshot was logged by rsnap_take and is retried after the next interval. */
static void snapshot_settle(struct tailer *tl)
{
    rsnap_job_finish(&tl->snap);
}

/* A copy holds a read transaction for as long as it runs, and LMDB resizes a map only with
 * no transaction active in the process: a map that filled during a copy would stop the
 * fold until the copy ended (grow_map waits for it), and the copy pins the pages freed
 * meanwhile, so the model grows faster while it runs. So a copy starts with at least half
 * the map free: one more than half full is grown here, between batches, first. A map that
 * cannot grow now is left as it is (grow_map says why when it really fills). */
static void make_room_for_copy(struct tailer *tl)
{
    uint64_t used = 0, map = 0, bytes = 0;
    if (rmodel_env_usage(tl->env, &used, &map) != 0 || used <= map / 2)
        return;
    int rc = rmodel_env_grow(tl->env, &bytes);
    if (rc)
        EFLOG_WARN("cannot grow the read model's map before a snapshot: %s used_bytes=%" PRIu64
                   " map_bytes=%" PRIu64, rmodel_strerror(rc), used, map);
    else
        EFLOG_INFO("read model map grown before a snapshot map_bytes=%" PRIu64 " used_bytes=%" PRIu64,
                   bytes, used);
}

/* Snapshots are taken beside the fold (rsnap_job): the loop only starts one when it is
 * due and none is running, and reaps the one that ended, so folding never pauses for a
 * copy. Folding goes on whether a snapshot succeeds or fails. */
static void maybe_snapshot(struct tailer *tl)
{
    const struct tailer_options *o = tl->opt;
    if (rsnap_job_done(&tl->snap))
        snapshot_settle(tl);
    if (o->model_dir || !o->snapshot_every || rsnap_job_running(&tl->snap) ||
        tl->pos < tl->last_snapshot + o->snapshot_every)
        return;
    /* Due by the tailer's own count: count from the newest snapshot in the directory
     * instead, which `eventfoldctl snapshot` may have taken meanwhile (otherwise the model
     * is copied again soon after it). One listing per interval. */
    uint64_t newest = 0;
    if (rsnap_newest_position(o->data_dir, &newest) == 0 && newest > tl->last_snapshot &&
        newest <= tl->pos) {
        tl->last_snapshot = newest;
        if (tl->pos < newest + o->snapshot_every)
            return;
    }
    make_room_for_copy(tl);
    int rc = rsnap_job_start(&tl->snap, o->data_dir, tl->env, o->snapshot_keep);
    if (rc) {
        EFLOG_WARN("cannot start the snapshot thread, taking the snapshot inline err=%s",
                 strerror(-rc));
        rsnap_take(o->data_dir, tl->env, o->snapshot_keep, NULL);
    }
    tl->last_snapshot = tl->pos;
}

/* Closes and reopens the model (DIR/read/current) and restarts the log reader after the
 * position the model holds. */
static int reopen_model(struct tailer *tl)
{
    bulk_stop(tl);
    snapshot_settle(tl);
    rmodel_env_close(tl->env);
    tl->env = NULL;
    log_reader_close(tl->rd);
    tl->rd = NULL;
    int rc = open_model(tl);
    if (rc == 0)
        rc = read_position(tl);
    if (rc == 0)
        rc = log_reader_open(tl->lg, tl->pos + 1, &tl->rd);
    return rc;
}

/* Resumes from the model a rebuild switched in: reopen it, restart the log reader at its
 * position and publish that position (it may be lower than the old model's). */
static int reopen_if_switched(struct tailer *tl)
{
    if (!tl->rp || rpos_generation(tl->rp) == tl->generation)
        return 0;
    tl->generation = rpos_generation(tl->rp);
    int rc = reopen_model(tl);
    if (rc)
        return rc;
    rpos_reset(tl->rp, tl->pos);
    EFLOG_INFO("switched to the rebuilt read model generation=%u position=%" PRIu64,
             tl->generation, tl->pos);
    return 0;
}

/* Capacity errors of normal life (a full disk, a full LMDB map) do not stop the tailer: the
 * failed batch was aborted, so it waits, reopens the model (LMDB may refuse a txn after a
 * failed commit) and folds again from the committed position. Queries keep answering from
 * the committed model meanwhile. */
static int wait_and_reopen(struct tailer *tl, int err)
{
    EFLOG_WARN("read model cannot grow (%s)%s; retrying in 1 s position=%" PRIu64, rmodel_strerror(err),
             err == MDB_MAP_FULL ? ": raise read_map_bytes" : "", tl->pos);
    for (int i = 0; i < 10 && !stopping(tl); i++)
        usleep(100000);
    return reopen_model(tl);
}

/* Idle: makes the model durable and drops its unsynced marker. A failure is logged and
 * retried at the next idle moment; until then the model is merely distrusted after a
 * machine crash. */
static void sync_model(struct tailer *tl)
{
    uint64_t t0 = ef_mono_ns();
    int rc = rmodel_env_sync(tl->env);
    if (rc)
        EFLOG_WARN("cannot sync the read model: %s position=%" PRIu64, rmodel_strerror(rc), tl->pos);
    else
        EFLOG_DEBUG("read model synced position=%" PRIu64 " ms=%.1f", tl->pos,
                  (double)(ef_mono_ns() - t0) / 1e6);
}

/* When a batch does not fit the map, the tailer (the only writer) doubles it rather than
 * stop folding; query workers adopt the new size on their next transaction. A map that
 * cannot grow (RMODEL_MAX_MAP, no disk space for its blocks, which are reserved first: see
 * util/lmdb_map.h, or no address space) falls back to the wait-and-retry of a full disk. */
static int grow_map(struct tailer *tl)
{
    uint64_t bytes = 0;
    bulk_stop(tl);       /* its writer's txn, and */
    snapshot_settle(tl); /* LMDB resizes a map only with no transaction active in the process */
    int rc = rmodel_env_grow(tl->env, &bytes);
    if (rc) {
        EFLOG_ERROR("read model map full and cannot grow: %s position=%" PRIu64, rmodel_strerror(rc), tl->pos);
        return rc;
    }
    EFLOG_WARN("read model map full: grown to map_bytes=%" PRIu64 " (raise read_map_bytes to "
             "start at this size) position=%" PRIu64, bytes, tl->pos);
    /* The aborted batch is read again: back to the record after the committed position. */
    log_reader_close(tl->rd);
    tl->rd = NULL;
    return log_reader_open(tl->lg, tl->pos + 1, &tl->rd);
}

static int follow(struct tailer *tl)
{
    uint64_t target = log_durable(tl->lg); /* --once: the head at start */
    int caught_up = 0, passes_left = tl->opt->once > 1 ? tl->opt->once - 1 : 0;
    for (;;) {
        int rc = reopen_if_switched(tl);
        if (rc)
            return rc;
        uint64_t limit = log_durable(tl->lg);
        if (tl->opt->once && limit > target)
            limit = target;
        int n = fold_batch(tl, limit);
        if (n == MDB_MAP_FULL) {
            rc = grow_map(tl);
            if (rc == 0)
                continue; /* the aborted batch again, in the larger map */
            if (rc != MDB_MAP_FULL && !tl->rd)
                return rc; /* no reader: cannot go on */
        }
        if (is_capacity_error(n)) {
            rc = wait_and_reopen(tl, n);
            if (rc)
                return rc;
            if (stopping(tl))
                return 0;
            continue;
        }
        if (n < 0)
            return n;
        maybe_snapshot(tl);
        if (stopping(tl) || (tl->opt->max_records && tl->committed >= tl->opt->max_records))
            return 0;
        if (n > 0 && tl->pos < limit) {
            caught_up = 0;
            continue; /* far behind: next batch at once */
        }
        if (!caught_up)
            EFLOG_INFO("caught up position=%" PRIu64, tl->pos);
        caught_up = 1;
        if (tl->opt->once && passes_left-- > 0 && (target = log_durable(tl->lg)) > tl->pos)
            continue; /* what arrived during the pass before */
        if (tl->opt->once)
            return 0;
        /* The timeout only bounds how late a stop request is noticed, and how long the
         * model stays unsynced once the log is idle (rmodel_env.h, "Lazy sync"). */
        int dirty = rmodel_env_unsynced(tl->env);
        if (!log_wait_durable(tl->lg, tl->pos, dirty ? TAILER_IDLE_SYNC_MS : 500) && dirty)
            sync_model(tl);
    }
}

int tailer_run(const struct tailer_options *opt)
{
    struct tailer tl = { .opt = opt, .lock_fd = -1 };
    int rc = open_all(&tl);
    if (rc == 0)
        rc = read_position(&tl);
    if (rc == 0 && (rc = log_reader_open(tl.lg, tl.pos + 1, &tl.rd)) != 0)
        EFLOG_ERROR("cannot read the log: %s", log_last_error(tl.lg));
    if (rc == 0) {
        rsnap_newest_position(opt->data_dir, &tl.last_snapshot);
        if (tl.last_snapshot > tl.pos)
            tl.last_snapshot = tl.pos;
        if (tl.rp)
            rpos_reset(tl.rp, tl.pos);
        EFLOG_INFO("tailer started data=%s position=%" PRIu64 " durable=%" PRIu64, opt->data_dir,
                 tl.pos, log_durable(tl.lg));
        rc = follow(&tl);
        EFLOG_INFO("tailer stopped position=%" PRIu64 " folded=%" PRIu64, tl.pos, tl.committed);
    }
    bulk_stop(&tl);
    snapshot_settle(&tl);
    log_reader_close(tl.rd);
    rpos_close(tl.rp);
    uint64_t t0 = ef_mono_ns();
    int had_model = tl.env != NULL;
    int src = rmodel_env_close_synced(tl.env); /* the marker stays if it fails: safe */
    if (src)
        EFLOG_WARN("cannot sync the read model: %s position=%" PRIu64, rmodel_strerror(src), tl.pos);
    else if (had_model)
        EFLOG_DEBUG("read model synced position=%" PRIu64 " ms=%.1f", tl.pos, (double)(ef_mono_ns() - t0) / 1e6);
    log_close(tl.lg);
    ef_unlock_file(tl.lock_fd);
    return rc;
}
