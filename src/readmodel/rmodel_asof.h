/* rmodel_asof: an order as it was after some of its events (time travel, ?as_of=).
 *
 * The caller reads the order's own records from the log (rmodel_stream_locs, rmodel_query.h,
 * says where), oldest first, up to the position asked for; each is folded into a view of
 * its own, outside the store, with the fold's order logic, and the view is rendered like
 * rmodel_render_order.
 *
 * Guarantees: the view is self-contained (it copies what it keeps), so records may be freed
 * after each rmodel_asof_apply; a record that cannot be applied leaves the view unchanged.
 *
 * Caveat: OrderCreated v1 lines are upcast from the items in txn, as the model holds them
 * now.
 */
#ifndef EF_RMODEL_ASOF_H
#define EF_RMODEL_ASOF_H

#include <stdint.h>

#include "log/record.h"
#include "readmodel/rmodel.h"
#include "util/sbuf.h"

struct rmodel_asof;
/* A new, empty view; owned by the caller, freed by rmodel_asof_free. Never NULL (xalloc). */
struct rmodel_asof *rmodel_asof_new(void);
void rmodel_asof_free(struct rmodel_asof *a); /* accepts NULL */
/* Applies rec, the order stream's next record. Returns 0, 1 when the record cannot be
 * applied (the view is left unchanged), or a negative code. */
int rmodel_asof_apply(struct rmodel_txn *txn, struct rmodel_asof *a, const struct log_record *rec);
/* Appends the view as GET /api/orders/{id} would; *version is its stream version.
 * RMODEL_ENOTFOUND if no OrderCreated was applied. */
int rmodel_asof_render(struct rmodel_asof *a, struct sbuf *out, uint64_t *version);

#endif
