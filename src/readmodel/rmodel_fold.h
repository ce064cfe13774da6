/* rmodel_fold: what one event does to the read model's projections.
 *
 * The tailer (fold/tailer.h) applies each durable record, in log order, to a write
 * transaction (rmodel_env.h) and stores the position reached before it commits.
 *
 * Guarantees
 *  - rmodel_fold either applies the whole event, or (when the event cannot be applied:
 *    unknown type, schema it cannot upcast, data it cannot fold) applies nothing to the
 *    projections and records a dead letter instead (rmodel_dlq.h). Every check that can
 *    dead-letter an event runs before its first write, so no event is ever half-applied.
 *  - Every event is indexed (streams, positions) even when dead-lettered: it is in the log.
 *
 * Caveat: the caller enforces the order of positions; a failure of the store itself leaves
 * the transaction unusable (abort it).
 */
#ifndef EF_RMODEL_FOLD_H
#define EF_RMODEL_FOLD_H

#include "log/record.h"
#include "readmodel/rmodel.h"

/* Applies rec (a verified record) to the model. Returns 0 when applied, 1 when it was
 * recorded as a dead letter (EFLOG_WARN names position and reason), or a negative code for
 * a failure of the store itself (MDB_MAP_FULL, I/O): then the transaction must be aborted.
 * rec->position must be the next position (rmodel_position() + 1 as seen by this txn's batch);
 * the caller enforces that. */
int rmodel_fold(struct rmodel_txn *txn, const struct log_record *rec);

#endif
