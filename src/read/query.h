/* query: the HTTP handlers of eventfold-query (API.md sections 5 and 6).
 *
 * Each worker process opens the read model read-only (after fork), the log read-only (for
 * /events, as_of and /status) and maps the shared read position. Every request runs in one
 * short read transaction, and its Log-Position is the position stored in that transaction,
 * so the answer and the header always agree.
 *
 * Guarantees
 *  - Min-Position P (header or ?min_position=) is answered only from a model with R >= P;
 *    the wait sleeps on the read-position futex (no polling) up to Prefer: wait=S seconds
 *    (default 2, at most max_wait_seconds), then 503 not_caught_up with Retry-After: 1.
 *  - A model switch (rebuild) is seen through the generation counter of the position file:
 *    the env is reopened between requests, never during one (a rwlock), so an answer comes
 *    from the old or the new model, never a mix.
 *  - Methods other than GET get 405 with Allow: GET.
 *
 * Caveat: the server runs several request threads per worker; everything here is
 * thread-safe (LMDB env opened with MDB_NOTLS, one read txn per request).
 */
#ifndef EF_QUERY_H
#define EF_QUERY_H

#include "server/server.h"
#include "util/config.h"

/* In the master, before any worker starts: opens the log as the workers do (follow mode:
 * read-only in fact, see log.h), so that a log that cannot be read (a missing segment, a
 * record of a newer format) stops the program at once with one line instead of a loop of
 * workers dying in query_worker_init. Closes it again before returning.
 * Returns 0, or -1 with the cause in err ("cannot open the log: segment S offset N: ..."). */
int query_preflight(const struct ef_config *cfg, char *err, size_t errlen);

/* server_options callbacks. */
int query_worker_init(void **ctx, const struct ef_config *cfg);
void query_worker_fini(void *ctx);
void query_handle(struct server_request *req, void *ctx);

#endif
