/* server: the FastCGI process model shared by eventfold-command and eventfold-query.
 *
 * A master process takes the listening socket: --listen unix:PATH (created with mode 0666
 * so the distribution's nginx user can connect; a stale socket file left by a crash is
 * replaced, a live one is an error; the file is removed at exit) or HOST:PORT
 * (SO_REUSEADDR); without --listen, LISTEN_FDS/LISTEN_PID from systemd socket activation
 * (fd 3), else fd 0 (spawn-fcgi, systemd StandardInput=socket). It pre-forks `workers`
 * worker processes and restarts one that dies (logged with pid and exit status or signal;
 * a worker that dies within a second of its start delays the next start, doubling from
 * 100 ms up to 5 s). Workers that cannot start (they die before their request threads run,
 * or within a second without answering anything) make the master give up and exit 1 once
 * at least 5 of them died in a row, without any request answered in between, and the next
 * attempt would come 5 s or more after the first of them (about 3 s of attempts with one
 * worker); a program should check what it can in the master first (write_preflight) so
 * that a known cause stops it at once. Each worker runs `threads` threads that each
 * accept requests with FCGX_Accept_r and run the handler.
 *
 * Waiting and sending hold no request thread. Each worker also runs one event loop
 * thread (hold.c: epoll, a deadline heap, a heap of wanted positions) and a watcher
 * thread that turns changes of the position given by server_options.position into
 * wake-ups of the loop. A handler that must wait for a position calls server_park() and
 * returns: the request (its connection, FastCGI request id, method, path, query and the
 * headers named in park_headers: a few hundred bytes) is held by the loop, libfcgi's streams
 * are freed and the thread accepts the next request. The loop runs the handler again for
 * it when the position reaches what it wants, at its wake time, or when the worker stops,
 * and drops it at once (counted, nothing sent) when the front end closes the connection.
 * Parked requests of all workers together are bounded by max_waiting (server_park then
 * fails with SERVER_PARK_FULL; the count may overshoot by the number of request threads
 * parking at the same instant). Answers are rendered into memory by the handler and sent
 * after it returned (so after its read transaction and locks are gone): the server
 * writes the FastCGI records itself (non-blocking sendmsg, iovecs over the header block
 * and the body, which is not copied again with server_respond_take). What the socket does
 * not take at once is sent by the loop (EPOLLOUT); an answer not sent within
 * send_timeout_seconds, or the oldest unsent ones once they hold more than
 * max_unsent_bytes, are abandoned and their connections closed (one log line each). A parked or
 * partly sent request's connection is closed after its answer, also when the front end
 * asked to keep it (FCGI_KEEP_CONN); the shipped nginx snippet does not.
 *
 * Stopping: SIGTERM/SIGINT to the master are forwarded to the workers as SIGTERM. A worker
 * stops accepting at once (threads wait for the listen socket and a wake-up eventfd, never
 * in a blocking accept), lets in-flight requests finish and be answered, then exits 0;
 * parked requests are run again at once (server_stopping() is then 1: the handler answers
 * with what it has and must not park again), answers being sent get the rest of the grace
 * period. A worker whose requests have not
 * finished `grace_seconds` after SIGTERM exits 1 anyway, and the master SIGKILLs a worker
 * still alive a few seconds after that. The master exits 0 when all are gone. SIGHUP is
 * ignored. A worker gets SIGTERM if the master dies.
 *
 * Per-request work happens in a handler that receives a struct server_request: the
 * parsed CGI parameters, the body (read in full, limited to max_body bytes, else 413
 * payload_too_large answered by the server without calling the handler), and helpers to
 * answer. Request memory is freed when the handler returns. Every answer is counted in
 * shared-memory metrics (by route label and status, plus a latency histogram per route);
 * with metrics_file set they live in a file another program can render too.
 *
 * Caveats: open LMDB environments and the log in worker_init (after fork), never in the
 * master. Handlers run in request threads and, for parked requests, in the loop thread:
 * they must be thread-safe and must not block for long. A worker raises its open-file
 * limit to the hard limit (a parked request holds its connection). Memory: an unsent
 * answer is held until sent or send_timeout_seconds pass. The listening socket is made non-blocking (O_NONBLOCK is shared by every
 * process holding the socket, e.g. systemd; none of them blocks in accept on it). With
 * nginx `fastcgi_keep_conn on`, a kept connection pins one request thread. libfcgi
 * reads a request with blocking I/O, so a client that connects and stalls mid-request
 * holds a request thread until it closes (libfcgi drops a unix-socket client that sends
 * nothing at all within 2 s); at stop, the grace period bounds it.
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
    const char *path;         /* DOCUMENT_URI if the front end sends it (nginx: decoded and
                               * normalized), else REQUEST_URI up to '?', as sent */
    const char *query;        /* QUERY_STRING, "" if none */
    const char *content_type; /* "" if none */
    const char *body;         /* NUL-terminated after body_len; "" if none */
    size_t body_len;
    uint64_t started_ns;      /* ef_mono_ns() when the request was accepted */
    /* For a handler that parks: 0 on its first run; whatever the handler stores here is
     * kept while the request is parked and given back on the next run (e.g. the wait's
     * deadline, so that several waits of one request share it). */
    uint64_t wait_deadline_ns;
    unsigned runs;            /* 0 on the first run, then how often it was run again */
    void *impl;               /* the server's own state (FCGX_Request, ...) */
};

/* Returns the value of HTTP request header `name` (e.g. "If-Match", "Min-Position"),
 * or NULL. The name is case-insensitive and mapped to its CGI form (HTTP_IF_MATCH;
 * Content-Type and Content-Length without the HTTP_ prefix). Valid until the handler
 * returns. */
const char *server_header(struct server_request *req, const char *name);
/* Returns the decoded value of query parameter `name` ('+' is a space, %XX a byte, a
 * malformed escape is kept as it is; "k" and "k=" give ""), or NULL; valid until the
 * handler returns (it lives in the request's arena). A parameter given twice returns the
 * first. */
const char *server_query_param(struct server_request *req, const char *name);

/* Answers the request: "Status: N Reason", Content-Type, Content-Length, then `headers`
 * (extra header lines, each ending in "\r\n"; may be NULL), then the body, handed to
 * libfcgi in one write. Call exactly one answer function per request: a second call is
 * logged and ignored, and a handler that returns without answering gets a 500
 * internal_error problem sent for it. Each answer is counted in the metrics under the
 * route set with server_set_route() ("other" if none). A client that has gone away is
 * not an error (logged at debug level). */
void server_respond(struct server_request *req, int status, const char *content_type,
                    const char *headers, const char *body, size_t body_len);
/* server_respond, but the body's buffer is taken over (not copied): *body is left empty
 * and its memory is freed by the server once the answer is sent. For large answers. */
void server_respond_take(struct server_request *req, int status, const char *content_type,
                         const char *headers, struct sbuf *body);
/* server_respond with Content-Type application/json and the text in body. */
void server_respond_json(struct server_request *req, int status, const char *headers,
                         const struct sbuf *body);
/* RFC 9457 problem, Content-Type application/problem+json:
 * {"type":"/problems/CODE","title","status","detail","code"} where title is the status's
 * standard reason phrase and detail defaults to it when NULL, plus "errors" when
 * errors_json (a JSON array text, written as it is) is not NULL. Adds headers (may be
 * NULL). */
void server_respond_problem(struct server_request *req, int status, const char *code,
                            const char *detail, const char *errors_json, const char *headers);
/* Labels the request for metrics (route template such as "GET /api/orders/{id}", not
 * the concrete path: the table has METRICS_ROUTES = 64 slots). `route` must stay valid
 * until the request ends (a string literal). */
void server_set_route(struct server_request *req, const char *route);

/* Results of server_park (in the server's range of util/ef_error.h, after enum server_err). */
enum server_park_result {
    SERVER_PARKED = 0,               /* held: return without answering */
    SERVER_PARK_FULL = -15005,       /* max_waiting requests already wait: answer 503 now */
    SERVER_PARK_STOPPING = -15006,   /* the worker is stopping: answer with what there is */
    SERVER_PARK_UNAVAILABLE = -15007, /* the program set no position source, or the request's
                                      * body was not read to its end: answer now */
};
/* Parks the request without an answer: the handler returns at once, and the server runs
 * the handler again for the same request (req->runs > 0, req->wait_deadline_ns kept, the
 * body gone, only the headers of server_options.park_headers available) as soon as the
 * position (server_options.position) is >= want, or at wake_ns (ef_mono_ns() time), or
 * when the worker stops, whichever comes first. The run may park again. A request whose
 * front end closes the connection meanwhile is dropped without running again. Its answer
 * is counted in the metrics (latency from the first accept) like any other. */
int server_park(struct server_request *req, uint64_t want, uint64_t wake_ns);

/* Deferring: a handler whose answer another thread will give (a command that waits for
 * a batch's fdatasync) calls server_defer() and returns without answering; its thread
 * accepts the next request at once instead of sleeping. The answer is given exactly once,
 * from any thread, with server_deferred_respond(), which also frees the handle; it is
 * counted, logged and sent (the rest by the loop if the socket does not take it at once)
 * like any other, and the connection is closed after it. Set the route label
 * (server_set_route) before deferring; nothing of req may be used after the handler
 * returns. Returns NULL when the request cannot be deferred (it was answered, parked or is
 * run again by the loop, or its body was not read to its end): then answer it as usual.
 * A worker's request threads must not all end while a deferred answer is outstanding:
 * the answering thread must be a request thread inside its handler (the worker stops
 * once they have all returned). */
struct server_deferred;
struct server_deferred *server_defer(struct server_request *req);
void server_deferred_respond(struct server_deferred *d, int status, const char *content_type,
                             const char *headers, const char *body, size_t body_len);
typedef void (*server_handler_fn)(struct server_request *req, void *worker_ctx);

struct server_options {
    const char *prog;             /* program name for logs */
    const struct ef_config *cfg;  /* listen, workers, threads, ... */
    int threads;                  /* request threads per worker; 0: cfg->threads */
    size_t max_body;              /* bytes; larger bodies get 413 payload_too_large */
    /* Called in each worker after fork; returns 0 or -1 (the worker exits 1, logged). */
    int (*worker_init)(void **worker_ctx, const struct ef_config *cfg);
    void (*worker_fini)(void *worker_ctx);
    server_handler_fn handler;
    /* Seconds a stopping worker waits for in-flight requests (0: 30). */
    int grace_seconds;
    /* NULL: metrics in anonymous shared memory. Else a file (e.g. DATA/command.metrics)
     * that holds them, replaced at start, so another program can render them with
     * server_metrics_render_files(). If the file cannot be created (a full disk), the
     * master logs a warning and keeps the counters in anonymous memory. */
    const char *metrics_file;
    /* 1: close each connection as soon as its request (stdin read to its end) is answered,
     * instead of libfcgi's lingering close (shutdown, then wait for nginx to close first).
     * For handlers whose threads are the scarce resource (commands wait for fdatasync):
     * the wait costs each request a round trip through nginx's event loop. Handlers that
     * are CPU-bound are better left lingering: the wait keeps their threads from taking
     * the CPUs nginx needs (queries were measurably slower with it on a 2-core machine). */
    int close_at_once;
    /* Parking (server_park). position: the published position parked requests wait for,
     * read by any thread; wait_position: blocks until position > after or timeout_ms
     * passes (spurious returns allowed), run by the worker's watcher thread. Both NULL:
     * server_park answers SERVER_PARK_UNAVAILABLE. */
    uint64_t (*position)(void *worker_ctx);
    void (*wait_position)(void *worker_ctx, uint64_t after, int timeout_ms);
    /* Called by the worker's watcher thread (which runs with position and wait_position)
     * at least every 200 ms, whether requests come or not: work a worker must do even
     * when idle (the query program reopens a switched read model). NULL: none. */
    void (*housekeeping)(void *worker_ctx);
    /* The Log-Position of the answers the server makes itself (413 for a body over
     * max_body, 500 for a handler that returned without answering), since every /api/
     * answer carries one (API.md). Any thread may call it. NULL: they carry none. */
    uint64_t (*answer_position)(void *worker_ctx);
    /* NULL-terminated header names (e.g. "Min-Position") kept for a parked request. */
    const char *const *park_headers;
    /* Bytes of unsent answers a worker keeps at most (0: 128 MiB). Past it, the answers
     * waiting longest for their clients are abandoned (connection closed, logged), so
     * that clients that never read cannot take the worker's memory. */
    size_t max_unsent_bytes;
};

/* Errors of server_run (negative, in the server's range of util/ef_error.h, away from the
 * errno values they once overlapped; server_strerror() names them). */
enum server_err {
    SERVER_ERR_USAGE = -15001,  /* bad options (threads < 1, no handler, ...) */
    SERVER_ERR_LISTEN = -15002, /* no listening socket: cannot create it, or fd 0 is none */
    SERVER_ERR_IN_USE = -15003, /* unix socket path is served by a live process */
    SERVER_ERR_SYSTEM = -15004, /* fork, mmap, signal setup failed (logged with errno) */
};
/* Returns a static description of a code: the server's own (enum server_err and enum
 * server_park_result), or ef_strerror()'s for any other. */
const char *server_strerror(int err);

/* Runs the master until SIGTERM/SIGINT. Returns the process exit status: 0 after a clean
 * stop, 1 when it could not start or gave up on workers that cannot start (the cause is
 * logged). */
int server_run(const struct server_options *opt);

/* In a worker: 1 once the worker has been asked to stop, else 0. A handler that waits
 * (long-poll) checks it and answers early. Thread-safe. */
int server_stopping(void);

/* Shared-memory metrics (created by server_run before fork; counters are atomic).
 * Appends eventfold_http_requests_total and eventfold_http_request_duration_seconds in
 * Prometheus text format 0.0.4 to out. Programs append their own gauges after it with
 * server_metrics_gauge(). */
void server_metrics_render(struct sbuf *out);
/* The same, merged with the regions in the metrics_file of other programs (at most
 * SERVER_METRICS_MAX_FILES; a file that is absent or not a metrics region is skipped),
 * with the counters of equal route labels summed. Reads them without locks. */
#define SERVER_METRICS_MAX_FILES 4
void server_metrics_render_files(struct sbuf *out, const char *const *paths, size_t npaths);
/* Appends "# HELP name help", "# TYPE name gauge" and "name value" to out. `name` and
 * `help` must be valid Prometheus text (no newline). */
void server_metrics_gauge(struct sbuf *out, const char *name, const char *help, double value);

#endif
