/* rebuild: builds a new read model beside the current one and switches to it atomically.
 *
 * Steps: a new DIR/read/model-N directory is seeded from the newest snapshot that passes
 * rsnap_verify() (a damaged one is skipped with a warning, then the next older), or
 * left empty (from_scratch, or no valid snapshot); the log is folded into it from its
 * position to the durable head (the tailer's fold loop, tailer.h); then DIR/read/current
 * is switched to it with one rename(2) and the generation in the position file is bumped,
 * so query workers and the live tailer reopen it. The old model is removed afterwards.
 * Seeding and switching are model_switch.h's, shared with the live tailer.
 *
 * Guarantees: queries keep being answered from the old model until the switch, then from
 * the new one; no answer mixes them (query.h). Only one rebuild runs at a time (the
 * rebuild lock, model_switch.h).
 */
#ifndef EF_REBUILD_H
#define EF_REBUILD_H

#include <stdint.h>

/* How far a rebuild's fold is, for a program to show: the library itself prints nothing. */
struct rebuild_progress {
    uint64_t from;     /* where folding started (the snapshot's position, or 0) */
    uint64_t position; /* folded so far */
    uint64_t head;     /* the log's durable head */
    double seconds;    /* since the rebuild began */
};

struct rebuild_options {
    const char *data_dir;
    uint64_t map_bytes;
    uint64_t segment_bytes;
    int from_scratch;
    /* Called (may be NULL) in the rebuilding thread after each committed batch of the fold
     * and every 65536 records of a bulk one; progress_arg is passed through. */
    void (*progress)(const struct rebuild_progress *p, void *arg);
    void *progress_arg;
    /* Memory budget of the fold's pending rows (0: REBUILD_MEMORY_BYTES); see below. */
    uint64_t memory_bytes;
};

/* A rebuild folds in bulk transactions (tailer.h, bulk_bytes): the rows it writes stay in
 * memory and reach LMDB sorted, at once, when they hold half this many bytes or the log
 * ends; a writer thread commits each batch while the next one is folded
 * (readmodel/rmodel_bulk.h), so two batches share the budget. Rows sorted after every key
 * their database holds are appended (MDB_APPEND: all of them into the new, empty model's
 * first batch); a longer log costs more commits of ordinary sorted puts, never more
 * memory. On top come LMDB's own dirty pages of a commit (with a writable map, the
 * default, they are the map's file pages, not private memory) and, from scratch, a filter
 * of the keys written (util/bloom.h: 2 to 8 bytes per row). A larger budget appends more
 * of a long log, but its rows are touched in fresh memory and sorted out of the CPU
 * caches: past this size that cost more than appending saved (bench/README.md, "Rebuild
 * memory budget"). */
#define REBUILD_MEMORY_BYTES (64ull << 20)

struct rebuild_result {
    uint64_t from_position; /* where folding started (the snapshot's position, or 0) */
    uint64_t position;      /* the new model's position at the switch */
    double seconds;
};

/* Returns 0, or a negative code (logged). */
int rebuild_run(const struct rebuild_options *opt, struct rebuild_result *res);

#endif
