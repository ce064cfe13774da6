#include <config.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "query/query_int.h"
#include "util/eflog.h"

int query_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || strlen(s) > 20)
        return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Prefer is a comma-separated list of preferences (RFC 7240); only wait=S matters here. */
int query_wait_ms(struct server_request *req, int max_wait)
{
    const char *prefer = server_header(req, "Prefer");
    int secs = 2;
    if (prefer) {
        const char *p = prefer;
        while (*p) {
            while (*p == ' ' || *p == ',' || *p == '\t')
                p++;
            if (strncasecmp(p, "wait=", 5) == 0) {
                char num[24];
                size_t n = strcspn(p + 5, " ,;\t");
                if (n == 0 || n >= sizeof num)
                    return -1;
                memcpy(num, p + 5, n);
                num[n] = '\0';
                uint64_t v;
                if (query_parse_u64(num, &v))
                    return -1;
                secs = v > 3600 ? 3600 : (int)v;
            }
            p += strcspn(p, ",");
        }
    }
    if (secs > max_wait)
        secs = max_wait;
    return secs * 1000;
}

int query_min_position(struct server_request *req, uint64_t *pos)
{
    const char *h = server_header(req, "Min-Position");
    const char *q = server_query_param(req, "min_position");
    *pos = 0;
    if (h && query_parse_u64(h, pos))
        return -1;
    uint64_t qp = 0;
    if (q && query_parse_u64(q, &qp))
        return -1;
    if (qp > *pos)
        *pos = qp;
    return 0;
}

void query_bad_param(struct qreq *q, const char *field, const char *message)
{
    struct sbuf e = SBUF_INIT;
    sbuf_puts(&e, "[{");
    sbuf_json_key(&e, "field");
    sbuf_json_cstr(&e, field);
    sbuf_json_key(&e, "message");
    sbuf_json_cstr(&e, message);
    sbuf_puts(&e, "}]");
    char detail[160];
    snprintf(detail, sizeof detail, "%s: %s", field, message);
    server_respond_problem(q->req, 400, "validation_failed", detail, sbuf_str(&e), q->headers);
    sbuf_free(&e);
}

void query_fail(struct qreq *q, int rc, const char *what)
{
    char detail[200];
    if (rc == RMODEL_ENOTFOUND) {
        snprintf(detail, sizeof detail, "%s %.*s does not exist", what, (int)q->id_len,
                 q->id ? q->id : "");
        server_respond_problem(q->req, 404, "not_found", detail, NULL, q->headers);
        return;
    }
    EFLOG_ERROR("query failed path=%s: %s", EFLOG_S(q->req->path), rmodel_strerror(rc));
    snprintf(detail, sizeof detail, "the read model could not be read: %s", rmodel_strerror(rc));
    server_respond_problem(q->req, 500, "internal_error", detail, NULL, q->headers);
}

void query_ok(struct qreq *q, const char *extra_headers)
{
    char headers[512];
    snprintf(headers, sizeof headers, "%s%s", q->headers, extra_headers ? extra_headers : "");
    server_respond_take(q->req, 200, "application/json", headers, &q->body);
}
