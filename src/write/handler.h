/* handler: eventfold-command's FastCGI side: per-worker setup (open the log and the write
 * model after fork) and the request handler that turns a struct server_request into a
 * write_execute() call and its answer.
 */
#ifndef EF_WRITE_HANDLER_H
#define EF_WRITE_HANDLER_H

#include "server/server.h"
#include "util/config.h"

/* server_options.worker_init: opens DIR/log (read-write) and DIR/write, catching the write
 * model up or rebuilding it (replay.h). Returns 0 or -1 (logged). */
int write_worker_init(void **worker_ctx, const struct ef_config *cfg);
void write_worker_fini(void *worker_ctx);
/* server_options.handler. */
void write_handler(struct server_request *req, void *worker_ctx);

#endif
