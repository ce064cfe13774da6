/* tailer: follows the log and folds its durable records into the read model.
 *
 * Guarantees
 *  - Only records <= log_durable() are folded (API.md section 7), so after a power loss the
 *    read model is never ahead of the log.
 *  - Each batch and the position it reached commit in one LMDB transaction; the position is
 *    published (rpos) only after the commit. A crash at any point leaves the model at the
 *    last committed position, and the next start resumes from there.
 *  - Batches adapt: up to TAILER_BATCH_MAX records or TAILER_BATCH_MS while far behind
 *    (throughput); when the durable head is reached the batch commits at once (low lag).
 *    Caught up, it sleeps in log_wait_durable() (a futex): no polling.
 *  - Commits do not wait for the disk (rmodel_env.h, "Lazy sync"): a batch is visible to queries
 *    as soon as LMDB has written it to the page cache. After TAILER_IDLE_SYNC_MS without
 *    new records, and on exit, the model is synced. A model found torn by a machine crash
 *    is replaced by the newest snapshot (model_switch.h) and folded on.
 *  - A checksum failure stops the tailer (TAILER_EDAMAGE, logged with segment and offset):
 *    damage is never skipped. An event that cannot be applied is a dead letter, and
 *    folding goes on.
 *  - A full disk or a full LMDB map is not fatal: the batch is aborted, logged, and retried
 *    every second from the committed position.
 *  - Memory is bounded by one batch's transaction, whatever the log's length: at most
 *    TAILER_BATCH_MAX records, or bulk_bytes of pending rows in bulk mode (rebuilds).
 *  - Bulk mode commits a batch in a writer thread while the next one is folded
 *    (readmodel/rmodel_bulk.h): two batches of bulk_bytes / 2 each. A batch is committed
 *    before the next but one is handed over, every pass ends with its last batch committed,
 *    and a failed commit takes the fold back to the position the model holds, as an
 *    aborted batch does. Where the thread cannot start, batches commit one by one.
 *  - Snapshots (every snapshot_every events) are copied by a thread of their own while
 *    folding goes on: the loop never waits for a copy, except when the model must be
 *    closed or its map grown (a rebuild's switch; a map that fills during a copy, which
 *    starts only with half the map free) and at exit.
 *  - When a rebuild switches DIR/read/current (the generation in the position file moves),
 *    the live tailer closes its model, opens the new one and resumes from its position.
 */
#ifndef EF_TAILER_H
#define EF_TAILER_H

#include <signal.h>
#include <stdint.h>

#define TAILER_BATCH_MAX 10000
#define TAILER_BATCH_MS 250
/* Caught up with an unsynced model (rmodel_env.h, "Lazy sync"): sync after this much idleness. */
#define TAILER_IDLE_SYNC_MS 1000

/* The tailer's own codes (its range in util/ef_error.h); it also passes on the log's, the
 * read model's, LMDB's and negative errno values. */
enum {
    TAILER_EDAMAGE = -12001, /* a record failed verification (log_last_error says where) */
    TAILER_ESEQ = -12002,    /* the log returned a position other than the next one */
};

struct tailer_options {
    const char *data_dir;
    uint64_t segment_bytes;  /* passed to log_open (0: default) */
    uint64_t map_bytes;      /* read model map size (0: default) */
    /* Catch up to the durable head seen at start, then return; n > 1: then catch up n - 1
     * more times to the head seen when the pass before ended (what arrived meanwhile). */
    int once;
    uint64_t snapshot_every; /* events between snapshots (0: never) */
    int snapshot_keep;
    /* Set (by a signal handler) to stop: the current batch is committed first. */
    volatile sig_atomic_t *stop;
    /* Records per batch at most (0: TAILER_BATCH_MAX); tests use small batches. */
    int batch_max;
    /* Tests: stop after this many records were committed in total (0: no limit). */
    uint64_t max_records;
    /* Rebuild: fold into this model directory instead of DIR/read/current, without the
     * tailer lock, the shared position or snapshots (NULL: the live tailer). */
    const char *model_dir;
    /* Bulk loading (rebuilds, with model_dir): a batch is one bulk transaction (of the
     * pipeline, rmodel_bulk.h, or rmodel_txn_begin_bulk) that commits when its pending rows
     * hold this many bytes (half as many in the pipeline, which holds two), or at the end;
     * batch_max and TAILER_BATCH_MS do not apply. 0: live batches. */
    uint64_t bulk_bytes;
    /* Called after each committed batch (may be NULL): position reached, durable head; in
     * bulk mode also every 65536 records folded (the position folded, not yet committed). */
    void (*progress)(uint64_t position, uint64_t head, void *arg);
    void *progress_arg;
};

/* Runs until *stop, until caught up with --once, or until an error. Returns 0, or a
 * negative code (logged with its cause). */
int tailer_run(const struct tailer_options *opt);

/* Returns a static description of a code: the tailer's own, or ef_strerror()'s for any other. */
const char *tailer_strerror(int err);

#endif
