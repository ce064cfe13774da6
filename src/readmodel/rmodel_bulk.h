/* rmodel_bulk: bulk loading whose commits overlap the fold (rebuilds).
 *
 * A rebuild folds the log in bulk transactions (rmodel_env.h, rmodel_txn_begin_bulk): rows
 * in memory, sorted and written at the commit. Folding a batch and writing it take
 * comparable time, and each keeps one core busy, so here they run side by side: while a
 * writer thread sorts batch N, writes it into LMDB and commits it, the caller folds batch
 * N + 1 in memory.
 *
 * Guarantees
 *  - The model committed is the one rmodel_txn_begin_bulk's batches would give, row for
 *    row: a batch's txn reads each row as the batches before it left it (its own rows,
 *    then those of the batch being written, then LMDB's committed ones).
 *  - Batches commit one at a time, in order, each with the position it reached
 *    (rmodel_set_position in the batch), so the model is always at the end of a batch.
 *  - A commit that fails (a full map or disk) is reported by the rmodel_bulk_submit() or
 *    rmodel_bulk_wait() that learns of it, with the position the model holds (the end of
 *    the last batch committed); the batch folded meanwhile is dropped. The caller stops
 *    the pipeline and folds again from that position.
 *  - Into a model whose projections were empty at rmodel_bulk_start() (a rebuild from
 *    scratch), a row no batch wrote is known not to exist without searching LMDB: a filter
 *    (util/bloom.h) of the keys written says so.
 *
 * Costs: memory of two batches (the one being folded and the one being written) and the
 * filter (2 to 4 bytes per row written); one thread more.
 *
 * Caveats
 *  - While a pipeline runs, the env has no other transaction in this process: the writer
 *    holds LMDB's write lock, and the map can be resized only once rmodel_bulk_stop()
 *    returned.
 *  - A batch's txn only reads LMDB. The fold's rows are all cached or buffered, so it
 *    works; a read of a write-only database (streams, positions, user_orders) in it is
 *    refused (RMODEL_EBADARG).
 */
#ifndef EF_RMODEL_BULK_H
#define EF_RMODEL_BULK_H

#include <stddef.h>
#include <stdint.h>

#include "readmodel/rmodel.h"

struct rmodel_bulk;

/* Starts the writer thread of a pipeline on env (a writable env). *out is freed by
 * rmodel_bulk_stop(). Returns 0 or a negative code (then there is no pipeline). */
int rmodel_bulk_start(struct rmodel_env *env, struct rmodel_bulk **out);
/* Begins the next batch: a txn for rmodel_fold(), rmodel_set_position() and rmodel_txn_bytes(),
 * ended by rmodel_bulk_submit() or rmodel_txn_abort(). rows: a hint, as
 * rmodel_txn_begin_bulk's. */
int rmodel_bulk_begin(struct rmodel_bulk *b, size_t rows, struct rmodel_txn **out);
/* Hands batch t (ended by this call) to the writer, once the batch before it is committed,
 * and returns at once. position: the position t reached (its rmodel_set_position). Returns 0,
 * or the error that failed the commit of an earlier batch (t is then dropped). *committed:
 * the position the model holds. */
int rmodel_bulk_submit(struct rmodel_bulk *b, struct rmodel_txn *t, uint64_t position, uint64_t *committed);
/* Waits until every batch submitted is committed: 0, or the error of the one that failed.
 * *committed: the position the model holds. */
int rmodel_bulk_wait(struct rmodel_bulk *b, uint64_t *committed);
/* Waits for the writer, stops it and frees the pipeline (accepts NULL). The env is as
 * before rmodel_bulk_start(), holding every batch committed. */
void rmodel_bulk_stop(struct rmodel_bulk *b);

#endif
