/* handler: eventfold-command's FastCGI side: per-worker setup (open the log and the write
 * model after fork) and the request handler that turns a struct server_request into a
 * write_execute() call and its answer.
 */
#ifndef EF_WRITE_HANDLER_H
#define EF_WRITE_HANDLER_H

#include "server/server.h"
#include "util/config.h"

/* Checks, in the master before any worker starts, that the data directory exists and can
 * be written (and so can its log/ and write/ directories when they exist), so that a wrong
 * --data fails at once with one line instead of a loop of workers dying in worker_init.
 * Creates nothing. Returns 0, or -1 with the cause in err ("data directory 'X': ..."). */
int write_preflight(const struct ef_config *cfg, char *err, size_t errlen);

/* server_options.worker_init: opens DIR/log (read-write) and DIR/write, catching the write
 * model up or rebuilding it (replay.h, from a snapshot when there is one), and starts the
 * worker's write-model snapshot thread (wsnap.h). Returns 0 or -1 (logged). */
int write_worker_init(void **worker_ctx, const struct ef_config *cfg);
void write_worker_fini(void *worker_ctx);
/* server_options.handler. */
void write_handler(struct server_request *req, void *worker_ctx);

#endif
