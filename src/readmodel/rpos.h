/* rpos: the read position shared by the tailer and the query workers.
 *
 * A small file (DIR/read/position) that every process maps: the position the read model
 * has committed, a futex word bumped at each publish, and a model generation bumped when a
 * rebuilt model replaces the current one (query workers then reopen it). The tailer
 * publishes after each commit and wakes every waiter (FUTEX_WAKE on a shared mapping, so it
 * crosses processes); in each query worker one watcher thread sleeps on the futex (no
 * polling) and wakes the worker's parked queries (server.h).
 *
 * Guarantees
 *  - rpos_position() never exceeds what the read model has committed: the tailer publishes
 *    only after rmodel_txn_commit() returned.
 *  - rpos_wait() returns as soon as the position passes `after`, or at the timeout; spurious
 *    early returns are possible, so callers loop on their own condition.
 *
 * Caveats
 *  - The file holds no data that cannot be recomputed: at start the tailer publishes the
 *    model's position. A missing file is created (zero) by whoever opens it first.
 *  - Positions are published by the tailer. A rebuild, at its switch, resets the position to
 *    the new model's and bumps the generation (under the rebuild lock, not the tailer's):
 *    until the tailer sees the new generation it may still publish the old model's
 *    position. Readers answer with the position stored in their own read transaction, so
 *    that costs at most an early wake-up, never a wrong Log-Position.
 */
#ifndef EF_RPOS_H
#define EF_RPOS_H

#include <stdint.h>

struct rpos;

/* Maps (creating if needed) the position file at path. Returns 0 or a negative errno.
 * *out is owned by the caller, freed by rpos_close(). */
int rpos_open(const char *path, struct rpos **out);
void rpos_close(struct rpos *rp); /* accepts NULL */

uint64_t rpos_position(const struct rpos *rp);
uint32_t rpos_generation(const struct rpos *rp);

/* Stores pos and wakes every waiter (the live tailer, after each commit). */
void rpos_publish(struct rpos *rp, uint64_t pos);
/* Bumps the model generation (after an atomic model switch) and wakes every waiter. */
void rpos_bump_generation(struct rpos *rp);
/* Sets the position even if lower (a model switch to a model at another position). */
void rpos_reset(struct rpos *rp, uint64_t pos);

/* Sleeps until rpos_position() > after or timeout_ms passes. Returns 1 if it moved, 0 on
 * timeout. */
int rpos_wait(const struct rpos *rp, uint64_t after, int timeout_ms);

#endif
