/* rmodel_dlq: the read model's dead letters, events the fold could not apply.
 *
 * A dead letter names the record's log position, when it was recorded, the projection and
 * the reason (rmodel_fold.h records them). An operator lists them and retries or drops one
 * (eventfoldctl dlq; GET /api/status counts them).
 *
 * Guarantees: a retry applies the record whole or not at all, as the fold does; the dead
 * letter goes only when the record was applied.
 *
 * Caveat: the caller reads the record back from the log (rmodel_dlq_get gives where) and
 * must pass the one the dead letter names.
 */
#ifndef EF_RMODEL_DLQ_H
#define EF_RMODEL_DLQ_H

#include <stdint.h>

#include "log/record.h"
#include "readmodel/rmodel.h"
#include "util/sbuf.h"

/* Applies rec again for dead letter id (dlq retry): on success the dead letter is removed
 * and 0 returned; if it still cannot be applied, 1 and the dead letter's reason is
 * updated. The record must be the one the dead letter names. */
int rmodel_dlq_retry(struct rmodel_txn *txn, uint64_t id, const struct log_record *rec);
/* Removes dead letter id (dlq drop). RMODEL_ENOTFOUND if there is none. */
int rmodel_dlq_drop(struct rmodel_txn *txn, uint64_t id);
/* Looks up dead letter id's log position, segment and offset (for retry). */
int rmodel_dlq_get(struct rmodel_txn *txn, uint64_t id, uint64_t *position, uint64_t *segment,
               uint64_t *offset);
/* Number of dead letters. */
int rmodel_dlq_count(struct rmodel_txn *txn, uint64_t *count);
/* Appends {"dead_letters": [{"id","position","projection","reason","at"}...]} to out. */
int rmodel_dlq_render(struct rmodel_txn *txn, struct sbuf *out);

#endif
