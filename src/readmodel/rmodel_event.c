#include <config.h>

#include "readmodel/rmodel_event.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "util/xalloc.h"

/* Fields the folds use, as bits of a mask. */
enum {
    F_ORDER_ID = 1 << 0,
    F_USER_ID = 1 << 1,
    F_ITEM_ID = 1 << 2,
    F_NAME = 1 << 3,
    F_CATEGORY = 1 << 4,
    F_AMOUNT = 1 << 5,
    F_BALANCE = 1 << 6,
    F_PRICE = 1 << 7,
    F_QUANTITY = 1 << 8,
    F_AVAILABLE = 1 << 9,
    F_REFUNDED = 1 << 10,
    F_LINES = 1 << 11,
};

/* What the folds need of each type, beyond its name and schema versions (domain/vocab.h).
 * Indexed by enum ev_type. Optional fields (email, reason, previous_status) are not used by
 * any projection, so they are not checked either. */
static const struct ev_type_desc {
    const char *projection;
    unsigned required;
} types[EV_TYPE_COUNT] = {
    [EV_USER_REGISTERED] = { "users", F_USER_ID | F_NAME },
    [EV_FUNDS_DEPOSITED] = { "users", F_USER_ID | F_AMOUNT | F_BALANCE },
    [EV_ITEM_ADDED] = { "items", F_ITEM_ID | F_NAME | F_CATEGORY | F_PRICE },
    [EV_ITEM_RESTOCKED] = { "items", F_ITEM_ID | F_QUANTITY | F_AVAILABLE },
    [EV_ORDER_CREATED] = { "orders", F_ORDER_ID | F_USER_ID | F_LINES | F_AMOUNT },
    [EV_PAYMENT_PROCESSED] = { "orders", F_ORDER_ID | F_USER_ID | F_AMOUNT },
    [EV_ORDER_SHIPPED] = { "orders", F_ORDER_ID },
    [EV_ORDER_DELIVERED] = { "orders", F_ORDER_ID },
    [EV_ORDER_CANCELLED] = { "orders", F_ORDER_ID | F_USER_ID | F_REFUNDED },
};

/* The newest schema read per type where a test raised it (rmodel_ev_set_max_schema), else
 * 0: the vocabulary's current one. */
static int max_schema_override[EV_TYPE_COUNT];

static int max_schema(enum ev_type type)
{
    return max_schema_override[type] ? max_schema_override[type] : vocab_event_schema(type);
}

int rmodel_ev_set_max_schema(enum ev_type type, int max)
{
    int old = max_schema(type);
    max_schema_override[type] = max;
    return old;
}

/* A field the folds use: where its value goes (offset in struct rmodel_ev, or in struct
 * rmodel_line for line fields) and its JSON type. */
struct field {
    const char *key;
    size_t klen; /* strlen(key) */
    unsigned bit;
    size_t off;
    int is_str;
};

static const struct field top_fields[] = {
    { "order_id", 8, F_ORDER_ID, offsetof(struct rmodel_ev, order_id), 1 },
    { "user_id", 7, F_USER_ID, offsetof(struct rmodel_ev, user_id), 1 },
    { "item_id", 7, F_ITEM_ID, offsetof(struct rmodel_ev, item_id), 1 },
    { "name", 4, F_NAME, offsetof(struct rmodel_ev, name), 1 },
    { "category", 8, F_CATEGORY, offsetof(struct rmodel_ev, category), 1 },
    { "amount_cents", 12, F_AMOUNT, offsetof(struct rmodel_ev, amount), 0 },
    { "balance_cents", 13, F_BALANCE, offsetof(struct rmodel_ev, balance), 0 },
    { "price_cents", 11, F_PRICE, offsetof(struct rmodel_ev, price), 0 },
    { "quantity", 8, F_QUANTITY, offsetof(struct rmodel_ev, quantity), 0 },
    { "available", 9, F_AVAILABLE, offsetof(struct rmodel_ev, available), 0 },
    { "refunded_cents", 14, F_REFUNDED, offsetof(struct rmodel_ev, refunded), 0 },
    { "lines", 5, F_LINES, 0, 0 }, /* an array: handled by the array callbacks */
    { NULL, 0, 0, 0, 0 },
};

static const struct field line_fields[] = {
    { "item_id", 7, F_ITEM_ID, offsetof(struct rmodel_line, item), 1 },
    { "quantity", 8, F_QUANTITY, offsetof(struct rmodel_line, quantity), 0 },
    { "name", 4, F_NAME, offsetof(struct rmodel_line, name), 1 },
    { "category", 8, F_CATEGORY, offsetof(struct rmodel_line, category), 1 },
    { "price_cents", 11, F_PRICE, offsetof(struct rmodel_line, price), 0 },
    { NULL, 0, 0, 0, 0 },
};

/* Streaming parse state (yajl callbacks). Depth 1 is inside the top object, 2 inside the
 * "lines" array, 3 inside one line. Only keys at depth 1 and, inside lines, at depth 3 are
 * looked up; everything else is skipped. A used field with an unexpected JSON type sets
 * `bad` and stops the parse. */
struct pstate {
    struct rmodel_ev *ev;
    int depth;
    int in_lines;
    const struct field *pending; /* the used field whose value comes next, or NULL */
    /* 1: strings are copied into ev's arena (yajl hands out decoded strings that die with
     * its handle); 0: they point into the record's data (the fast path only accepts
     * strings without escapes, which are their own JSON text). */
    int copy;
    unsigned seen, line_seen;
    char bad_key[40];
    int bad;
};

#define PARSE_MAX_DEPTH 32

static const struct field *lookup(const struct field *f, const unsigned char *k, size_t n)
{
    if (n == 0)
        return NULL; /* no field has an empty name */
    /* First byte first: most keys are told apart without a string compare. */
    for (; f->key; f++)
        if ((unsigned char)f->key[0] == k[0] && f->klen == n && memcmp(f->key, k, n) == 0)
            return f;
    return NULL;
}

static int fail(struct pstate *p, const char *key)
{
    p->bad = 1;
    snprintf(p->bad_key, sizeof p->bad_key, "%s", key);
    return 0; /* stops the parser */
}

/* Where a field's value goes: the line being parsed, or the event. */
static char *target(struct pstate *p)
{
    return p->depth == 3 ? (char *)&p->ev->lines[p->ev->nlines] : (char *)p->ev;
}

static void mark(struct pstate *p, unsigned bit)
{
    if (p->depth == 3)
        p->line_seen |= bit;
    else
        p->seen |= bit;
}

/* A value where a used field expects another type, or a scalar directly in "lines". */
static int cb_other(void *ctx)
{
    struct pstate *p = ctx;
    if (p->in_lines && p->depth == 2)
        return fail(p, "lines");
    if (p->pending)
        return fail(p, p->pending->key);
    return 1;
}

static int cb_bool(void *ctx, int v)
{
    (void)v;
    return cb_other(ctx);
}

static int cb_double(void *ctx, double v)
{
    (void)v;
    return cb_other(ctx);
}

static int cb_integer(void *ctx, long long v)
{
    struct pstate *p = ctx;
    const struct field *f = p->pending;
    if (!f || f->is_str || f->bit == F_LINES)
        return cb_other(ctx);
    *(int64_t *)(void *)(target(p) + f->off) = v;
    mark(p, f->bit);
    p->pending = NULL;
    return 1;
}

static int cb_string(void *ctx, const unsigned char *s, size_t n)
{
    struct pstate *p = ctx;
    const struct field *f = p->pending;
    if (!f || !f->is_str)
        return cb_other(ctx);
    if (n > UINT16_MAX)
        return fail(p, f->key);
    struct rmodel_str *dst = (struct rmodel_str *)(void *)(target(p) + f->off);
    dst->n = n;
    if (!p->copy) {
        dst->p = (const char *)s;
    } else {
        /* The arena was reserved for the whole input (decoded strings are never longer
         * than their JSON text), so appending never moves what earlier strings point to. */
        struct sbuf *a = &p->ev->arena;
        assert(a->len + n < a->cap);
        dst->p = a->data + a->len;
        sbuf_append(a, s, n);
    }
    mark(p, f->bit);
    p->pending = NULL;
    return 1;
}

static int cb_key(void *ctx, const unsigned char *k, size_t n)
{
    struct pstate *p = ctx;
    p->pending = NULL;
    if (p->depth == 1)
        p->pending = lookup(top_fields, k, n);
    else if (p->depth == 3 && p->in_lines)
        p->pending = lookup(line_fields, k, n);
    /* Schema 1 lines: name, category and price come from the item, whatever is there. */
    if (p->pending && p->depth == 3 && p->ev->upcast && p->pending->bit != F_ITEM_ID &&
        p->pending->bit != F_QUANTITY)
        p->pending = NULL;
    return 1;
}

static int cb_start_map(void *ctx)
{
    struct pstate *p = ctx;
    struct rmodel_ev *ev = p->ev;
    if (p->in_lines && p->depth == 2) {
        if (ev->nlines >= RMODEL_MAX_LINES)
            return fail(p, "lines");
        if (ev->nlines == ev->lines_cap) {
            ev->lines_cap = ev->lines_cap ? 2 * ev->lines_cap : 8;
            ev->lines = xrealloc(ev->lines, ev->lines_cap * sizeof *ev->lines);
        }
        memset(&ev->lines[ev->nlines], 0, sizeof ev->lines[0]);
        p->line_seen = 0;
    } else if (p->pending) {
        return fail(p, p->pending->key);
    }
    p->pending = NULL;
    return ++p->depth <= PARSE_MAX_DEPTH ? 1 : fail(p, "(nesting)");
}

static int cb_end_map(void *ctx)
{
    struct pstate *p = ctx;
    if (p->in_lines && p->depth == 3) {
        struct rmodel_line *l = &p->ev->lines[p->ev->nlines];
        unsigned need = F_ITEM_ID | F_QUANTITY | (p->ev->upcast ? 0 : F_NAME | F_CATEGORY | F_PRICE);
        if ((p->line_seen & need) != need || l->quantity <= 0 || l->item.n == 0)
            return fail(p, "lines");
        p->ev->nlines++;
    }
    p->depth--;
    p->pending = NULL;
    return 1;
}

static int cb_start_array(void *ctx)
{
    struct pstate *p = ctx;
    if (p->depth == 1 && p->pending && p->pending->bit == F_LINES) {
        p->in_lines = 1;
        p->ev->nlines = 0;
    } else if (p->pending || (p->in_lines && p->depth == 2)) {
        return fail(p, p->pending ? p->pending->key : "lines");
    }
    p->pending = NULL;
    return ++p->depth <= PARSE_MAX_DEPTH ? 1 : fail(p, "(nesting)");
}

static int cb_end_array(void *ctx)
{
    struct pstate *p = ctx;
    if (p->in_lines && p->depth == 2) {
        p->in_lines = 0;
        if (p->ev->nlines == 0)
            return fail(p, "lines");
        p->seen |= F_LINES;
    }
    p->depth--;
    p->pending = NULL;
    return 1;
}

static const yajl_callbacks callbacks = {
    cb_other,     cb_bool,   cb_integer, cb_double,      NULL,         cb_string,
    cb_start_map, cb_key,    cb_end_map, cb_start_array, cb_end_array,
};

/* --- the fast path ---------------------------------------------------------------------
 *
 * Event data is JSON that eventfold wrote itself: plain ASCII strings without escapes,
 * small integers, a few nested objects and arrays. fast_parse() tokenizes exactly that
 * subset and drives the same callbacks as yajl, in the same order and with the same
 * values, so the fold sees no difference; it costs a fraction of a yajl handle's
 * allocation and its byte-by-byte lexer with UTF-8 validation. Anything outside the subset
 * (an escape, a byte outside 0x20..0x7e in a string, a fraction or exponent, a number of
 * more than 18 digits or with a leading zero, other whitespace, any syntax error, nesting
 * over FAST_MAX_DEPTH) makes it give up, and the whole document is parsed again by yajl
 * from a clean state: every error and every unusual input keeps yajl's exact behaviour. */

#define FAST_MAX_DEPTH 64

enum { FAST_DONE = 1, FAST_GIVE_UP = 0 };

static const unsigned char *fast_ws(const unsigned char *s, const unsigned char *end)
{
    while (s < end && (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r'))
        s++;
    return s;
}

/* A string starting after its opening quote: sets *n and returns the closing quote, or NULL
 * to give up. */
static const unsigned char *fast_str(const unsigned char *s, const unsigned char *end, size_t *n)
{
    const unsigned char *b = s;
    while (s < end && *s != '"') {
        if (*s < 0x20 || *s >= 0x7f || *s == '\\')
            return NULL;
        s++;
    }
    if (s == end)
        return NULL;
    *n = (size_t)(s - b);
    return s;
}

/* One value at s (whitespace skipped): calls its scalar callback, or opens a container
 * (pushed on stack). Returns the byte after it, or NULL to give up; *stop when a callback
 * stopped the parse. */
static const unsigned char *fast_value(struct pstate *p, const unsigned char *s,
                                       const unsigned char *end, char *stack, int *depth, int *stop)
{
    if (s == end)
        return NULL;
    int ok = 1;
    if (*s == '"') {
        size_t n;
        const unsigned char *q = fast_str(s + 1, end, &n);
        if (!q)
            return NULL;
        ok = cb_string(p, s + 1, n);
        s = q + 1;
    } else if (*s == '{' || *s == '[') {
        if (*depth >= FAST_MAX_DEPTH)
            return NULL;
        stack[(*depth)++] = (char)*s;
        ok = *s == '{' ? cb_start_map(p) : cb_start_array(p);
        s++;
    } else if (*s == '-' || (*s >= '0' && *s <= '9')) {
        int neg = *s == '-';
        const unsigned char *b = s + neg;
        long long v = 0;
        s = b;
        /* At most 18 digits here, so v cannot overflow; longer ones go to yajl, whose
         * range check is exact. */
        while (s < end && *s >= '0' && *s <= '9') {
            if (s - b >= 18)
                return NULL;
            v = v * 10 + (*s++ - '0');
        }
        size_t digits = (size_t)(s - b);
        if (digits == 0 || (digits > 1 && *b == '0'))
            return NULL;
        if (s < end && (*s == '.' || *s == 'e' || *s == 'E'))
            return NULL;
        ok = cb_integer(p, neg ? -v : v);
    } else if (end - s >= 4 && memcmp(s, "true", 4) == 0) {
        ok = cb_bool(p, 1);
        s += 4;
    } else if (end - s >= 5 && memcmp(s, "false", 5) == 0) {
        ok = cb_bool(p, 0);
        s += 5;
    } else if (end - s >= 4 && memcmp(s, "null", 4) == 0) {
        ok = cb_other(p);
        s += 4;
    } else {
        return NULL;
    }
    *stop = !ok;
    return s;
}

/* Parses data with the callbacks: FAST_DONE (parsed whole, or stopped by a callback: then
 * p->bad says why, as after yajl), or FAST_GIVE_UP. */
static int fast_parse(struct pstate *p, const unsigned char *s, size_t len)
{
    const unsigned char *end = s + len;
    char stack[FAST_MAX_DEPTH];
    int depth = 0, stop = 0;
    s = fast_ws(s, end);
    s = fast_value(p, s, end, stack, &depth, &stop);
    /* After a value (or an opening bracket) inside containers: what may follow. */
    int just_opened = s && depth > 0;
    while (s && !stop && depth > 0) {
        s = fast_ws(s, end);
        if (s == end)
            return FAST_GIVE_UP;
        char top = stack[depth - 1];
        if (*s == (top == '{' ? '}' : ']')) {
            depth--;
            stop = !(top == '{' ? cb_end_map(p) : cb_end_array(p));
            s++;
            just_opened = 0;
            continue;
        }
        if (!just_opened) {
            if (*s != ',')
                return FAST_GIVE_UP;
            s = fast_ws(s + 1, end);
        }
        if (top == '{') {
            size_t n;
            const unsigned char *q = s < end && *s == '"' ? fast_str(s + 1, end, &n) : NULL;
            if (!q)
                return FAST_GIVE_UP;
            if (!cb_key(p, s + 1, n))
                return FAST_DONE; /* never: cb_key does not stop */
            s = fast_ws(q + 1, end);
            if (s == end || *s != ':')
                return FAST_GIVE_UP;
            s = fast_ws(s + 1, end);
        }
        int before = depth;
        s = fast_value(p, s, end, stack, &depth, &stop);
        just_opened = depth > before;
    }
    if (stop)
        return FAST_DONE;
    if (!s || fast_ws(s, end) != end)
        return FAST_GIVE_UP;
    return FAST_DONE;
}

/* Back to the state parse_data() started from, keeping the memory (lines, arena). */
static void ev_restart(struct rmodel_ev *ev, const struct rmodel_ev *start)
{
    struct rmodel_line *lines = ev->lines;
    size_t cap = ev->lines_cap;
    struct sbuf arena = ev->arena;
    *ev = *start;
    ev->lines = lines;
    ev->lines_cap = cap;
    ev->arena = arena;
    sbuf_reset(&ev->arena);
}

/* yajl's parse of the data with the callbacks, from a clean state: its status. */
static yajl_status yajl_parse_data(struct pstate *p, struct rmodel_ev *ev, const struct log_record *rec)
{
    memset(p, 0, sizeof *p);
    p->ev = ev;
    p->copy = 1;
    sbuf_reserve(&ev->arena, rec->data_len + 1);
    yajl_handle h = xcheck(yajl_alloc(&callbacks, NULL, p));
    yajl_status st = yajl_parse(h, (const unsigned char *)rec->data, rec->data_len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    return st;
}

/* Parses the data into ev with parser: 0, or 1 with the reason (bad JSON, a bad or missing
 * field), or RMODEL_EV_GAVE_UP (RMODEL_EV_PARSE_FAST only). */
static int parse_data(struct rmodel_ev *ev, const char *name, const struct ev_type_desc *d,
                      const struct log_record *rec, struct sbuf *reason,
                      enum rmodel_ev_parser parser)
{
    struct pstate p;
    memset(&p, 0, sizeof p);
    p.ev = ev;
    sbuf_reset(&ev->arena);
    yajl_status st = yajl_status_ok;
    const struct rmodel_ev start = *ev;
    if (parser == RMODEL_EV_PARSE_YAJL) {
        st = yajl_parse_data(&p, ev, rec);
    } else if (fast_parse(&p, (const unsigned char *)rec->data, rec->data_len) == FAST_GIVE_UP) {
        ev_restart(ev, &start);
        if (parser == RMODEL_EV_PARSE_FAST)
            return RMODEL_EV_GAVE_UP;
        st = yajl_parse_data(&p, ev, rec);
    }
    if (p.bad) {
        sbuf_printf(reason, "%s field %s is invalid", name, p.bad_key);
        return 1;
    }
    if (st != yajl_status_ok || p.depth != 0) {
        sbuf_printf(reason, "%s data is not a valid JSON object", name);
        return 1;
    }
    if ((p.seen & d->required) != d->required) {
        sbuf_printf(reason, "%s lacks a required field", name);
        return 1;
    }
    return 0;
}

int rmodel_ev_parse_with(struct rmodel_ev *ev, const struct log_record *rec, struct sbuf *reason,
                         enum rmodel_ev_parser parser)
{
    /* Keep the memory of the previous parse (lines array, arena); clear the rest. */
    struct rmodel_line *lines = ev->lines;
    size_t cap = ev->lines_cap;
    struct sbuf arena = ev->arena;
    memset(ev, 0, sizeof *ev);
    ev->lines = lines;
    ev->lines_cap = cap;
    ev->arena = arena;
    sbuf_reset(reason);

    int t = vocab_event_find(rec->type, rec->type_len);
    if (t < 0) {
        sbuf_printf(reason, "unknown event type %.*s", (int)rec->type_len, rec->type);
        return 1;
    }
    ev->type = (enum ev_type)t;
    ev->schema = rec->schema_version;
    ev->projection = types[t].projection;
    const char *name = vocab_event_name(ev->type);
    if (rec->schema_version < VOCAB_SCHEMA_MIN || rec->schema_version > max_schema(ev->type)) {
        sbuf_printf(reason, "unknown schema_version %u for %s", rec->schema_version, name);
        return 1;
    }
    ev->upcast = ev->type == EV_ORDER_CREATED && rec->schema_version == 1;
    return parse_data(ev, name, &types[t], rec, reason, parser);
}

int rmodel_ev_parse(struct rmodel_ev *ev, const struct log_record *rec, struct sbuf *reason)
{
    return rmodel_ev_parse_with(ev, rec, reason, RMODEL_EV_PARSE_AUTO);
}

void rmodel_ev_free(struct rmodel_ev *ev)
{
    free(ev->lines);
    sbuf_free(&ev->arena);
    memset(ev, 0, sizeof *ev);
}
