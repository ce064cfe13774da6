#include <config.h>

#include "server/server_int.h"

#include "util/clock.h"
#include "util/eflog.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ARENA_BLOCK 4096
#define READ_CHUNK 16384
/* A request over the limit is read and discarded up to this many bytes before the 413 is
 * sent, so the front end is not cut off while it is still sending (which it may report
 * as a 502 instead of our 413). Beyond it, the connection is simply closed. */
#define DRAIN_MAX (1u << 20)

struct srv_arena_block {
    struct srv_arena_block *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

void *srv_arena_alloc(struct srv_arena *a, size_t n)
{
    size_t need = (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    struct srv_arena_block *b = a->head;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > ARENA_BLOCK ? need : ARENA_BLOCK;
        struct srv_arena_block *nb = xmalloc(sizeof *nb + cap);
        nb->used = 0;
        nb->cap = cap;
        nb->next = b;
        a->head = b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

void srv_arena_reset(struct srv_arena *a)
{
    struct srv_arena_block *b = a->head;
    if (!b)
        return;
    /* Keep the oldest block (the last in the chain): most requests fit in it. */
    while (b->next) {
        struct srv_arena_block *next = b->next;
        free(b);
        b = next;
    }
    b->used = 0;
    a->head = b;
}

void srv_arena_free(struct srv_arena *a)
{
    while (a->head) {
        struct srv_arena_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

static char *arena_strndup(struct srv_arena *a, const char *s, size_t n)
{
    char *p = srv_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static const char *param_or_empty(struct srv_thread *t, const char *name)
{
    const char *v = FCGX_GetParam(name, t->fcgx.envp);
    return v ? v : "";
}

/* DOCUMENT_URI (nginx: the normalized, decoded URI) if given, else REQUEST_URI up to '?'. */
static const char *request_path(struct srv_thread *t)
{
    const char *doc = FCGX_GetParam("DOCUMENT_URI", t->fcgx.envp);
    if (doc && *doc)
        return doc;
    const char *uri = param_or_empty(t, "REQUEST_URI");
    return arena_strndup(&t->arena, uri, strcspn(uri, "?"));
}

/* Parses CONTENT_LENGTH; -1 when absent or not a plain decimal number. */
static long long content_length(struct srv_thread *t)
{
    const char *cl = FCGX_GetParam("CONTENT_LENGTH", t->fcgx.envp);
    if (!cl || *cl < '0' || *cl > '9')
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(cl, &end, 10);
    return (errno || *end) ? -1 : v;
}

static void drain_body(struct srv_thread *t)
{
    char buf[4096];
    size_t total = 0;
    int n;
    while (total < DRAIN_MAX && (n = FCGX_GetStr(buf, sizeof buf, t->fcgx.in)) > 0)
        total += (size_t)n;
}

/* Reads at most max_body + 1 bytes into t->body; returns 1 if the body is larger than
 * max_body, -1 on a stream error (the client is gone), else 0. */
static int read_body(struct srv_thread *t, size_t max_body)
{
    sbuf_reset(&t->body);
    sbuf_reserve(&t->body, 0); /* so body.data is never NULL */
    for (;;) {
        size_t want = max_body + 1 - t->body.len;
        if (want > READ_CHUNK)
            want = READ_CHUNK;
        sbuf_reserve(&t->body, want);
        int n = FCGX_GetStr(t->body.data + t->body.len, (int)want, t->fcgx.in);
        if (n > 0) {
            t->body.len += (size_t)n;
            t->body.data[t->body.len] = '\0';
        }
        if (t->body.len > max_body)
            return 1;
        if ((size_t)n < want)
            return FCGX_GetError(t->fcgx.in) ? -1 : 0;
    }
}

static void request_init(struct srv_thread *t)
{
    struct server_request *r = &t->req;
    memset(r, 0, sizeof *r);
    r->started_ns = ef_mono_ns();
    r->impl = t;
    t->route = NULL;
    t->responded = 0;
    t->status = 0;
    t->parked = NULL;
    t->deferred = NULL;
}

void srv_request_resume(struct srv_thread *t)
{
    struct srv_held *h = t->held;
    struct server_request *r = &t->req;
    request_init(t);
    r->started_ns = h->started_ns;
    r->wait_deadline_ns = h->wait_deadline_ns;
    r->runs = h->runs;
    r->method = h->method;
    r->path = h->path;
    r->query = h->query;
    r->content_type = "";
    r->body = "";
    t->route = h->route;
}

int srv_request_begin(struct srv_thread *t, size_t max_body)
{
    struct server_request *r = &t->req;
    t->held = NULL;
    request_init(t);
    r->method = param_or_empty(t, "REQUEST_METHOD");
    r->path = request_path(t);
    r->query = param_or_empty(t, "QUERY_STRING");
    r->content_type = param_or_empty(t, "CONTENT_TYPE");
    r->body = "";
    long long declared = content_length(t);
    int rc = declared > (long long)max_body ? 1 : read_body(t, max_body);
    if (rc > 0) {
        drain_body(t);
        char detail[96];
        snprintf(detail, sizeof detail, "the request body is larger than %zu bytes", max_body);
        srv_respond_own_problem(t, 413, "payload_too_large", detail);
        return 1;
    }
    if (rc < 0) {
        EFLOG_DEBUG("request body unreadable, client gone method=%s path=%s", EFLOG_S(r->method),
                  EFLOG_S(r->path));
        t->responded = 1; /* nothing can be answered on a broken stream */
        return 1;
    }
    r->body = t->body.data;
    r->body_len = t->body.len;
    return 0;
}

void srv_request_end(struct srv_thread *t)
{
    srv_arena_reset(&t->arena);
    if (t->body.cap > 4 * READ_CHUNK)
        sbuf_free(&t->body); /* do not pin a large body's memory per thread */
    memset(&t->req, 0, sizeof t->req);
}

/* CGI names a header "If-Match" HTTP_IF_MATCH; Content-Type and Content-Length have no
 * HTTP_ prefix. Returns -1 when the name does not fit in cap bytes. */
int srv_cgi_name(const char *name, char *key, size_t cap)
{
    size_t n = strlen(name);
    if (n + 6 > cap)
        return -1;
    int plain = strcasecmp(name, "Content-Type") == 0 || strcasecmp(name, "Content-Length") == 0;
    size_t off = plain ? 0 : 5;
    memcpy(key, "HTTP_", off);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        key[off + i] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    key[off + n] = '\0';
    return 0;
}

const char *server_header(struct server_request *req, const char *name)
{
    struct srv_thread *t = req->impl;
    char key[160];
    if (srv_cgi_name(name, key, sizeof key) < 0)
        return NULL;
    if (t->held)
        return srv_held_header(t->held, key);
    return FCGX_GetParam(key, t->fcgx.envp);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes n bytes of form-encoded text ('+' is a space, %XX a byte; a malformed escape
 * is kept as it is) into out, which has room for n + 1 bytes. Returns the length. */
static size_t form_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
                   (lo = hexval(s[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return o;
}

const char *server_query_param(struct server_request *req, const char *name)
{
    struct srv_thread *t = req->impl;
    const char *q = req->query;
    while (*q) {
        size_t len = strcspn(q, "&");
        size_t klen = strcspn(q, "=");
        if (klen > len)
            klen = len;
        char *key = srv_arena_alloc(&t->arena, klen + 1);
        form_decode(q, klen, key);
        if (strcmp(key, name) == 0) {
            size_t vlen = klen < len ? len - klen - 1 : 0;
            char *val = srv_arena_alloc(&t->arena, vlen + 1);
            form_decode(q + klen + (klen < len), vlen, val);
            return val;
        }
        q += len;
        if (*q == '&')
            q++;
    }
    return NULL;
}
