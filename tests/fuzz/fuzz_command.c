/* fuzz_command: libFuzzer harness for the command request parser (src/domain/command.c).
 *
 * The first input byte picks a mode:
 *  - bit 7 clear: the byte (mod 9) names a command route; the rest is the request body,
 *    handed to cmd_parse_body() in a heap buffer of exactly its size (not NUL-terminated).
 *  - bit 7 set: the rest is "METHOD PATH" for cmd_route_match().
 * Properties checked:
 *  - the parser answers 0 or -1, never anything else, and the same way twice;
 *  - on success every field obeys API.md's rules (ids match the id grammar, strings are
 *    NUL-terminated, NUL-free, valid UTF-8 and at most 256 bytes, amounts and quantities in
 *    range, 1..100 order lines with distinct items) and the body is well-formed JSON by an
 *    independent parser (yajl_tree);
 *  - on failure the problem is 400 invalid_json / validation_failed or 413, and renders to
 *    well-formed problem+json of bounded size.
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "domain/command.h"
#include "domain/problem.h"
#include "util/eflog.h"
#include "util/sbuf.h"

#define FUZZ_NAME "fuzz_command"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    eflog_init("fuzz_command", EF_ERROR);
    return 0;
}

/* One path per command kind, in enum cmd_kind order. */
static const char *const paths[CMD_KIND_COUNT] = {
    "/api/users", "/api/users/u1/deposits", "/api/items", "/api/items/i1/restock",
    "/api/orders", "/api/orders/o1/pay", "/api/orders/o1/ship", "/api/orders/o1/deliver",
    "/api/orders/o1/cancel",
};

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), as yajl validates it. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (len == 0 || i + len > n)
            return 0;
        unsigned cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const unsigned min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* A fixed-size string field: NUL-terminated inside its buffer, valid UTF-8. */
static void check_str(const char *s, size_t cap)
{
    const char *nul = memchr(s, '\0', cap);
    PROP(nul != NULL);
    size_t n = (size_t)(nul - s);
    PROP(n <= CMD_STR_MAX);
    PROP(valid_utf8((const unsigned char *)s, n));
}

static void check_id(const char *s)
{
    PROP(memchr(s, '\0', CMD_ID_MAX + 1) != NULL);
    PROP(vocab_valid_id(s, strlen(s)));
}

static void check_command(const struct command *c, enum cmd_kind kind, const char *path_id)
{
    PROP(c->kind == kind);
    check_str(c->name, sizeof c->name);
    check_str(c->email, sizeof c->email);
    check_str(c->category, sizeof c->category);
    check_str(c->reason, sizeof c->reason);
    if (kind == CMD_CREATE_ORDER) {
        PROP(memchr(c->id, '\0', sizeof c->id) != NULL);
        if (c->id[0])
            check_id(c->id);
        check_id(c->user_id);
        PROP(c->nlines >= 1 && c->nlines <= CMD_LINES_MAX);
        for (size_t i = 0; i < c->nlines; i++) {
            check_id(c->lines[i].item_id);
            PROP(c->lines[i].quantity >= 1 && c->lines[i].quantity <= CMD_QTY_MAX);
            for (size_t k = 0; k < i; k++)
                PROP(strcmp(c->lines[i].item_id, c->lines[k].item_id) != 0);
        }
        return;
    }
    check_id(c->id);
    if (path_id)
        PROP(strcmp(c->id, path_id) == 0);
    switch (kind) {
    case CMD_DEPOSIT:
    case CMD_ADD_ITEM:
        PROP(c->amount > 0);
        break;
    case CMD_RESTOCK:
        PROP(c->amount >= 1 && c->amount <= CMD_RESTOCK_MAX);
        break;
    default:
        break;
    }
}

/* Same answer both times (compares the fields, not padding). */
static int same_command(const struct command *a, const struct command *b)
{
    if (a->kind != b->kind || strcmp(a->id, b->id) != 0 || strcmp(a->user_id, b->user_id) != 0 ||
        strcmp(a->name, b->name) != 0 || strcmp(a->email, b->email) != 0 ||
        strcmp(a->category, b->category) != 0 || strcmp(a->reason, b->reason) != 0 ||
        a->has_email != b->has_email || a->has_reason != b->has_reason ||
        a->amount != b->amount || a->nlines != b->nlines)
        return 0;
    for (size_t i = 0; i < a->nlines; i++)
        if (strcmp(a->lines[i].item_id, b->lines[i].item_id) != 0 ||
            a->lines[i].quantity != b->lines[i].quantity)
            return 0;
    return 1;
}

static void check_problem(const struct problem *p, int route_mode)
{
    PROP(p->code != NULL);
    if (route_mode)
        PROP(p->status == 400 || p->status == 404 || p->status == 405);
    else
        PROP((p->status == 400 && (strcmp(p->code, "invalid_json") == 0 ||
                                   strcmp(p->code, "validation_failed") == 0)) ||
             (p->status == 413 && strcmp(p->code, "payload_too_large") == 0));
    PROP(p->nerrors <= PROBLEM_ERRORS_MAX);
    struct sbuf out = SBUF_INIT;
    problem_render(p, &out);
    PROP(out.len > 0 && out.len < 16384);
    char err[256];
    yajl_val v = yajl_tree_parse(sbuf_str(&out), err, sizeof err);
    if (!v)
        fprintf(stderr, "fuzz_command: problem is not JSON (%s): %s\n", err, sbuf_str(&out));
    PROP(v != NULL && YAJL_IS_OBJECT(v));
    yajl_tree_free(v);
    sbuf_free(&out);
}

static void mode_body(unsigned route_no, const uint8_t *data, size_t size)
{
    enum cmd_kind kind = (enum cmd_kind)(route_no % CMD_KIND_COUNT);
    struct cmd_route route;
    struct problem p;
    problem_init(&p);
    PROP(cmd_route_match("POST", paths[kind], &route, &p) == 0);
    PROP(route.kind == kind);

    char *body = malloc(size ? size : 1);
    PROP(body != NULL);
    if (size)
        memcpy(body, data, size);
    static struct command c1, c2;
    struct problem p1, p2;
    problem_init(&p1);
    problem_init(&p2);
    int r1 = cmd_parse_body(&route, body, size, &c1, &p1);
    int r2 = cmd_parse_body(&route, body, size, &c2, &p2);
    PROP(r1 == 0 || r1 == -1);
    PROP(r1 == r2);
    if (r1 == 0) {
        PROP(same_command(&c1, &c2));
        check_command(&c1, kind, route.path_id[0] ? route.path_id : NULL);
        /* What the parser accepted, an independent JSON parser must accept too (an empty
         * body is accepted on purpose as `{}` for the path commands without fields). */
        if (size > 0 && !memchr(body, '\0', size)) {
            char *z = malloc(size + 1);
            PROP(z != NULL);
            memcpy(z, body, size);
            z[size] = '\0';
            char err[128];
            yajl_val v = yajl_tree_parse(z, err, sizeof err);
            PROP(v != NULL && YAJL_IS_OBJECT(v));
            yajl_tree_free(v);
            free(z);
        }
    } else {
        PROP(p1.status == p2.status && strcmp(p1.code, p2.code) == 0);
        check_problem(&p1, 0);
    }
    free(body);
}

static void mode_route(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    PROP(line != NULL);
    if (size)
        memcpy(line, data, size);
    line[size] = '\0';
    char *sp = strchr(line, ' ');
    const char *method = line, *path = "";
    if (sp) {
        *sp = '\0';
        path = sp + 1;
    }
    struct cmd_route route;
    struct problem p;
    problem_init(&p);
    int r = cmd_route_match(method, path, &route, &p);
    PROP(r == 0 || r == -1);
    if (r == 0) {
        PROP(strcmp(method, "POST") == 0);
        PROP((unsigned)route.kind < CMD_KIND_COUNT && route.label != NULL);
        PROP(memchr(route.path_id, '\0', sizeof route.path_id) != NULL);
        if (route.path_id[0])
            check_id(route.path_id);
        PROP(cmd_is_create(route.kind) == (route.path_id[0] == '\0'));
    } else {
        check_problem(&p, 1);
    }
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 0x80)
        mode_route(data + 1, size - 1);
    else
        mode_body(data[0], data + 1, size - 1);
    return 0;
}
