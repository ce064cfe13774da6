/* Unit tests of the FastCGI process model (src/server).
 *
 * Each test starts server_run() in a forked child on a unix socket in a fresh temp dir
 * (or TCP on 127.0.0.1, or an inherited socket) with the test handler below, and talks
 * FastCGI to it with tests/unit/fcgi_client. Every wait is bounded; teardown stops the
 * server by PID (SIGTERM, then SIGKILL) and removes the temp dir.
 */
#include <config.h>

#include "testdir.h"

#include "fcgi_client.h"
#include "server/metrics.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/config.h"
#include "util/eflog.h"
#include "util/sbuf.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY (64 * 1024)
#define TIMEOUT_MS 10000

static char sock_path[128];
static char spec[160];
static pid_t server_pid = -1;

/* ---- the test handler ---- */

struct test_ctx {
    pid_t pid; /* getpid() of the worker that ran worker_init */
};

/* Counts its calls in td_dir/inits and fails while td_dir/fail exists. */
static int test_worker_init(void **ctx, const struct ef_config *cfg)
{
    (void)cfg;
    char path[192];
    snprintf(path, sizeof path, "%s/inits", td_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        ssize_t w = write(fd, "i", 1);
        (void)w;
        close(fd);
    }
    snprintf(path, sizeof path, "%s/fail", td_dir);
    if (access(path, F_OK) == 0)
        return -1;
    struct test_ctx *c = malloc(sizeof *c);
    if (!c)
        return -1;
    c->pid = getpid();
    *ctx = c;
    return 0;
}

static void test_worker_fini(void *ctx) { free(ctx); }

static const char *or_null(const char *s) { return s ? s : "(null)"; }

static void h_echo(struct server_request *req, struct test_ctx *c)
{
    struct sbuf sb = SBUF_INIT;
    server_set_route(req, "ECHO");
    sbuf_printf(&sb, "method=%s\npath=%s\nquery=%s\nct=%s\nq=%s\nbad=%s\nempty=%s\nmissing=%s\n", req->method,
                req->path, req->query, req->content_type, or_null(server_query_param(req, "q")),
                or_null(server_query_param(req, "bad")), or_null(server_query_param(req, "empty")),
                or_null(server_query_param(req, "missing")));
    sbuf_printf(&sb, "if_match=%s\nct_hdr=%s\nabsent=%s\nctx_ok=%d\nbody_len=%zu\nbody=", or_null(server_header(req, "If-Match")),
                or_null(server_header(req, "content-type")), or_null(server_header(req, "X-Absent")),
                c && c->pid == getpid(), req->body_len);
    sbuf_append(&sb, req->body, req->body_len);
    server_respond(req, 200, "text/plain", "X-Test: yes\r\n", sb.data, sb.len);
    sbuf_free(&sb);
}

static void h_slow(struct server_request *req, struct test_ctx *c)
{
    (void)c;
    const char *ms = server_query_param(req, "ms");
    const char *mark = server_query_param(req, "mark");
    if (mark) {
        char path[192];
        snprintf(path, sizeof path, "%s/started-%s", td_dir, mark);
        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
    long left = ms ? atol(ms) : 500;
    while (left > 0) { /* deliberately ignores server_stopping(): in-flight must finish */
        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
        left -= 10;
    }
    char body[64];
    int n = snprintf(body, sizeof body, "slow done stopping=%d", server_stopping());
    server_respond(req, 200, "text/plain", NULL, body, (size_t)n);
}

static void h_crash(struct server_request *req, struct test_ctx *c)
{
    (void)req;
    (void)c;
    abort();
}

static void h_pid(struct server_request *req, struct test_ctx *c)
{
    (void)c;
    char body[32];
    int n = snprintf(body, sizeof body, "%ld", (long)getpid());
    server_respond(req, 200, "text/plain", NULL, body, (size_t)n);
}

static void h_metrics(struct server_request *req, struct test_ctx *c)
{
    (void)c;
    struct sbuf sb = SBUF_INIT;
    server_set_route(req, "GET /metrics");
    server_metrics_render(&sb);
    server_metrics_gauge(&sb, "eventfold_test_gauge", "A test gauge.", 42);
    server_respond(req, 200, "text/plain; version=0.0.4", NULL, sb.data, sb.len);
    sbuf_free(&sb);
}

static void h_problem(struct server_request *req, struct test_ctx *c)
{
    (void)c;
    server_respond_problem(req, 409, "insufficient_stock", "item \"x\": 3 available",
                           "[{\"field\":\"items[0].quantity\",\"message\":\"too many\"}]", "X-A: b\r\n");
}

static void h_noanswer(struct server_request *req, struct test_ctx *c)
{
    (void)req;
    (void)c;
}

static void h_twice(struct server_request *req, struct test_ctx *c)
{
    (void)c;
    server_respond(req, 201, "text/plain", NULL, "first", 5);
    server_respond(req, 500, "text/plain", NULL, "second", 6);
}

/* The position parked test requests wait for: shared by the test process and the server
 * it forks (mapped before the fork), moved by the tests. */
static _Atomic uint64_t *test_pos;

static uint64_t test_position(void *ctx)
{
    (void)ctx;
    return atomic_load(test_pos);
}

static void test_wait_position(void *ctx, uint64_t after, int timeout_ms)
{
    (void)ctx;
    for (int waited = 0; waited < timeout_ms && atomic_load(test_pos) <= after; waited += 2)
        nanosleep(&(struct timespec){ 0, 2 * 1000 * 1000 }, NULL);
}

static const char *const test_park_headers[] = { "X-Kept", NULL };

/* /park?want=N&wait=MS: answers 200 once test_pos >= N, 503 "timeout" after MS ms from
 * its arrival, parking meanwhile; reports its runs and the kept header. */
static void h_park(struct server_request *req, struct test_ctx *c)
{
    (void)c;
    server_set_route(req, "PARK");
    const char *ws = server_query_param(req, "want"), *ms = server_query_param(req, "wait");
    uint64_t want = ws ? strtoull(ws, NULL, 10) : 1;
    if (!req->wait_deadline_ns)
        req->wait_deadline_ns = req->started_ns + (ms ? strtoull(ms, NULL, 10) : 5000) * 1000000u;
    char body[160];
    const char *kept = server_header(req, "X-Kept");
    if (atomic_load(test_pos) >= want) {
        int n = snprintf(body, sizeof body, "ok runs=%u kept=%s absent=%s", req->runs, or_null(kept),
                         or_null(server_header(req, "X-Not-Kept")));
        server_respond(req, 200, "text/plain", NULL, body, (size_t)n);
        return;
    }
    const char *why = "timeout";
    if (ef_mono_ns() < req->wait_deadline_ns) {
        int rc = server_park(req, want, req->wait_deadline_ns);
        if (rc == SERVER_PARKED)
            return;
        why = rc == SERVER_PARK_FULL ? "too_many_waiting" : rc == SERVER_PARK_STOPPING ? "stopping" : "unavailable";
    }
    int n = snprintf(body, sizeof body, "%s runs=%u", why, req->runs);
    server_respond(req, 503, "text/plain", "Retry-After: 1\r\n", body, (size_t)n);
}

/* /big?mb=N: an answer of N MiB ('a'..'z' repeated), handed over without a copy. */
static void h_big(struct server_request *req, struct test_ctx *c)
{
    (void)c;
    const char *mb = server_query_param(req, "mb");
    size_t n = (size_t)(mb ? atol(mb) : 1) << 20;
    struct sbuf sb = SBUF_INIT;
    sbuf_reserve(&sb, n);
    for (size_t i = 0; i < n; i++)
        sb.data[i] = (char)('a' + i % 26);
    sb.len = n;
    sb.data[n] = '\0';
    server_respond_take(req, 200, "text/plain", NULL, &sb);
    if (sb.len != 0 || sb.data)
        abort(); /* the body must have been taken over */
}

/* /defer?ms=N&mb=M: deferred (server_defer), then answered by a thread of its own after
 * N ms (N = 0: answered inside the handler, before the request thread has let go of the
 * connection) with M MiB ('a'..'z'), or "deferred" when M is absent. */
struct deferred_answer {
    struct server_deferred *d;
    long ms;
    size_t bytes;
};

static void answer_deferred(struct deferred_answer *a)
{
    struct sbuf sb = SBUF_INIT;
    if (a->bytes) {
        sbuf_reserve(&sb, a->bytes);
        for (size_t i = 0; i < a->bytes; i++)
            sb.data[i] = (char)('a' + i % 26);
        sb.len = a->bytes;
    } else {
        sbuf_puts(&sb, "deferred");
    }
    server_deferred_respond(a->d, 200, "text/plain", "X-Deferred: yes\r\n", sb.data, sb.len);
    sbuf_free(&sb);
    free(a);
}

static void *deferred_thread(void *arg)
{
    struct deferred_answer *a = arg;
    nanosleep(&(struct timespec){ a->ms / 1000, (a->ms % 1000) * 1000000L }, NULL);
    answer_deferred(a);
    return NULL;
}

static void h_defer(struct server_request *req, struct test_ctx *c)
{
    (void)c;
    server_set_route(req, "DEFER");
    const char *ms = server_query_param(req, "ms"), *mb = server_query_param(req, "mb");
    struct deferred_answer *a = malloc(sizeof *a);
    if (!a)
        abort();
    a->ms = ms ? atol(ms) : 0;
    a->bytes = mb ? (size_t)atol(mb) << 20 : 0;
    if (!(a->d = server_defer(req))) {
        free(a);
        server_respond(req, 500, "text/plain", NULL, "not deferred", 12);
        return;
    }
    if (server_defer(req) != NULL) /* a second deferral of the same request is refused */
        abort();
    if (a->ms == 0) {
        answer_deferred(a);
        return;
    }
    pthread_t tid;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0 || pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0 ||
        pthread_create(&tid, &attr, deferred_thread, a) != 0)
        abort();
    pthread_attr_destroy(&attr);
}

struct route {
    const char *path;
    void (*fn)(struct server_request *, struct test_ctx *);
};

static const struct route routes[] = {
    { "/echo", h_echo },       { "/slow", h_slow },         { "/crash", h_crash },
    { "/pid", h_pid },         { "/metrics", h_metrics },   { "/problem", h_problem },
    { "/noanswer", h_noanswer }, { "/twice", h_twice },     { "/park", h_park },
    { "/big", h_big },         { "/defer", h_defer },
};

static void test_handler(struct server_request *req, void *worker_ctx)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(req->path, routes[i].path) == 0) {
            routes[i].fn(req, worker_ctx);
            return;
        }
    server_respond_problem(req, 404, "not_found", "no such test route", NULL, NULL);
}

/* ---- starting and stopping the server ---- */

struct setup {
    int workers, threads;
    const char *listen;  /* NULL: unix socket in td_dir */
    int inherit_fd;      /* >= 0: a listening socket to pass as fd 0 or 3 */
    int inherit_as;      /* 0 (stdin) or 3 (LISTEN_FDS) */
    int expect_fail;     /* do not wait for the socket */
    int grace_seconds;   /* 0: 10 */
    int log_requests;    /* 1: log_requests on, stderr to td_dir/server.log at info */
    int close_at_once;   /* server_options.close_at_once */
    int max_waiting;     /* 0: the default */
    int send_timeout;    /* seconds; 0: the default */
    size_t max_unsent;   /* server_options.max_unsent_bytes */
};

static void run_server_child(const struct setup *s)
{
    struct rlimit no_core = { 0, 0 };
    setrlimit(RLIMIT_CORE, &no_core); /* the crash test must not leave core files */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    eflog_init("check_server", s->log_requests ? EF_INFO : EF_WARN);
    struct ef_config cfg;
    ef_config_defaults(&cfg);
    if (s->log_requests) {
        char path[192];
        snprintf(path, sizeof path, "%s/server.log", td_dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0 || dup2(fd, 2) < 0)
            _exit(96);
        cfg.log_requests = 1;
    }
    cfg.workers = s->workers;
    cfg.threads = s->threads;
    if (s->max_waiting)
        cfg.max_waiting = s->max_waiting;
    if (s->send_timeout)
        cfg.send_timeout_seconds = s->send_timeout;
    snprintf(cfg.listen, sizeof cfg.listen, "%s", s->listen ? s->listen : spec);
    if (s->inherit_fd >= 0) {
        cfg.listen[0] = '\0';
        if (dup2(s->inherit_fd, s->inherit_as) < 0)
            _exit(97);
        if (s->inherit_as == 3) {
            char pid[32];
            snprintf(pid, sizeof pid, "%ld", (long)getpid());
            setenv("LISTEN_PID", pid, 1);
            setenv("LISTEN_FDS", "1", 1);
        }
    } else if (s->inherit_as == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull < 0 || dup2(devnull, 0) < 0)
            _exit(98);
    }
    struct server_options opt = {
        .prog = "check_server",
        .cfg = &cfg,
        .threads = s->threads,
        .max_body = MAX_BODY,
        .worker_init = test_worker_init,
        .worker_fini = test_worker_fini,
        .handler = test_handler,
        .grace_seconds = s->grace_seconds ? s->grace_seconds : 10,
        .close_at_once = s->close_at_once,
        .position = test_position,
        .wait_position = test_wait_position,
        .answer_position = test_position,
        .park_headers = test_park_headers,
        .max_unsent_bytes = s->max_unsent,
    };
    exit(server_run(&opt));
}

static int can_connect(const char *to)
{
    int fd = fcgi_connect(to, 1000);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

static void sleep_ms(long ms) { nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000L }, NULL); }

static void start_server(const struct setup *s)
{
    const char *to = s->listen ? s->listen : spec;
    fflush(NULL);
    server_pid = fork();
    ck_assert_int_ge(server_pid, 0);
    if (server_pid == 0)
        run_server_child(s);
    if (s->expect_fail || s->inherit_fd >= 0)
        return;
    for (int i = 0; i < 500 && !can_connect(to); i++)
        sleep_ms(10);
    ck_assert_msg(can_connect(to), "server did not come up on %s", to);
}

/* Waits up to timeout_ms for the server to exit; returns its wait status or -1. */
static int wait_server(int timeout_ms)
{
    int status;
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        pid_t r = waitpid(server_pid, &status, WNOHANG);
        if (r == server_pid) {
            server_pid = -1;
            return status;
        }
        sleep_ms(10);
    }
    return -1;
}

static void stop_server(void)
{
    if (server_pid <= 0)
        return;
    kill(server_pid, SIGTERM);
    if (wait_server(15000) == -1) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        server_pid = -1;
    }
}

static void setup(void)
{
    td_setup();
    if (!test_pos) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        ck_assert(p != MAP_FAILED);
        test_pos = p;
    }
    atomic_store(test_pos, 0);
    snprintf(sock_path, sizeof sock_path, "%s/s", td_dir);
    snprintf(spec, sizeof spec, "unix:%s", sock_path);
    server_pid = -1;
}

static void teardown(void)
{
    stop_server();
    td_teardown();
}

/* ---- request helpers ---- */

static int get(const char *uri, struct fcgi_response *r)
{
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)strcspn(uri, "?"), uri);
    const char *q = strchr(uri, '?');
    struct fcgi_param p[] = {
        { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", uri }, { "QUERY_STRING", q ? q + 1 : "" },
    };
    return fcgi_request(spec, p, 3, NULL, 0, TIMEOUT_MS, r);
}

static int post(const char *uri, const char *content_length, const void *body, size_t len,
                struct fcgi_response *r)
{
    struct fcgi_param p[] = {
        { "REQUEST_METHOD", "POST" }, { "REQUEST_URI", uri }, { "QUERY_STRING", "" },
        { "CONTENT_TYPE", "application/json" }, { "CONTENT_LENGTH", content_length },
    };
    return fcgi_request(spec, p, content_length ? 5 : 4, body, len, TIMEOUT_MS, r);
}

static const struct setup default_setup = { .workers = 2, .threads = 2, .inherit_fd = -1, .inherit_as = -1 };

static void expect_pid_answer(const char *to);

/* ---- tests ---- */

START_TEST(test_params_and_body)
{
    start_server(&default_setup);
    struct fcgi_param p[] = {
        { "REQUEST_METHOD", "POST" },
        { "REQUEST_URI", "/echo?a=1&q=hello+w%C3%B6rld%21&bad=%zz%4&empty=&q=second" },
        { "QUERY_STRING", "a=1&q=hello+w%C3%B6rld%21&bad=%zz%4&empty=&q=second" },
        { "CONTENT_TYPE", "application/json" },
        { "CONTENT_LENGTH", "7" },
        { "HTTP_IF_MATCH", "\"3\"" },
    };
    struct fcgi_response r;
    ck_assert_int_eq(fcgi_request(spec, p, 6, "{\"x\":1}", 7, TIMEOUT_MS, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "method=POST\npath=/echo\nquery=a=1&q=hello+w%C3%B6rld%21&bad=%zz%4&empty=&q=second\n"
                             "ct=application/json\nq=hello w\xc3\xb6rld!\nbad=%zz%4\nempty=\nmissing=(null)\n"
                             "if_match=\"3\"\nct_hdr=application/json\nabsent=(null)\nctx_ok=1\nbody_len=7\nbody={\"x\":1}");
    char buf[64];
    ck_assert_str_eq(fcgi_header(&r, "X-Test", buf, sizeof buf), "yes");
    ck_assert_str_eq(fcgi_header(&r, "Content-Type", buf, sizeof buf), "text/plain");
    ck_assert_int_eq(atoi(fcgi_header(&r, "Content-Length", buf, sizeof buf)), (int)r.body_len);
    ck_assert_ptr_nonnull(strstr(r.headers, "Status: 200 OK\r\n"));
    fcgi_response_free(&r);
}
END_TEST

START_TEST(test_document_uri_wins)
{
    start_server(&default_setup);
    struct fcgi_param p[] = {
        { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/raw%2Fpath?x=1" }, { "DOCUMENT_URI", "/echo" },
    };
    struct fcgi_response r;
    ck_assert_int_eq(fcgi_request(spec, p, 3, NULL, 0, TIMEOUT_MS, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "path=/echo\nquery=\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "body_len=0\nbody="));
    fcgi_response_free(&r);
    /* no route: the handler's own 404 */
    ck_assert_int_eq(get("/nowhere?x=1", &r), 0);
    ck_assert_int_eq(r.status, 404);
    fcgi_response_free(&r);
}
END_TEST

START_TEST(test_body_limit)
{
    start_server(&default_setup);
    size_t big = MAX_BODY + 4000;
    char *body = malloc(big);
    ck_assert_ptr_nonnull(body);
    memset(body, 'a', big);
    struct fcgi_response r;
    char cl[32], buf[128];
    /* declared too large */
    snprintf(cl, sizeof cl, "%zu", big);
    ck_assert_int_eq(post("/echo", cl, body, big, &r), 0);
    ck_assert_int_eq(r.status, 413);
    ck_assert_str_eq(fcgi_header(&r, "Content-Type", buf, sizeof buf), "application/problem+json");
    ck_assert_ptr_nonnull(strstr(r.body, "\"type\":\"/problems/payload_too_large\""));
    ck_assert_ptr_nonnull(strstr(r.body, "\"title\":\"Content Too Large\""));
    ck_assert_ptr_nonnull(strstr(r.body, "\"status\":413"));
    ck_assert_ptr_nonnull(strstr(r.body, "\"code\":\"payload_too_large\""));
    fcgi_response_free(&r);
    /* the server's own answers carry the program's Log-Position, like the handlers' */
    atomic_store(test_pos, 41);
    ck_assert_int_eq(post("/echo", cl, body, big, &r), 0);
    ck_assert_int_eq(r.status, 413);
    ck_assert_str_eq(fcgi_header(&r, "Log-Position", buf, sizeof buf), "41");
    fcgi_response_free(&r);
    /* declared small, turns out larger */
    ck_assert_int_eq(post("/echo", "10", body, big, &r), 0);
    ck_assert_int_eq(r.status, 413);
    fcgi_response_free(&r);
    /* no CONTENT_LENGTH, larger */
    ck_assert_int_eq(post("/echo", NULL, body, MAX_BODY + 1, &r), 0);
    ck_assert_int_eq(r.status, 413);
    fcgi_response_free(&r);
    /* exactly the limit is fine, and arrives whole */
    snprintf(cl, sizeof cl, "%d", MAX_BODY);
    ck_assert_int_eq(post("/echo", cl, body, MAX_BODY, &r), 0);
    ck_assert_int_eq(r.status, 200);
    snprintf(buf, sizeof buf, "body_len=%d\n", MAX_BODY);
    ck_assert_ptr_nonnull(strstr(r.body, buf));
    fcgi_response_free(&r);
    free(body);
}
END_TEST

START_TEST(test_problem_and_answer_rules)
{
    start_server(&default_setup);
    struct fcgi_response r;
    char buf[64];
    ck_assert_int_eq(get("/problem", &r), 0);
    ck_assert_int_eq(r.status, 409);
    ck_assert_str_eq(r.body, "{\"type\":\"/problems/insufficient_stock\",\"title\":\"Conflict\",\"status\":409,"
                             "\"detail\":\"item \\\"x\\\": 3 available\",\"code\":\"insufficient_stock\","
                             "\"errors\":[{\"field\":\"items[0].quantity\",\"message\":\"too many\"}]}");
    ck_assert_str_eq(fcgi_header(&r, "X-A", buf, sizeof buf), "b");
    ck_assert_str_eq(fcgi_header(&r, "Content-Type", buf, sizeof buf), "application/problem+json");
    fcgi_response_free(&r);
    /* a handler that does not answer: the server answers 500 */
    ck_assert_int_eq(get("/noanswer", &r), 0);
    ck_assert_int_eq(r.status, 500);
    ck_assert_ptr_nonnull(strstr(r.body, "\"code\":\"internal_error\""));
    ck_assert_str_eq(fcgi_header(&r, "Log-Position", buf, sizeof buf), "0");
    fcgi_response_free(&r);
    /* a second answer is dropped */
    ck_assert_int_eq(get("/twice", &r), 0);
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(r.body, "first");
    fcgi_response_free(&r);
}
END_TEST

static uint64_t now_ms(void) { return ef_mono_ns() / 1000000u; }

START_TEST(test_parallel_slow_requests)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 4;
    start_server(&s);
    struct fcgi_param p[] = { { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/slow" }, { "QUERY_STRING", "ms=800" } };
    int fds[4];
    uint64_t t0 = now_ms();
    for (int i = 0; i < 4; i++) {
        fds[i] = fcgi_connect(spec, TIMEOUT_MS);
        ck_assert_int_ge(fds[i], 0);
        ck_assert_int_eq(fcgi_send(fds[i], 1, 0, p, 3, NULL, 0), 0);
    }
    for (int i = 0; i < 4; i++) {
        struct fcgi_response r;
        ck_assert_int_eq(fcgi_recv(fds[i], 1, &r), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(r.body, "slow done stopping=0");
        fcgi_response_free(&r);
        close(fds[i]);
    }
    uint64_t elapsed = now_ms() - t0;
    /* serially it would take 3.2 s; in parallel 0.8 s plus noise */
    ck_assert_msg(elapsed < 2400, "4 slow requests took %llu ms: not served in parallel",
                  (unsigned long long)elapsed);
}
END_TEST

/* A request that waits must not hold up one that arrives at the same moment while the
 * worker has an idle thread (two connections, one wake-up). */
START_TEST(test_no_starvation_behind_slow)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 2;
    start_server(&s);
    struct fcgi_param slow[] = { { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/slow" }, { "QUERY_STRING", "ms=2500" } };
    struct fcgi_param fast[] = { { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/pid" }, { "QUERY_STRING", "" } };
    for (int round = 0; round < 3; round++) {
        int a = fcgi_connect(spec, TIMEOUT_MS);
        int b = fcgi_connect(spec, TIMEOUT_MS);
        ck_assert_int_ge(a, 0);
        ck_assert_int_ge(b, 0);
        uint64_t t0 = now_ms();
        ck_assert_int_eq(fcgi_send(a, 1, 0, slow, 3, NULL, 0), 0);
        ck_assert_int_eq(fcgi_send(b, 1, 0, fast, 3, NULL, 0), 0);
        struct fcgi_response r;
        ck_assert_int_eq(fcgi_recv(b, 1, &r), 0);
        uint64_t took = now_ms() - t0;
        ck_assert_int_eq(r.status, 200);
        fcgi_response_free(&r);
        ck_assert_msg(took < 1500, "round %d: fast request waited %llu ms behind a slow one", round,
                      (unsigned long long)took);
        ck_assert_int_eq(fcgi_recv(a, 1, &r), 0);
        fcgi_response_free(&r);
        close(a);
        close(b);
    }
}
END_TEST

START_TEST(test_crashed_worker_restarted)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 1;
    start_server(&s);
    struct fcgi_response r;
    ck_assert_int_eq(get("/pid", &r), 0);
    long pid1 = atol(r.body);
    fcgi_response_free(&r);
    ck_assert_int_eq(get("/crash", &r), -1); /* the connection dies unanswered */
    int ok = -1;
    for (int i = 0; i < 50 && ok != 0; i++) {
        ok = get("/pid", &r);
        if (ok != 0)
            sleep_ms(100);
    }
    ck_assert_int_eq(ok, 0);
    ck_assert_int_eq(r.status, 200);
    long pid2 = atol(r.body);
    fcgi_response_free(&r);
    ck_assert_int_ne(pid1, pid2);
    ck_assert_int_eq(kill((pid_t)pid1, 0), -1); /* the old worker is gone (and reaped) */
}
END_TEST

static int wait_for_file(const char *path, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        if (access(path, F_OK) == 0)
            return 0;
        sleep_ms(10);
    }
    return -1;
}

START_TEST(test_sigterm_finishes_inflight)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 2;
    start_server(&s);
    struct fcgi_param p[] = { { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/slow" },
                              { "QUERY_STRING", "ms=1000&mark=a" } };
    int fd = fcgi_connect(spec, TIMEOUT_MS);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fcgi_send(fd, 1, 0, p, 3, NULL, 0), 0);
    char mark[192];
    snprintf(mark, sizeof mark, "%s/started-a", td_dir);
    ck_assert_int_eq(wait_for_file(mark, 5000), 0);
    uint64_t t0 = now_ms();
    ck_assert_int_eq(kill(server_pid, SIGTERM), 0);
    struct fcgi_response r;
    ck_assert_int_eq(fcgi_recv(fd, 1, &r), 0);
    close(fd);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "slow done stopping=1");
    fcgi_response_free(&r);
    int status = wait_server(10000);
    ck_assert_msg(status != -1, "master did not exit");
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "master wait status %d", status);
    ck_assert_int_eq(access(sock_path, F_OK), -1);
    ck_assert_int_eq(errno, ENOENT);
    /* the stop waited for the request, not for a timeout */
    ck_assert_msg(now_ms() - t0 < 5000, "stop took %llu ms", (unsigned long long)(now_ms() - t0));
}
END_TEST

START_TEST(test_idle_stop_is_quick)
{
    struct setup s = default_setup;
    s.workers = 2;
    s.threads = 4;
    start_server(&s);
    uint64_t t0 = now_ms();
    ck_assert_int_eq(kill(server_pid, SIGINT), 0);
    int status = wait_server(10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    ck_assert_msg(now_ms() - t0 < 3000, "idle stop took %llu ms", (unsigned long long)(now_ms() - t0));
    ck_assert_int_eq(access(sock_path, F_OK), -1);
}
END_TEST

START_TEST(test_metrics_over_fastcgi)
{
    start_server(&default_setup);
    struct fcgi_response r;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(get("/echo", &r), 0);
        fcgi_response_free(&r);
    }
    char cl[16];
    snprintf(cl, sizeof cl, "%d", MAX_BODY + 1);
    ck_assert_int_eq(post("/echo", cl, "x", 1, &r), 0);
    ck_assert_int_eq(r.status, 413);
    fcgi_response_free(&r);
    ck_assert_int_eq(get("/metrics", &r), 0);
    ck_assert_int_eq(r.status, 200);
    static const char *const expect[] = {
        "# TYPE eventfold_http_requests_total counter\n",
        "eventfold_http_requests_total{route=\"ECHO\",status=\"200\"} 3\n",
        "eventfold_http_requests_total{route=\"other\",status=\"413\"} 1\n",
        "# TYPE eventfold_http_request_duration_seconds histogram\n",
        "eventfold_http_request_duration_seconds_bucket{route=\"ECHO\",le=\"+Inf\"} 3\n",
        "eventfold_http_request_duration_seconds_count{route=\"ECHO\"} 3\n",
        "eventfold_http_request_duration_seconds_sum{route=\"ECHO\"} ",
        "# TYPE eventfold_test_gauge gauge\neventfold_test_gauge 42\n",
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        ck_assert_msg(strstr(r.body, expect[i]), "missing '%s' in:\n%s", expect[i], r.body);
    fcgi_response_free(&r);
}
END_TEST

START_TEST(test_keep_conn)
{
    struct setup s = default_setup;
    s.close_at_once = _i; /* a detached request on a kept connection stays open too */
    start_server(&s);
    struct fcgi_param p[] = { { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/echo?q=1" }, { "QUERY_STRING", "q=1" } };
    int fd = fcgi_connect(spec, TIMEOUT_MS);
    ck_assert_int_ge(fd, 0);
    for (uint16_t id = 1; id <= 3; id++) {
        struct fcgi_response r;
        ck_assert_int_eq(fcgi_send(fd, id, 1, p, 3, NULL, 0), 0);
        ck_assert_int_eq(fcgi_recv(fd, id, &r), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_ptr_nonnull(strstr(r.body, "q=1\n"));
        fcgi_response_free(&r);
    }
    close(fd);
}
END_TEST

/* One request thread. A first client reads its answer and keeps its connection open; a
 * second client's request is then answered at once only when the server closes without
 * waiting: libfcgi's lingering close holds the thread until the peer closes (or 2 s). */
START_TEST(test_close_at_once)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 1;
    s.close_at_once = _i;
    start_server(&s);
    struct fcgi_param p[] = { { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/echo" }, { "QUERY_STRING", "" } };
    int first = fcgi_connect(spec, TIMEOUT_MS);
    ck_assert_int_ge(first, 0);
    struct fcgi_response r;
    ck_assert_int_eq(fcgi_send(first, 1, 0, p, 3, NULL, 0), 0);
    ck_assert_int_eq(fcgi_recv(first, 1, &r), 0);
    fcgi_response_free(&r);
    int second = fcgi_connect(spec, TIMEOUT_MS);
    ck_assert_int_ge(second, 0);
    ck_assert_int_eq(fcgi_send(second, 1, 0, p, 3, NULL, 0), 0);
    struct pollfd pf = { .fd = second, .events = POLLIN };
    int answered = poll(&pf, 1, _i ? 1500 : 500);
    ck_assert_int_eq(answered, _i ? 1 : 0);
    close(first); /* ends the lingering close */
    ck_assert_int_eq(fcgi_recv(second, 1, &r), 0);
    ck_assert_int_eq(r.status, 200);
    fcgi_response_free(&r);
    close(second);
}
END_TEST

START_TEST(test_grace_period_bounds_stop)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 1;
    s.grace_seconds = 1;
    start_server(&s);
    struct fcgi_param p[] = { { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/slow" },
                              { "QUERY_STRING", "ms=6000&mark=g" } };
    int fd = fcgi_connect(spec, TIMEOUT_MS);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fcgi_send(fd, 1, 0, p, 3, NULL, 0), 0);
    char mark[192];
    snprintf(mark, sizeof mark, "%s/started-g", td_dir);
    ck_assert_int_eq(wait_for_file(mark, 5000), 0);
    uint64_t t0 = now_ms();
    ck_assert_int_eq(kill(server_pid, SIGTERM), 0);
    int status = wait_server(10000);
    uint64_t took = now_ms() - t0;
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    /* the request would take 6 s; the worker gives up after its 1 s grace period */
    ck_assert_msg(took < 4500, "stop took %llu ms", (unsigned long long)took);
    struct fcgi_response r;
    ck_assert_int_eq(fcgi_recv(fd, 1, &r), -1);
    close(fd);
}
END_TEST

static long file_size(const char *name)
{
    char path[192];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", td_dir, name);
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Creates td_dir/fail (path into fail), which makes the test handler's worker_init fail. */
static void make_fail_file(char *fail, size_t cap)
{
    snprintf(fail, cap, "%s/fail", td_dir);
    int fd = open(fail, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(close(fd), 0);
}

START_TEST(test_failing_workers_back_off)
{
    char fail[192];
    make_fail_file(fail, sizeof fail);
    struct setup s = default_setup;
    s.workers = 1;
    s.expect_fail = 1;
    start_server(&s);
    sleep_ms(1500);
    long attempts = file_size("inits");
    /* back-off 100, 200, 400, 800 ms: about 4 starts in 1.5 s, not hundreds */
    ck_assert_msg(attempts >= 2 && attempts <= 8, "%ld worker starts in 1.5 s", attempts);
    ck_assert_int_eq(unlink(fail), 0);
    struct fcgi_response r;
    ck_assert_int_eq(get("/pid", &r), 0); /* waits in the backlog for the next start */
    ck_assert_int_eq(r.status, 200);
    fcgi_response_free(&r);
}
END_TEST

/* Workers that never start (worker_init keeps failing) make the master give up with exit
 * status 1 after a few seconds of back-off, instead of restarting them forever. */
START_TEST(test_workers_that_cannot_start_give_up)
{
    char fail[192];
    make_fail_file(fail, sizeof fail);
    struct setup s = default_setup;
    s.workers = 2;
    s.expect_fail = 1;
    start_server(&s);
    int status = wait_server(15000);
    ck_assert_msg(status != -1, "the master still restarts failing workers after 15 s");
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1);
    long attempts = file_size("inits");
    ck_assert_msg(attempts >= 5 && attempts <= 20, "%ld worker starts before giving up", attempts);
}
END_TEST

START_TEST(test_sighup_ignored)
{
    start_server(&default_setup);
    ck_assert_int_eq(kill(server_pid, SIGHUP), 0);
    sleep_ms(100);
    struct fcgi_response r;
    ck_assert_int_eq(get("/pid", &r), 0);
    ck_assert_int_eq(r.status, 200);
    fcgi_response_free(&r);
    ck_assert_int_eq(waitpid(server_pid, NULL, WNOHANG), 0);
}
END_TEST

START_TEST(test_workers_die_with_master)
{
    /* adopt orphans so the worker can be reaped (and seen gone) here */
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    struct setup s = default_setup;
    s.workers = 1;
    start_server(&s);
    struct fcgi_response r;
    ck_assert_int_eq(get("/pid", &r), 0);
    pid_t worker = (pid_t)atol(r.body);
    fcgi_response_free(&r);
    ck_assert_int_eq(kill(server_pid, SIGKILL), 0);
    ck_assert_int_ne(wait_server(5000), -1);
    int status = -1;
    for (int waited = 0; waited < 5000; waited += 10) {
        if (waitpid(worker, &status, WNOHANG) == worker)
            break;
        status = -1;
        sleep_ms(10);
    }
    ck_assert_msg(status != -1, "worker outlived its master");
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker status %d", status);
    /* the socket file it left behind is stale: a new server takes it over */
    start_server(&default_setup);
    expect_pid_answer(spec);
}
END_TEST

static void read_text(const char *name, char *buf, size_t cap)
{
    char path[192];
    snprintf(path, sizeof path, "%s/%s", td_dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ssize_t n = read(fd, buf, cap - 1);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
    close(fd);
}

START_TEST(test_logging)
{
    struct setup s = default_setup;
    s.log_requests = 1;
    start_server(&s);
    struct fcgi_response r;
    ck_assert_int_eq(get("/pid?x=1", &r), 0);
    fcgi_response_free(&r);
    stop_server();
    char log[8192];
    read_text("server.log", log, sizeof log);
    ck_assert_msg(strstr(log, ": info: started prog=check_server workers=2 threads=2 listen=unix:"), "%s", log);
    ck_assert_msg(strstr(log, ": info: request method=GET path=/pid status=200 ms="), "%s", log);
    ck_assert_msg(strstr(log, ": info: stopped\n"), "%s", log);
    /* one line per request, nothing else per request */
    const char *first = strstr(log, "request method=");
    ck_assert_ptr_null(strstr(first + 1, "request method="));
}
END_TEST

START_TEST(test_listen_path_not_a_socket)
{
    int fd = open(sock_path, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    struct setup s = default_setup;
    s.expect_fail = 1;
    start_server(&s);
    int status = wait_server(10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d", status);
    struct stat st;
    ck_assert_int_eq(stat(sock_path, &st), 0);
    ck_assert(S_ISREG(st.st_mode)); /* left alone */
}
END_TEST

/* A connection the front end keeps open between requests must not keep a stopping
 * worker alive: it is closed once the worker stops. */
START_TEST(test_keep_conn_idle_at_stop)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 1;
    start_server(&s);
    struct fcgi_param p[] = { { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/pid" }, { "QUERY_STRING", "" } };
    int fd = fcgi_connect(spec, TIMEOUT_MS);
    ck_assert_int_ge(fd, 0);
    struct fcgi_response r;
    ck_assert_int_eq(fcgi_send(fd, 1, 1, p, 3, NULL, 0), 0);
    ck_assert_int_eq(fcgi_recv(fd, 1, &r), 0);
    fcgi_response_free(&r);
    uint64_t t0 = now_ms();
    ck_assert_int_eq(kill(server_pid, SIGTERM), 0);
    int status = wait_server(10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    ck_assert_msg(now_ms() - t0 < 3000, "stop took %llu ms", (unsigned long long)(now_ms() - t0));
    char c;
    ck_assert_int_eq(read(fd, &c, 1), 0); /* closed by the worker */
    close(fd);
}
END_TEST

/* ---- listening sockets ---- */

static int make_unix_listener(const char *path, int do_listen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (do_listen)
        ck_assert_int_eq(listen(fd, 16), 0);
    return fd;
}

static void expect_pid_answer(const char *to)
{
    struct fcgi_param p[] = { { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/pid" } };
    struct fcgi_response r;
    ck_assert_int_eq(fcgi_request(to, p, 2, NULL, 0, TIMEOUT_MS, &r), 0);
    ck_assert_int_eq(r.status, 200);
    fcgi_response_free(&r);
}

START_TEST(test_stale_socket_replaced)
{
    int stale = make_unix_listener(sock_path, 0); /* bound, never listening: refuses */
    close(stale);
    struct stat before;
    ck_assert_int_eq(stat(sock_path, &before), 0);
    start_server(&default_setup);
    expect_pid_answer(spec);
    struct stat after;
    ck_assert_int_eq(stat(sock_path, &after), 0);
    ck_assert_int_eq(after.st_mode & 0777, 0666);
}
END_TEST

START_TEST(test_live_socket_in_use)
{
    int live = make_unix_listener(sock_path, 1);
    struct setup s = default_setup;
    s.expect_fail = 1;
    start_server(&s);
    int status = wait_server(10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d", status);
    ck_assert_int_eq(access(sock_path, F_OK), 0); /* not removed: it is not ours */
    close(live);
}
END_TEST

START_TEST(test_inherited_sockets)
{
    /* _i == 0: fd 0 (spawn-fcgi); _i == 1: LISTEN_FDS on fd 3 (systemd) */
    int fd = make_unix_listener(sock_path, 1);
    struct setup s = default_setup;
    s.inherit_fd = fd;
    s.inherit_as = _i == 0 ? 0 : 3;
    start_server(&s);
    expect_pid_answer(spec);
    stop_server();
    ck_assert_int_eq(access(sock_path, F_OK), 0); /* not created by the server: kept */
    close(fd);
}
END_TEST

START_TEST(test_no_socket_fails)
{
    struct setup s = default_setup;
    s.listen = "";
    s.inherit_as = 0; /* fd 0 is /dev/null */
    s.expect_fail = 1;
    start_server(&s);
    int status = wait_server(10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d", status);
}
END_TEST

START_TEST(test_tcp_listen)
{
    /* find a free port: bind to 0, read it back, release it */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    ck_assert_int_eq(bind(probe, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(getsockname(probe, (struct sockaddr *)&sa, &len), 0);
    close(probe);
    static char tcp[64];
    snprintf(tcp, sizeof tcp, "127.0.0.1:%d", ntohs(sa.sin_port));
    struct setup s = default_setup;
    s.listen = tcp;
    start_server(&s);
    expect_pid_answer(tcp);
}
END_TEST

/* ---- metrics without a server ---- */

static void assert_has(const char *text, const char *needle)
{
    ck_assert_msg(strstr(text, needle) != NULL, "missing '%s' in:\n%s", needle, text);
}

START_TEST(test_metrics_histogram)
{
    metrics_fini();
    ck_assert_int_eq(metrics_init(), 0);
    int id = metrics_route_id("GET /api/items/{id}");
    ck_assert_int_eq(id, 1);
    ck_assert_int_eq(metrics_route_id("GET /api/items/{id}"), 1);
    ck_assert_int_eq(metrics_route_id(NULL), 0);
    metrics_observe(id, 200, 500000);      /* exactly 0.0005 s: in le="0.0005" */
    metrics_observe(id, 200, 500001);      /* just above: le="0.001" */
    metrics_observe(id, 404, 6000000000u); /* above 5 s: only +Inf */
    metrics_observe(-3, 42, 1000);         /* bad route and status: other/500 */
    struct sbuf sb = SBUF_INIT;
    server_metrics_render(&sb);
    const char *t = sbuf_str(&sb);
    assert_has(t, "eventfold_http_requests_total{route=\"GET /api/items/{id}\",status=\"200\"} 2\n");
    assert_has(t, "eventfold_http_requests_total{route=\"GET /api/items/{id}\",status=\"404\"} 1\n");
    assert_has(t, "eventfold_http_requests_total{route=\"other\",status=\"500\"} 1\n");
    assert_has(t, "_bucket{route=\"GET /api/items/{id}\",le=\"0.0005\"} 1\n");
    assert_has(t, "_bucket{route=\"GET /api/items/{id}\",le=\"0.001\"} 2\n");
    assert_has(t, "_bucket{route=\"GET /api/items/{id}\",le=\"5\"} 2\n");
    assert_has(t, "_bucket{route=\"GET /api/items/{id}\",le=\"+Inf\"} 3\n");
    assert_has(t, "_sum{route=\"GET /api/items/{id}\"} 6.001000001\n");
    assert_has(t, "_count{route=\"GET /api/items/{id}\"} 3\n");
    assert_has(t, "_bucket{route=\"other\",le=\"0.0005\"} 1\n");
    ck_assert_ptr_null(strstr(t, "status=\"42\""));
    sbuf_free(&sb);
    metrics_fini();
}
END_TEST

START_TEST(test_metrics_routes_table)
{
    metrics_fini();
    ck_assert_int_eq(metrics_init(), 0);
    char name[METRICS_ROUTE_LEN + 8];
    for (int i = 1; i < METRICS_ROUTES; i++) {
        snprintf(name, sizeof name, "route %d", i);
        ck_assert_int_eq(metrics_route_id(name), i);
    }
    ck_assert_int_eq(metrics_route_id("one too many"), 0);
    ck_assert_int_eq(metrics_route_id("route 7"), 7);
    memset(name, 'x', METRICS_ROUTE_LEN);
    name[METRICS_ROUTE_LEN] = '\0';
    ck_assert_int_eq(metrics_route_id(name), 0);
    metrics_fini();
    ck_assert_int_eq(metrics_route_id("after fini"), 0); /* no region: all "other", no crash */
    metrics_observe(0, 200, 1);
}
END_TEST

START_TEST(test_metrics_shared_and_escaped)
{
    metrics_fini();
    ck_assert_int_eq(metrics_init(), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int id = metrics_route_id("a\"b\\c\nd"); /* registered in the child */
        for (int i = 0; i < 5; i++)
            metrics_observe(id, 201, 1000);
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(status, 0);
    struct sbuf sb = SBUF_INIT;
    server_metrics_render(&sb);
    assert_has(sbuf_str(&sb), "eventfold_http_requests_total{route=\"a\\\"b\\\\c\\nd\",status=\"201\"} 5\n");
    sb.len = 0;
    server_metrics_gauge(&sb, "g_int", "h", 12345678901234.0);
    server_metrics_gauge(&sb, "g_frac", "h", 0.25);
    server_metrics_gauge(&sb, "g_nan", "h", 0.0 / 0.0);
    server_metrics_gauge(&sb, "g_inf", "h", -1.0 / 0.0);
    const char *t = sbuf_str(&sb);
    assert_has(t, "# HELP g_int h\n# TYPE g_int gauge\ng_int 12345678901234\n");
    assert_has(t, "g_frac 0.25\n");
    assert_has(t, "g_nan NaN\n");
    assert_has(t, "g_inf -Inf\n");
    sbuf_free(&sb);
    metrics_fini();
}
END_TEST

START_TEST(test_metrics_file_merged)
{
    char path[192], bogus[192], missing[192];
    snprintf(path, sizeof path, "%s/command.metrics", td_dir);
    snprintf(bogus, sizeof bogus, "%s/bogus.metrics", td_dir);
    snprintf(missing, sizeof missing, "%s/missing.metrics", td_dir);
    int bfd = open(bogus, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(bfd, 0);
    ck_assert_int_eq(write(bfd, "not a region", 12), 12);
    close(bfd);
    metrics_fini();
    fflush(NULL);
    pid_t pid = fork(); /* "the command program": its region in a file */
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (metrics_init_file(path) != 0)
            _exit(1);
        metrics_observe(metrics_route_id("POST /api/orders"), 201, 2000000);
        metrics_observe(metrics_route_id(NULL), 404, 1000);
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(status, 0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644);
    ck_assert_int_eq(metrics_init(), 0); /* "the query program" */
    metrics_observe(metrics_route_id("GET /api/items/{id}"), 200, 1000);
    metrics_observe(metrics_route_id(NULL), 404, 1000);
    struct sbuf sb = SBUF_INIT;
    const char *const files[] = { path, bogus, missing };
    server_metrics_render_files(&sb, files, 3);
    const char *t = sbuf_str(&sb);
    assert_has(t, "eventfold_http_requests_total{route=\"POST /api/orders\",status=\"201\"} 1\n");
    assert_has(t, "eventfold_http_requests_total{route=\"GET /api/items/{id}\",status=\"200\"} 1\n");
    assert_has(t, "eventfold_http_requests_total{route=\"other\",status=\"404\"} 2\n"); /* summed */
    assert_has(t, "_bucket{route=\"POST /api/orders\",le=\"0.0025\"} 1\n");
    /* each family once, each series once */
    const char *type = "# TYPE eventfold_http_requests_total counter\n";
    ck_assert_ptr_null(strstr(strstr(t, type) + 1, type));
    const char *other = "_count{route=\"other\"}";
    ck_assert_ptr_null(strstr(strstr(t, other) + 1, other));
    sbuf_free(&sb);
    /* a restarted "command program" starts from zero */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        metrics_fini();
        _exit(metrics_init_file(path) == 0 ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(status, 0);
    sbuf_init(&sb);
    server_metrics_render_files(&sb, files, 1);
    ck_assert_ptr_null(strstr(sbuf_str(&sb), "POST /api/orders"));
    sbuf_free(&sb);
    metrics_fini();
}
END_TEST

START_TEST(test_strerror_and_bad_options)
{
    ck_assert_str_eq(server_strerror(SERVER_ERR_IN_USE), "socket in use by another server");
    ck_assert_str_eq(server_strerror(-15999), "unknown server error");
    ck_assert_str_eq(server_strerror(-EINTR), strerror(EINTR)); /* no longer SERVER_ERR_* */
    struct ef_config cfg;
    ef_config_defaults(&cfg);
    struct server_options opt = { .prog = "x", .cfg = &cfg, .max_body = 1 }; /* no handler */
    eflog_set_level((enum ef_level)(EF_ERROR + 1)); /* keep the expected error line out of the output */
    ck_assert_int_eq(server_run(&opt), 1);
    eflog_set_level(EF_INFO);
}
END_TEST

/* ---- parked requests and sending ---- */

static int send_get(const char *uri, const char *kept)
{
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)strcspn(uri, "?"), uri);
    const char *q = strchr(uri, '?');
    struct fcgi_param p[] = {
        { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", uri }, { "QUERY_STRING", q ? q + 1 : "" },
        { "HTTP_X_KEPT", kept }, { "HTTP_X_NOT_KEPT", "dropped" },
    };
    int fd = fcgi_connect(spec, TIMEOUT_MS);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fcgi_send(fd, 1, 0, p, kept ? 5 : 3, NULL, 0), 0);
    return fd;
}

static void recv_expect(int fd, int status, const char *body_prefix)
{
    struct fcgi_response r;
    ck_assert_int_eq(fcgi_recv(fd, 1, &r), 0);
    ck_assert_msg(r.status == status && strncmp(r.body, body_prefix, strlen(body_prefix)) == 0,
                  "got %d '%s', wanted %d '%s...'", r.status, r.body, status, body_prefix);
    fcgi_response_free(&r);
    close(fd);
}

/* The single request thread answers /pid while requests are parked or answers unsent.
 * The bound is loose (the machine may be loaded): a held thread would not answer before
 * the parked requests' deadlines or the client's reads, which come later than it. */
static void expect_thread_free(void)
{
    uint64_t t0 = now_ms();
    int fd = send_get("/pid", NULL);
    recv_expect(fd, 200, "");
    ck_assert_msg(now_ms() - t0 < 8000, "a plain request took %llu ms with requests parked",
                  (unsigned long long)(now_ms() - t0));
}

#define NPARK 50

/* More parked requests than threads (one worker, one thread): none holds the thread, and
 * all are answered when the position moves, with their kept header and only that. */
START_TEST(test_park_and_wake)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 1;
    start_server(&s);
    int fds[NPARK];
    for (int i = 0; i < NPARK; i++)
        fds[i] = send_get("/park?want=5&wait=20000", "k");
    expect_thread_free();
    expect_thread_free();
    struct pollfd pf = { fds[0], POLLIN, 0 };
    ck_assert_int_eq(poll(&pf, 1, 200), 0); /* still parked */
    uint64_t t0 = now_ms();
    atomic_store(test_pos, 4);
    ck_assert_int_eq(poll(&pf, 1, 300), 0); /* not enough */
    atomic_store(test_pos, 5);
    for (int i = 0; i < NPARK; i++)
        recv_expect(fds[i], 200, "ok runs=1 kept=k absent=(null)");
    ck_assert_msg(now_ms() - t0 < 10000, "wake-up took %llu ms", (unsigned long long)(now_ms() - t0));
}
END_TEST

/* A parked request's deadline answers it (503 from the handler) without any publish. */
START_TEST(test_park_deadline)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 1;
    start_server(&s);
    uint64_t t0 = now_ms();
    int a = send_get("/park?want=9&wait=400", NULL);
    int b = send_get("/park?want=9&wait=30000", NULL);
    recv_expect(a, 503, "timeout runs=1");
    uint64_t took = now_ms() - t0;
    ck_assert_msg(took >= 400 && took < 8000, "deadline answer after %llu ms", (unsigned long long)took);
    expect_thread_free();
    atomic_store(test_pos, 9);
    recv_expect(b, 200, "ok runs=1");
}
END_TEST

/* max_waiting bounds parked requests; a parked request whose client went away is dropped
 * at once and frees its place. */
START_TEST(test_max_waiting_and_gone)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 1;
    s.max_waiting = 3;
    start_server(&s);
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = send_get("/park?want=7&wait=30000", NULL);
    expect_thread_free(); /* served in order: the three are parked by now */
    int full = send_get("/park?want=7&wait=30000", NULL);
    recv_expect(full, 503, "too_many_waiting runs=0");
    close(fds[2]); /* the front end gives up on one */
    int parked = 0;
    for (int i = 0; i < 100 && !parked; i++) {
        int fd = send_get("/park?want=7&wait=300", NULL);
        struct fcgi_response r;
        ck_assert_int_eq(fcgi_recv(fd, 1, &r), 0);
        parked = r.status == 503 && strcmp(r.body, "timeout runs=1") == 0;
        ck_assert_msg(parked || strcmp(r.body, "too_many_waiting runs=0") == 0, "got '%s'", r.body);
        fcgi_response_free(&r);
        close(fd);
    }
    ck_assert_msg(parked, "the place of a closed parked request was not freed");
    atomic_store(test_pos, 7);
    recv_expect(fds[0], 200, "ok runs=1");
    recv_expect(fds[1], 200, "ok runs=1");
}
END_TEST

/* SIGTERM answers parked requests (the handler sees the stop) and the worker exits 0. */
START_TEST(test_park_sigterm)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 1;
    start_server(&s);
    int fds[10];
    for (int i = 0; i < 10; i++)
        fds[i] = send_get("/park?want=3&wait=60000", NULL);
    expect_thread_free(); /* served in order: the ten are parked by now */
    uint64_t t0 = now_ms();
    ck_assert_int_eq(kill(server_pid, SIGTERM), 0);
    for (int i = 0; i < 10; i++)
        recv_expect(fds[i], 503, "stopping runs=1");
    int status = wait_server(10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "master status %d", status);
    ck_assert_msg(now_ms() - t0 < 8000, "stop took %llu ms", (unsigned long long)(now_ms() - t0));
}
END_TEST

/* A client with a small receive buffer (64 KiB on TCP, where a tinier window would make
 * reading crawl), so that a multi-megabyte answer cannot be absorbed by the kernel. */
static int connect_small_rcvbuf(void)
{
    int fd = fcgi_connect(spec, TIMEOUT_MS);
    ck_assert_int_ge(fd, 0);
    int small = strncmp(spec, "unix:", 5) == 0 ? 4096 : 65536;
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    return fd;
}

/* spec becomes 127.0.0.1:PORT with a free port. */
static void use_tcp(void)
{
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    ck_assert_int_eq(bind(probe, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(getsockname(probe, (struct sockaddr *)&sa, &len), 0);
    close(probe);
    snprintf(spec, sizeof spec, "127.0.0.1:%d", ntohs(sa.sin_port));
}

/* A client that does not read a multi-megabyte answer holds nothing: the worker's only
 * thread goes on serving others, and the answer arrives whole when the client reads.
 * Over a unix socket (_i 0) and TCP (_i 1). */
START_TEST(test_slow_reader_holds_nothing)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 1;
    s.send_timeout = 600; /* not this test's subject: a slow (sanitizer) build must not hit it */
    if (_i == 1)
        use_tcp();
    start_server(&s);
    const char *mb = "mb=8";
    struct fcgi_param p[] = { { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/big" }, { "QUERY_STRING", mb } };
    int slow[3];
    for (int i = 0; i < 3; i++) {
        slow[i] = connect_small_rcvbuf();
        ck_assert_int_eq(fcgi_send(slow[i], 1, 0, p, 3, NULL, 0), 0);
    }
    for (int i = 0; i < 5; i++)
        expect_thread_free();
    for (int i = 0; i < 3; i++) {
        struct fcgi_response r;
        ck_assert_int_eq(fcgi_recv(slow[i], 1, &r), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(r.body_len, (size_t)atoi(mb + 3) << 20);
        for (size_t k = 0; k < r.body_len; k += 4099)
            ck_assert_int_eq(r.body[k], 'a' + (int)(k % 26));
        fcgi_response_free(&r);
        close(slow[i]);
    }
}
END_TEST

#define NDEFER 20

/* Deferred answers (server_defer): the single request thread takes the next request at
 * once, so requests answered 500 ms later by other threads do not queue behind each
 * other; an answer given before the thread let go of the connection, and one too large
 * for the socket (sent on by the loop) arrive whole; each is counted in the metrics and
 * logged. */
START_TEST(test_defer)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 1;
    s.log_requests = 1;
    start_server(&s);
    uint64_t t0 = now_ms();
    int fds[NDEFER];
    for (int i = 0; i < NDEFER; i++)
        fds[i] = send_get("/defer?ms=500", NULL);
    expect_thread_free();
    for (int i = 0; i < NDEFER; i++)
        recv_expect(fds[i], 200, "deferred");
    /* Serialized on the one thread they would take 10 s. */
    ck_assert_msg(now_ms() - t0 < 8000, "deferred answers took %llu ms", (unsigned long long)(now_ms() - t0));
    struct fcgi_response r;
    ck_assert_int_eq(get("/defer?ms=0", &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "deferred");
    ck_assert_ptr_nonnull(strstr(r.headers, "X-Deferred: yes"));
    fcgi_response_free(&r);
    int big = connect_small_rcvbuf();
    struct fcgi_param p[] = { { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/defer" }, { "QUERY_STRING", "ms=20&mb=4" } };
    ck_assert_int_eq(fcgi_send(big, 1, 0, p, 3, NULL, 0), 0);
    expect_thread_free();
    ck_assert_int_eq(fcgi_recv(big, 1, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 4u << 20);
    for (size_t k = 0; k < r.body_len; k += 4099)
        ck_assert_int_eq(r.body[k], 'a' + (int)(k % 26));
    fcgi_response_free(&r);
    close(big);
    ck_assert_int_eq(get("/metrics", &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "eventfold_http_requests_total{route=\"DEFER\",status=\"200\"} 22"));
    fcgi_response_free(&r);
    stop_server();
    char path[192], log[65536];
    snprintf(path, sizeof path, "%s/server.log", td_dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(log, 1, sizeof log - 1, f);
    fclose(f);
    log[n] = '\0';
    ck_assert_ptr_nonnull(strstr(log, "request method=GET path=/defer status=200"));
}
END_TEST

/* Unsent answers over max_unsent_bytes: the oldest are abandoned, the newest is kept. */
START_TEST(test_unsent_bytes_bounded)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 1;
    s.max_unsent = 12u << 20;
    start_server(&s);
    struct fcgi_param p[] = { { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/big" }, { "QUERY_STRING", "mb=8" } };
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = connect_small_rcvbuf();
        ck_assert_int_eq(fcgi_send(fds[i], 1, 0, p, 3, NULL, 0), 0);
        expect_thread_free(); /* served in order: each is handed to the loop before the next */
    }
    for (int i = 0; i < 3; i++) {
        struct fcgi_response r;
        int rc = fcgi_recv(fds[i], 1, &r);
        if (i < 2) {
            ck_assert_msg(rc == -1, "answer %d was not abandoned", i);
        } else {
            ck_assert_int_eq(rc, 0);
            ck_assert_uint_eq(r.body_len, 8u << 20);
            fcgi_response_free(&r);
        }
        close(fds[i]);
    }
}
END_TEST

/* An answer not taken within send_timeout_seconds is abandoned: the connection closes. */
START_TEST(test_send_timeout_closes)
{
    struct setup s = default_setup;
    s.workers = 1;
    s.threads = 1;
    s.send_timeout = 1;
    start_server(&s);
    struct fcgi_param p[] = { { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", "/big" }, { "QUERY_STRING", "mb=8" } };
    int fd = connect_small_rcvbuf();
    ck_assert_int_eq(fcgi_send(fd, 1, 0, p, 3, NULL, 0), 0);
    expect_thread_free();
    sleep_ms(2500);
    struct fcgi_response r;
    ck_assert_int_eq(fcgi_recv(fd, 1, &r), -1); /* cut off before END_REQUEST */
    close(fd);
    expect_thread_free();
}
END_TEST

static Suite *server_suite(void)
{
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("fastcgi");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_unchecked_fixture(tc, td_case_setup, td_case_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_params_and_body);
    tcase_add_test(tc, test_defer);
    tcase_add_test(tc, test_document_uri_wins);
    tcase_add_test(tc, test_body_limit);
    tcase_add_test(tc, test_problem_and_answer_rules);
    tcase_add_test(tc, test_parallel_slow_requests);
    tcase_add_test(tc, test_no_starvation_behind_slow);
    tcase_add_test(tc, test_crashed_worker_restarted);
    tcase_add_test(tc, test_sigterm_finishes_inflight);
    tcase_add_test(tc, test_idle_stop_is_quick);
    tcase_add_test(tc, test_metrics_over_fastcgi);
    tcase_add_loop_test(tc, test_keep_conn, 0, 2);
    tcase_add_loop_test(tc, test_close_at_once, 0, 2);
    tcase_add_test(tc, test_keep_conn_idle_at_stop);
    tcase_add_test(tc, test_grace_period_bounds_stop);
    tcase_add_test(tc, test_failing_workers_back_off);
    tcase_add_test(tc, test_workers_that_cannot_start_give_up);
    tcase_add_test(tc, test_sighup_ignored);
    tcase_add_test(tc, test_workers_die_with_master);
    tcase_add_test(tc, test_stale_socket_replaced);
    tcase_add_test(tc, test_live_socket_in_use);
    tcase_add_loop_test(tc, test_inherited_sockets, 0, 2);
    tcase_add_test(tc, test_no_socket_fails);
    tcase_add_test(tc, test_logging);
    tcase_add_test(tc, test_listen_path_not_a_socket);
    tcase_add_test(tc, test_tcp_listen);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("park");
    tcase_add_checked_fixture(tp, setup, teardown);
    tcase_add_unchecked_fixture(tp, td_case_setup, td_case_teardown);
    tcase_set_timeout(tp, 60);
    tcase_add_test(tp, test_park_and_wake);
    tcase_add_test(tp, test_park_deadline);
    tcase_add_test(tp, test_max_waiting_and_gone);
    tcase_add_test(tp, test_park_sigterm);
    tcase_add_loop_test(tp, test_slow_reader_holds_nothing, 0, 2);
    tcase_add_test(tp, test_send_timeout_closes);
    tcase_add_test(tp, test_unsent_bytes_bounded);
    suite_add_tcase(s, tp);
    TCase *tm = tcase_create("metrics");
    tcase_add_checked_fixture(tm, setup, teardown);
    tcase_add_unchecked_fixture(tm, td_case_setup, td_case_teardown);
    tcase_add_test(tm, test_metrics_histogram);
    tcase_add_test(tm, test_metrics_routes_table);
    tcase_add_test(tm, test_metrics_shared_and_escaped);
    tcase_add_test(tm, test_metrics_file_merged);
    tcase_add_test(tm, test_strerror_and_bad_options);
    suite_add_tcase(s, tm);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(server_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
