#include <config.h>

#include "domain/command.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_parse.h>

/* --- routes ----------------------------------------------------------------------- */

/* '*' stands for one non-empty path segment: the id. */
static const struct route_spec {
    const char *pattern;
    enum cmd_kind kind;
    const char *label;
} routes[] = {
    { "/api/users", CMD_REGISTER_USER, "POST /api/users" },
    { "/api/users/*/deposits", CMD_DEPOSIT, "POST /api/users/{id}/deposits" },
    { "/api/items", CMD_ADD_ITEM, "POST /api/items" },
    { "/api/items/*/restock", CMD_RESTOCK, "POST /api/items/{id}/restock" },
    { "/api/orders", CMD_CREATE_ORDER, "POST /api/orders" },
    { "/api/orders/*/pay", CMD_PAY, "POST /api/orders/{id}/pay" },
    { "/api/orders/*/ship", CMD_SHIP, "POST /api/orders/{id}/ship" },
    { "/api/orders/*/deliver", CMD_DELIVER, "POST /api/orders/{id}/deliver" },
    { "/api/orders/*/cancel", CMD_CANCEL, "POST /api/orders/{id}/cancel" },
};

/* Matches path against pattern; on success (id, id_len) is the '*' segment (or NULL/0). */
static int route_matches(const char *pattern, const char *path, const char **id, size_t *id_len)
{
    *id = NULL;
    *id_len = 0;
    while (*pattern) {
        if (*pattern == '*') {
            size_t n = strcspn(path, "/");
            if (n == 0)
                return 0;
            *id = path;
            *id_len = n;
            path += n;
            pattern++;
        } else if (*pattern++ != *path++) {
            return 0;
        }
    }
    return *path == '\0';
}

int cmd_route_match(const char *method, const char *path, struct cmd_route *route,
                    struct problem *p)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const char *id;
        size_t id_len;
        if (!route_matches(routes[i].pattern, path, &id, &id_len))
            continue;
        if (strcmp(method, "POST") != 0) {
            /* The method is not echoed: it is client bytes of any kind. */
            problem_set(p, 405, "method_not_allowed", "only POST is allowed on %s",
                        routes[i].label + 5);
            return -1;
        }
        if (id && !vocab_valid_id(id, id_len)) {
            problem_set(p, 400, "validation_failed", "the id in the path is not a valid id");
            problem_add_error(p, "path", "must match " VOCAB_ID_PATTERN);
            return -1;
        }
        memset(route, 0, sizeof *route);
        route->kind = routes[i].kind;
        route->label = routes[i].label;
        if (id)
            memcpy(route->path_id, id, id_len);
        return 0;
    }
    /* A GET for the query program that reached the command socket: 405 (API.md 8). */
    if (strcmp(method, "POST") != 0 && (strncmp(path, "/api/", 5) == 0 || strcmp(path, "/metrics") == 0)) {
        problem_set(p, 405, "method_not_allowed", "the command service only accepts POST");
        return -1;
    }
    problem_set(p, 404, "not_found", "no command at this path");
    return -1;
}

int cmd_is_create(enum cmd_kind kind)
{
    return kind == CMD_REGISTER_USER || kind == CMD_ADD_ITEM || kind == CMD_CREATE_ORDER;
}

/* --- body schema ------------------------------------------------------------------ */

enum ftype {
    FT_ID,          /* string matching the id pattern */
    FT_STR,         /* non-empty string <= CMD_STR_MAX bytes */
    FT_STR_OR_NULL, /* string (may be empty) or null; null counts as absent */
    FT_INT,         /* integer in [min, max] */
    FT_LINES,       /* array of order lines */
};

/* A field of a JSON object and where its value goes (offset into struct command, or into
 * struct cmd_line for line fields; has_off: the int flag set when present, or SIZE_MAX). */
struct field_spec {
    const char *name;
    enum ftype type;
    int required;
    int64_t min, max;
    size_t off;
    size_t has_off;
};

#define NOFLAG SIZE_MAX
#define CF(f) offsetof(struct command, f)

static const struct field_spec register_fields[] = {
    { "user_id", FT_ID, 1, 0, 0, CF(id), NOFLAG },
    { "name", FT_STR, 1, 0, 0, CF(name), NOFLAG },
    { "email", FT_STR_OR_NULL, 0, 0, 0, CF(email), CF(has_email) },
};
static const struct field_spec deposit_fields[] = {
    { "amount_cents", FT_INT, 1, 1, INT64_MAX, CF(amount), NOFLAG },
};
static const struct field_spec add_item_fields[] = {
    { "item_id", FT_ID, 1, 0, 0, CF(id), NOFLAG },
    { "name", FT_STR, 1, 0, 0, CF(name), NOFLAG },
    { "category", FT_STR, 1, 0, 0, CF(category), NOFLAG },
    { "price_cents", FT_INT, 1, 1, INT64_MAX, CF(amount), NOFLAG },
};
static const struct field_spec restock_fields[] = {
    { "quantity", FT_INT, 1, 1, CMD_RESTOCK_MAX, CF(amount), NOFLAG },
};
static const struct field_spec order_fields[] = {
    { "user_id", FT_ID, 1, 0, 0, CF(user_id), NOFLAG },
    { "items", FT_LINES, 1, 0, 0, 0, NOFLAG },
    { "order_id", FT_ID, 0, 0, 0, CF(id), NOFLAG },
};
static const struct field_spec cancel_fields[] = {
    { "reason", FT_STR_OR_NULL, 0, 0, 0, CF(reason), CF(has_reason) },
};
static const struct field_spec line_fields[] = {
    { "item_id", FT_ID, 1, 0, 0, offsetof(struct cmd_line, item_id), NOFLAG },
    { "quantity", FT_INT, 1, 1, CMD_QTY_MAX, offsetof(struct cmd_line, quantity), NOFLAG },
};

#define SCHEMA(a) { a, sizeof a / sizeof a[0] }
static const struct {
    const struct field_spec *fields;
    size_t nfields;
} schemas[CMD_KIND_COUNT] = {
    [CMD_REGISTER_USER] = SCHEMA(register_fields),
    [CMD_DEPOSIT] = SCHEMA(deposit_fields),
    [CMD_ADD_ITEM] = SCHEMA(add_item_fields),
    [CMD_RESTOCK] = SCHEMA(restock_fields),
    [CMD_CREATE_ORDER] = SCHEMA(order_fields),
    [CMD_PAY] = { NULL, 0 },
    [CMD_SHIP] = { NULL, 0 },
    [CMD_DELIVER] = { NULL, 0 },
    [CMD_CANCEL] = SCHEMA(cancel_fields),
};

/* --- the streaming parser --------------------------------------------------------- */

/* What the innermost open container is. The stack has one entry per open container. */
enum pctx {
    PC_MAP,   /* the request object */
    PC_LINES, /* its "items" array */
    PC_LINE,  /* one order line */
    PC_SKIP,  /* a value being ignored (unknown field, wrong type, extra lines) */
};

enum vkind { V_NULL, V_BOOL, V_NUM, V_STR, V_MAP, V_ARRAY };

struct parser {
    struct command *cmd;
    struct problem *p;
    const struct field_spec *fields; /* of the request object */
    size_t nfields;
    int depth;                       /* open containers */
    enum pctx stack[CMD_DEPTH_MAX + 1];
    int too_deep;                    /* parse cancelled: nesting over the limit */
    int got_top;                     /* the top-level value began */
    /* The pending key of the innermost object: its spec, or NULL to skip its value. */
    const struct field_spec *pending;
    char key[PROBLEM_FIELD_MAX];     /* field path of the pending key, for messages */
    unsigned seen;                   /* request-object fields seen (bit per spec) */
    unsigned line_seen;              /* fields of the current line seen */
    size_t nlines;                   /* lines begun, including those over the limit */
};

/* Where values of the innermost object are stored. */
static void *value_base(struct parser *ps)
{
    if (ps->stack[ps->depth - 1] == PC_LINE)
        return &ps->cmd->lines[ps->nlines - 1];
    return ps->cmd;
}

static const char *type_word(enum ftype t)
{
    switch (t) {
    case FT_INT:
        return "an integer";
    case FT_LINES:
        return "an array of order lines";
    case FT_STR_OR_NULL:
        return "a string or null";
    default:
        return "a string";
    }
}

/* Parses a JSON number's raw text as an int64. Returns 0, -1 if it is not an integer
 * (fraction or exponent), -2 if out of the int64 range. */
static int parse_i64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i == n)
        return -1;
    uint64_t v = 0;
    int overflow = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = 1;
        else
            v = v * 10 + d;
    }
    if (overflow)
        return -2;
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return -2;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return -2;
        *out = (int64_t)v;
    }
    return 0;
}

static void store_int(struct parser *ps, const struct field_spec *f, const char *s, size_t n)
{
    int64_t v;
    int rc = parse_i64(s, n, &v);
    if (rc == -1) {
        problem_add_error(ps->p, ps->key, "must be an integer");
        return;
    }
    if (rc == -2 || v < f->min || v > f->max) {
        if (f->max == INT64_MAX)
            problem_add_error(ps->p, ps->key, "out of range: must be an integer from %" PRId64
                              " to 9223372036854775807", f->min);
        else
            problem_add_error(ps->p, ps->key, "out of range: must be an integer from %" PRId64
                              " to %" PRId64, f->min, f->max);
        return;
    }
    memcpy((char *)value_base(ps) + f->off, &v, sizeof v);
}

static size_t utf8_check(const unsigned char *s, size_t len);

static void store_str(struct parser *ps, const struct field_spec *f, const unsigned char *s,
                      size_t n)
{
    if (n > CMD_STR_MAX) {
        problem_add_error(ps->p, ps->key, "longer than %d bytes", CMD_STR_MAX);
        return;
    }
    if (memchr(s, '\0', n)) {
        problem_add_error(ps->p, ps->key, "must not contain NUL characters");
        return;
    }
    /* The body was valid UTF-8, but yajl decodes an unpaired surrogate escape ("\udc00")
     * into the bytes of a surrogate, which are not: such a string is refused, never stored. */
    if (utf8_check(s, n) != n) {
        problem_add_error(ps->p, ps->key, "must be valid Unicode (no unpaired surrogate escapes)");
        return;
    }
    if (f->type == FT_ID && !vocab_valid_id((const char *)s, n)) {
        problem_add_error(ps->p, ps->key, "must match " VOCAB_ID_PATTERN);
        return;
    }
    if (f->type == FT_STR && n == 0) {
        problem_add_error(ps->p, ps->key, "must not be empty");
        return;
    }
    char *dst = (char *)value_base(ps) + f->off;
    memcpy(dst, s, n);
    dst[n] = '\0';
    if (f->has_off != NOFLAG)
        *(int *)((char *)ps->cmd + f->has_off) = 1;
}

static int push(struct parser *ps, enum pctx c)
{
    if (ps->depth == CMD_DEPTH_MAX) {
        ps->too_deep = 1;
        return 0; /* cancels the parse */
    }
    ps->stack[ps->depth++] = c;
    return 1;
}

/* A value starts in the innermost container. Checks it against the pending spec; stores
 * scalars (s/n: raw text of numbers and strings); pushes containers. Returns 0 to cancel. */
static int on_value(struct parser *ps, enum vkind k, const unsigned char *s, size_t n)
{
    int container = k == V_MAP || k == V_ARRAY;
    if (ps->depth == 0) {
        ps->got_top = 1;
        if (k == V_MAP)
            return push(ps, PC_MAP);
        problem_add_error(ps->p, "", "the body must be a JSON object");
        return container ? push(ps, PC_SKIP) : 1;
    }
    enum pctx where = ps->stack[ps->depth - 1];
    if (where == PC_SKIP)
        return container ? push(ps, PC_SKIP) : 1;
    if (where == PC_LINES) {
        size_t i = ps->nlines++;
        snprintf(ps->key, sizeof ps->key, "items[%zu]", i);
        if (i == CMD_LINES_MAX)
            problem_add_error(ps->p, "items", "at most %d order lines", CMD_LINES_MAX);
        if (i >= CMD_LINES_MAX)
            return container ? push(ps, PC_SKIP) : 1;
        if (k == V_MAP) {
            memset(&ps->cmd->lines[i], 0, sizeof ps->cmd->lines[i]);
            ps->line_seen = 0;
            ps->cmd->nlines = i + 1;
            return push(ps, PC_LINE);
        }
        problem_add_error(ps->p, ps->key, "must be an object {\"item_id\", \"quantity\"}");
        return container ? push(ps, PC_SKIP) : 1;
    }
    /* In an object: the value of the pending key. */
    const struct field_spec *f = ps->pending;
    ps->pending = NULL;
    if (!f)
        return container ? push(ps, PC_SKIP) : 1;
    int ok = (f->type == FT_INT && k == V_NUM) || (f->type == FT_LINES && k == V_ARRAY) ||
             ((f->type == FT_ID || f->type == FT_STR) && k == V_STR) ||
             (f->type == FT_STR_OR_NULL && (k == V_STR || k == V_NULL));
    if (!ok) {
        problem_add_error(ps->p, ps->key, "must be %s", type_word(f->type));
        return container ? push(ps, PC_SKIP) : 1;
    }
    switch (k) {
    case V_NUM:
        store_int(ps, f, (const char *)s, n);
        return 1;
    case V_STR:
        store_str(ps, f, s, n);
        return 1;
    case V_ARRAY:
        return push(ps, PC_LINES);
    default:
        return 1; /* null for an optional string: absent */
    }
}

static int cb_null(void *ctx) { return on_value(ctx, V_NULL, NULL, 0); }
static int cb_boolean(void *ctx, int b) { (void)b; return on_value(ctx, V_BOOL, NULL, 0); }
static int cb_number(void *ctx, const char *s, size_t n)
{
    return on_value(ctx, V_NUM, (const unsigned char *)s, n);
}
static int cb_string(void *ctx, const unsigned char *s, size_t n)
{
    return on_value(ctx, V_STR, s, n);
}
static int cb_start_map(void *ctx) { return on_value(ctx, V_MAP, NULL, 0); }
static int cb_start_array(void *ctx) { return on_value(ctx, V_ARRAY, NULL, 0); }

static int cb_map_key(void *ctx, const unsigned char *key, size_t n)
{
    struct parser *ps = ctx;
    enum pctx where = ps->stack[ps->depth - 1];
    ps->pending = NULL;
    if (where == PC_SKIP)
        return 1;
    const struct field_spec *fields = where == PC_LINE ? line_fields : ps->fields;
    size_t nfields = where == PC_LINE ? sizeof line_fields / sizeof line_fields[0] : ps->nfields;
    unsigned *seen = where == PC_LINE ? &ps->line_seen : &ps->seen;
    /* Field path for messages: long keys are shown cut to 48 bytes, never inside a UTF-8
     * sequence (the key is valid UTF-8; the answer must stay so). */
    size_t cut = n > 48 ? 48 : n;
    while (cut < n && cut > 0 && (key[cut] & 0xC0) == 0x80)
        cut--;
    int shown = (int)cut;
    const char *label = (const char *)key;
    if (utf8_check(key, cut) != cut) {
        label = "(a key that is not valid Unicode)";
        shown = (int)strlen(label);
    }
    if (where == PC_LINE)
        snprintf(ps->key, sizeof ps->key, "items[%zu].%.*s", ps->nlines - 1, shown, label);
    else
        snprintf(ps->key, sizeof ps->key, "%.*s", shown, label);
    for (size_t i = 0; i < nfields; i++) {
        if (strlen(fields[i].name) != n || memcmp(fields[i].name, key, n) != 0)
            continue;
        if (*seen & (1u << i)) {
            problem_add_error(ps->p, ps->key, "duplicate key");
            return 1;
        }
        *seen |= 1u << i;
        ps->pending = &fields[i];
        return 1;
    }
    problem_add_error(ps->p, ps->key, "unknown field");
    return 1;
}

static void check_required(struct parser *ps, const struct field_spec *fields, size_t nfields,
                           unsigned seen, const char *prefix)
{
    for (size_t i = 0; i < nfields; i++) {
        if (!fields[i].required || (seen & (1u << i)))
            continue;
        char path[PROBLEM_FIELD_MAX];
        snprintf(path, sizeof path, "%s%s", prefix, fields[i].name);
        problem_add_error(ps->p, path, "is required");
    }
}

static int cb_end_map(void *ctx)
{
    struct parser *ps = ctx;
    enum pctx c = ps->stack[--ps->depth];
    if (c == PC_MAP) {
        check_required(ps, ps->fields, ps->nfields, ps->seen, "");
    } else if (c == PC_LINE) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "items[%zu].", ps->nlines - 1);
        check_required(ps, line_fields, sizeof line_fields / sizeof line_fields[0],
                       ps->line_seen, prefix);
    }
    return 1;
}

static int cb_end_array(void *ctx)
{
    struct parser *ps = ctx;
    enum pctx c = ps->stack[--ps->depth];
    if (c == PC_LINES && ps->nlines == 0)
        problem_add_error(ps->p, "items", "must contain at least one line");
    return 1;
}

static const yajl_callbacks parse_callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_boolean,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_map_key,
    .yajl_end_map = cb_end_map,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end_array,
};

/* Runs yajl over the body. Returns 0 if the text is well-formed JSON (field errors, if
 * any, are in ps->p), or -1 with *p set to invalid_json / validation_failed (too deep). */
static int run_yajl(struct parser *ps, const char *body, size_t len)
{
    yajl_handle h = yajl_alloc(&parse_callbacks, NULL, ps);
    if (!h) {
        problem_set(ps->p, 500, "internal_error", "out of memory");
        return -1;
    }
    /* Defaults are what we want: UTF-8 validated, no comments, no trailing garbage, one
     * value, no partial values. */
    yajl_status st = yajl_parse(h, (const unsigned char *)body, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    size_t at = yajl_get_bytes_consumed(h);
    yajl_free(h);
    if (ps->too_deep) {
        ps->p->nerrors = 0;
        ps->p->dropped = 0;
        problem_set(ps->p, 400, "validation_failed", "JSON nested deeper than %d levels",
                    CMD_DEPTH_MAX);
        problem_add_error(ps->p, "", "nesting deeper than %d levels", CMD_DEPTH_MAX);
        return -1;
    }
    if (st != yajl_status_ok) {
        ps->p->nerrors = 0;
        ps->p->dropped = 0;
        problem_set(ps->p, 400, "invalid_json",
                    "the body is not well-formed JSON (near byte %zu)", at);
        return -1;
    }
    return 0;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
 * yajl's own check accepts overlong sequences, so the whole body is checked here first.
 * Returns the offset of the first bad byte, or len if all is well. */
static size_t utf8_check(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (len - i < n)
            return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n;
    }
    return len;
}

/* Semantic checks that span fields: duplicate item ids in one order. */
static void check_lines(const struct command *cmd, struct problem *p)
{
    for (size_t i = 0; i < cmd->nlines; i++) {
        if (!cmd->lines[i].item_id[0])
            continue; /* already reported */
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cmd->lines[i].item_id, cmd->lines[j].item_id) == 0) {
                char path[PROBLEM_FIELD_MAX];
                snprintf(path, sizeof path, "items[%zu].item_id", i);
                problem_add_error(p, path, "duplicate item_id (also in items[%zu])", j);
                break;
            }
        }
    }
}

int cmd_parse_body(const struct cmd_route *route, const char *body, size_t body_len,
                   struct command *cmd, struct problem *p)
{
    assert(route->kind < CMD_KIND_COUNT);
    memset(cmd, 0, offsetof(struct command, lines)); /* the lines are written as parsed */
    cmd->kind = route->kind;
    if (route->path_id[0])
        memcpy(cmd->id, route->path_id, sizeof cmd->id);
    if (body_len > CMD_BODY_MAX) {
        problem_set(p, 413, "payload_too_large", "the body is larger than %d bytes", CMD_BODY_MAX);
        return -1;
    }
    /* An empty body is not JSON, for every command, pay/ship/deliver/cancel included: the
     * contract's body for those is `{}`, and an empty body is a bad input that must get a
     * 4xx and append nothing. (Reading it as `{}` was considered and
     * rejected: it would make a truncated request act.) */
    if (body_len == 0) {
        problem_set(p, 400, "invalid_json", "the body is empty; a JSON object is required");
        return -1;
    }
    /* yajl stops at a raw NUL as at any invalid byte, but say it plainly. */
    if (memchr(body, '\0', body_len)) {
        problem_set(p, 400, "invalid_json", "the body contains a NUL byte");
        return -1;
    }
    size_t bad = utf8_check((const unsigned char *)body, body_len);
    if (bad != body_len) {
        problem_set(p, 400, "invalid_json", "the body is not valid UTF-8 (byte %zu)", bad);
        return -1;
    }
    struct parser ps = { .cmd = cmd, .p = p };
    ps.fields = schemas[route->kind].fields;
    ps.nfields = schemas[route->kind].nfields;
    if (run_yajl(&ps, body, body_len) < 0)
        return -1;
    if (cmd->kind == CMD_CREATE_ORDER)
        check_lines(cmd, p);
    if (p->nerrors || p->dropped) {
        problem_set(p, 400, "validation_failed", "the request has %zu invalid field%s",
                    p->nerrors + p->dropped, p->nerrors + p->dropped == 1 ? "" : "s");
        return -1;
    }
    return 0;
}
