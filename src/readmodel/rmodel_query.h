/* rmodel_query: the read model's projections as the API's JSON (API.md section 5), and
 * where a stream's or a position's record is in the log.
 *
 * Each render function appends one JSON document to out from one transaction, so an answer
 * never mixes two positions of the model.
 *
 * Caveats
 *  - Ids are validated by the query handlers (query_params.c); here an id that names
 *    nothing is RMODEL_ENOTFOUND.
 *  - Render into memory and end the transaction before sending (STYLE.md, "never send
 *    while holding").
 */
#ifndef EF_RMODEL_QUERY_H
#define EF_RMODEL_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "readmodel/rmodel.h"
#include "util/sbuf.h"

/* GET /api/orders/{id}; *version is the order's stream version (for ETag). */
int rmodel_render_order(struct rmodel_txn *txn, const char *id, size_t id_len, struct sbuf *out,
                    uint64_t *version);
/* GET /api/users/{id} */
int rmodel_render_user(struct rmodel_txn *txn, const char *id, size_t id_len, struct sbuf *out);
/* GET /api/users/{id}/orders: newest first, at most limit; cursor 0 = from the newest, else
 * the value of a previous next_cursor (orders created strictly before it). RMODEL_ENOTFOUND
 * when the user does not exist. */
int rmodel_render_user_orders(struct rmodel_txn *txn, const char *id, size_t id_len, unsigned limit,
                          uint64_t cursor, struct sbuf *out);
/* GET /api/items/{id} */
int rmodel_render_item(struct rmodel_txn *txn, const char *id, size_t id_len, struct sbuf *out);
/* GET /api/stats/daily: days from..to inclusive ("YYYY-MM-DD", validated by the caller). */
int rmodel_render_daily(struct rmodel_txn *txn, const char *from, const char *to, struct sbuf *out);

/* Location of a record in the local log. */
struct rmodel_loc {
    uint64_t position;
    uint64_t version; /* its stream version (rmodel_stream_locs; 0 from rmodel_position_loc) */
    uint64_t segment;
    uint64_t offset;
};
/* The locations of stream's events from version from_version on, oldest first, at most max
 * (> 0) into locs; *n how many were stored and *more 1 if there were more (continue from
 * the last one's version + 1). RMODEL_ENOTFOUND for an empty stream. */
int rmodel_stream_locs(struct rmodel_txn *txn, const char *stream, size_t stream_len, uint64_t from_version,
                   struct rmodel_loc *locs, size_t max, size_t *n, int *more);
/* The location of position pos (RMODEL_ENOTFOUND if it was never folded). */
int rmodel_position_loc(struct rmodel_txn *txn, uint64_t pos, struct rmodel_loc *loc);

#endif
