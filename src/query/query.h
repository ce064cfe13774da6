/* query: the HTTP handlers of eventfold-query (API.md sections 5 and 6).
 *
 * Each worker process opens the read model read-only (after fork), the log read-only (for
 * /events, as_of and /status) and maps the shared read position. Every request runs in one
 * short read transaction, and its Log-Position is the position stored in that transaction,
 * so the answer and the header always agree.
 *
 * Guarantees
 *  - Min-Position P (header or ?min_position=) is answered only from a model with R >= P.
 *    A request that must wait for it is parked (server_park): it holds no request thread,
 *    and the worker's loop runs the handler again when the tailer publishes R >= P (the
 *    read-position futex, through the server's watcher thread) or when Prefer: wait=S
 *    seconds (default 2, at most max_wait_seconds) have passed since it arrived: then 503
 *    not_caught_up with Retry-After: 1. /api/events with Prefer: wait=S long-polls the same
 *    way when nothing is after `after` yet, and answers what there is (maybe an empty
 *    page) at the deadline; with Min-Position too, both waits share that one deadline.
 *    Past max_waiting parked requests (all workers), 503 too_many_waiting with
 *    Retry-After: 1 at once. When the worker stops, parked requests are answered (503
 *    not_caught_up, or the events there are).
 *  - Every answer is rendered into memory; the read txn is ended and the env lock dropped
 *    before the server sends it (server.h), so a client that reads slowly or not at all
 *    holds no transaction, lock or thread, and never delays a model switch or map resize.
 *  - An /api/events page stops at about QUERY_PAGE_BYTES (1 MiB) of JSON, with at least
 *    one event when one exists; last_position says where to go on. History reads
 *    (/api/orders/{id}/events, ?as_of=) read only the records they need from the log.
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

#include <stdint.h>

#include "server/server.h"
#include "util/config.h"

/* In the master, before any worker starts: opens the log as the workers do (follow mode:
 * read-only in fact, see log.h), so that a log that cannot be read (a missing segment, a
 * record of a newer format) stops the program at once with one line instead of a loop of
 * workers dying in query_worker_init. Closes it again before returning.
 * Returns 0, or a negative code (errno's or the log's) with the cause in err ("cannot open
 * the log: segment S offset N: ..."). */
int query_preflight(const struct ef_config *cfg, char *err, size_t errlen);

/* server_options callbacks. */
int query_worker_init(void **ctx, const struct ef_config *cfg);
void query_worker_fini(void *ctx);
void query_handle(struct server_request *req, void *ctx);
/* server_options.position / wait_position / park_headers: the published read position,
 * a futex wait for it to pass `after`, and the headers a parked query needs again. */
uint64_t query_position(void *ctx);
void query_wait_published(void *ctx, uint64_t after, int timeout_ms);
/* server_options.housekeeping: reopens a switched read model in a worker without requests. */
void query_housekeeping(void *ctx);
extern const char *const query_park_headers[];

#endif
