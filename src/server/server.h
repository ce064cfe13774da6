/* server: the FastCGI process model shared by eventfold-command and eventfold-query.
 *
 * A master process takes the listening socket (fd 0 from spawn-fcgi or systemd
 * StandardInput=socket, LISTEN_FDS from systemd socket activation, or --listen unix:PATH /
 * HOST:PORT), pre-forks `workers` worker processes and restarts one that dies (with a
 * back-off if they die at once). Each worker runs `threads` threads that each accept
 * requests with FCGX_Accept_r, so a request that waits (Min-Position, long-poll) does not
 * block the others. SIGTERM/SIGINT: the master forwards SIGTERM; workers stop accepting,
 * finish in-flight requests, and exit; the master exits 0 when all have.
 *
 * Per-request work happens in a handler that receives a struct server_request: the
 * parsed CGI parameters, the body (read in full, limited to max_body bytes, else 413
 * answered by the server itself), and helpers to answer. Request memory is freed when the
 * handler returns.
 *
 * Caveat: open LMDB environments and the log in worker_init (after fork), never in the
 * master.
 */
#ifndef EF_SERVER_H
#define EF_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "util/config.h"
#include "util/sbuf.h"

struct server_request {
    /* Valid until the handler returns. */
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* path without the query string, percent-decoding NOT applied */
    const char *query;        /* QUERY_STRING, "" if none */
    const char *content_type; /* "" if none */
    const char *body;         /* NUL-terminated after body_len; "" if none */
    size_t body_len;
    uint64_t started_ns;      /* ef_mono_ns() when the request was accepted */
    void *impl;               /* the server's own state (FCGX_Request, ...) */
};

/* Returns the value of HTTP request header `name` (e.g. "If-Match", "Min-Position"),
 * or NULL. Valid until the handler returns. */
const char *server_header(struct server_request *req, const char *name);
/* Returns the decoded value of query parameter `name`, or NULL; valid until the handler
 * returns. A parameter given twice returns the first. */
const char *server_query_param(struct server_request *req, const char *name);

/* Answers the request. `headers` is extra header lines, each ending in "\r\n" (may be
 * NULL). Content-Type is set by the helper. Call exactly one answer function per request;
 * the route label is used for metrics (e.g. "POST /api/orders"). */
void server_respond(struct server_request *req, int status, const char *content_type,
                    const char *headers, const char *body, size_t body_len);
void server_respond_json(struct server_request *req, int status, const char *headers,
                         const struct sbuf *body);
/* RFC 9457 problem: {"type":"/problems/CODE","title","status","detail","code"} plus
 * `errors` (a JSON array text, or NULL). Adds headers (may be NULL). */
void server_respond_problem(struct server_request *req, int status, const char *code,
                            const char *detail, const char *errors_json, const char *headers);
/* Labels the request for metrics (route template such as "GET /api/orders/{id}"). */
void server_set_route(struct server_request *req, const char *route);

typedef void (*server_handler_fn)(struct server_request *req, void *worker_ctx);

struct server_options {
    const char *prog;             /* program name for logs */
    const struct ef_config *cfg;  /* listen, workers, threads, ... */
    int threads;                  /* request threads per worker (>= 1) */
    size_t max_body;              /* bytes; larger bodies get 413 payload_too_large */
    /* Called in each worker after fork; returns 0 or -1 (the worker exits 1, logged). */
    int (*worker_init)(void **worker_ctx, const struct ef_config *cfg);
    void (*worker_fini)(void *worker_ctx);
    server_handler_fn handler;
    /* Extra metrics text appended to GET /metrics output by the handler (optional). */
};

/* Runs the master until SIGTERM/SIGINT. Returns the process exit status (0 clean). */
int server_run(const struct server_options *opt);

/* Shared-memory metrics (created by server_run before fork; counters are atomic). */
void server_metrics_render(struct sbuf *out);

#endif
