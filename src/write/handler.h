/* handler: eventfold-command's FastCGI side: per-worker setup (open the log and the write
 * model after fork) and the request handler that turns a struct server_request into a
 * write_execute() call and its answer.
 */
#ifndef EF_WRITE_HANDLER_H
#define EF_WRITE_HANDLER_H

#include "server/server.h"
#include "util/config.h"

/* Checks, in the master before any worker starts, that the data directory exists and can
 * be written (and so can its log/ and write/ directories when they exist), then opens the
 * log and the write model as a worker would, so that a wrong --data or a log that cannot
 * be opened (a missing segment, a record of a newer format) fails at once with one line
 * instead of a loop of workers dying in worker_init. This does the log's recovery and the
 * model's catch-up or rebuild, which the workers then need not repeat; it creates log/
 * and write/ when they are absent. The write model is closed again; the log stays open in
 * the master until write_preflight_end() (each worker closes its inherited copy in
 * write_worker_init, before opening its own). Returns 0, or a negative code (errno's, the
 * log's, the write model's; -EROFS for a read replica) with the cause in err ("data
 * directory 'X': ...", "cannot open the log: segment S offset N: ..."). */
int write_preflight(const struct ef_config *cfg, char *err, size_t errlen);
/* Closes the master's log handle of write_preflight (none: no-op). */
void write_preflight_end(void);

/* server_options.worker_init: closes the log handle inherited from write_preflight, opens
 * DIR/log (read-write) and DIR/write, catching the write model up or rebuilding it
 * (replay.h, from a snapshot when there is one), and starts the worker's write-model
 * snapshot thread (wsnap.h). Returns 0 or -1 (logged). */
int write_worker_init(void **worker_ctx, const struct ef_config *cfg);
void write_worker_fini(void *worker_ctx);
/* server_options.handler. */
void write_handler(struct server_request *req, void *worker_ctx);
/* The log's durable position: the Log-Position of answers the server makes itself
 * (server_options.answer_position), as of the write side's own problem answers. */
uint64_t write_position(void *worker_ctx);

#endif
