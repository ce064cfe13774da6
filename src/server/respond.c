#include <config.h>

#include "server/metrics.h"
#include "server/server_int.h"

#include "util/clock.h"
#include "util/eflog.h"

#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

struct reason {
    int status;
    const char *text;
};

/* RFC 9110 reason phrases of the codes eventfold answers with. */
static const struct reason reasons[] = {
    { 200, "OK" }, { 201, "Created" }, { 202, "Accepted" }, { 204, "No Content" },
    { 304, "Not Modified" }, { 400, "Bad Request" }, { 401, "Unauthorized" },
    { 403, "Forbidden" }, { 404, "Not Found" }, { 405, "Method Not Allowed" },
    { 406, "Not Acceptable" }, { 408, "Request Timeout" }, { 409, "Conflict" },
    { 410, "Gone" }, { 411, "Length Required" }, { 412, "Precondition Failed" },
    { 413, "Content Too Large" }, { 414, "URI Too Long" }, { 415, "Unsupported Media Type" },
    { 422, "Unprocessable Content" }, { 428, "Precondition Required" },
    { 429, "Too Many Requests" }, { 500, "Internal Server Error" }, { 501, "Not Implemented" },
    { 502, "Bad Gateway" }, { 503, "Service Unavailable" }, { 504, "Gateway Timeout" },
    { 507, "Insufficient Storage" },
};

const char *srv_reason(int status)
{
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].status == status)
            return reasons[i].text;
    return "Unknown";
}

void srv_respond_own_problem(struct srv_thread *t, int status, const char *code, const char *detail)
{
    char headers[48] = "";
    const struct server_options *opt = t->w->opt;
    if (opt->answer_position)
        snprintf(headers, sizeof headers, "Log-Position: %" PRIu64 "\r\n",
                 opt->answer_position(t->w->ctx));
    server_respond_problem(&t->req, status, code, detail, NULL, headers[0] ? headers : NULL);
}

void server_set_route(struct server_request *req, const char *route)
{
    struct srv_thread *t = req->impl;
    t->route = route;
}

void srv_render_head(struct srv_out *o, int status, const char *content_type,
                     const char *headers, size_t body_len)
{
    srv_out_reset(o);
    sbuf_printf(&o->head, "Status: %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", status,
                srv_reason(status), content_type, body_len);
    if (headers)
        sbuf_puts(&o->head, headers);
    sbuf_puts(&o->head, "\r\n");
}

/* The answer is only rendered here: the header block (and a body given by pointer, copied
 * once) goes to t->ans.head, a body handed over by server_respond_take to t->ans.body. The
 * server sends it after the handler returned (worker.c, hold.c), so never while the
 * handler holds a transaction or a lock. */
static int begin_answer(struct server_request *req, int status, const char *content_type,
                        const char *headers, size_t body_len)
{
    struct srv_thread *t = req->impl;
    assert(status >= 100 && status <= 599);
    if (t->responded || t->parked || t->deferred) {
        EFLOG_ERROR("second answer to one request ignored status=%d path=%s", status, EFLOG_S(req->path));
        return -1;
    }
    t->responded = 1;
    t->status = status;
    srv_render_head(&t->ans, status, content_type, headers, body_len);
    metrics_observe(metrics_route_id(t->route), status, ef_mono_ns() - req->started_ns);
    return 0;
}

void server_respond(struct server_request *req, int status, const char *content_type,
                    const char *headers, const char *body, size_t body_len)
{
    struct srv_thread *t = req->impl;
    if (begin_answer(req, status, content_type, headers, body_len) == 0)
        sbuf_append(&t->ans.head, body, body_len);
}

void server_respond_take(struct server_request *req, int status, const char *content_type,
                         const char *headers, struct sbuf *body)
{
    struct srv_thread *t = req->impl;
    if (begin_answer(req, status, content_type, headers, body->len) == 0) {
        t->ans.body = *body;
        sbuf_init(body);
    }
}

void server_respond_json(struct server_request *req, int status, const char *headers,
                         const struct sbuf *body)
{
    server_respond(req, status, "application/json", headers, body->data ? body->data : "", body->len);
}

void server_respond_problem(struct server_request *req, int status, const char *code,
                            const char *detail, const char *errors_json, const char *headers)
{
    struct sbuf sb = SBUF_INIT;
    char type[160];
    snprintf(type, sizeof type, "/problems/%s", code);
    sbuf_putc(&sb, '{');
    sbuf_json_key(&sb, "type");
    sbuf_json_cstr(&sb, type);
    sbuf_json_key(&sb, "title");
    sbuf_json_cstr(&sb, srv_reason(status));
    sbuf_json_key(&sb, "status");
    sbuf_json_i64(&sb, status);
    sbuf_json_key(&sb, "detail");
    sbuf_json_cstr(&sb, detail ? detail : srv_reason(status));
    sbuf_json_key(&sb, "code");
    sbuf_json_cstr(&sb, code);
    if (errors_json) {
        sbuf_json_key(&sb, "errors");
        sbuf_puts(&sb, errors_json);
    }
    sbuf_putc(&sb, '}');
    server_respond(req, status, "application/problem+json", headers, sb.data, sb.len);
    sbuf_free(&sb);
}
