#include <config.h>

#include "domain/event.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "util/xalloc.h"

/* The stream of each type's resource: "user-ID", "item-ID" or "order-ID". */
static const char *const stream_prefix[EV_TYPE_COUNT] = {
    [EV_USER_REGISTERED] = "user-", [EV_FUNDS_DEPOSITED] = "user-",
    [EV_ITEM_ADDED] = "item-", [EV_ITEM_RESTOCKED] = "item-",
    [EV_ORDER_CREATED] = "order-", [EV_PAYMENT_PROCESSED] = "order-",
    [EV_ORDER_SHIPPED] = "order-", [EV_ORDER_DELIVERED] = "order-",
    [EV_ORDER_CANCELLED] = "order-",
};

const char *order_status_name(int status)
{
    const char *name = vocab_status_name(status);
    return name ? name : "unknown";
}

int order_status_parse(const char *s, enum order_status *out)
{
    int st = vocab_status_find(s);
    if (st == 0)
        return -1;
    *out = (enum order_status)st;
    return 0;
}

void event_clear(struct event *ev)
{
    memset(ev, 0, offsetof(struct event, lines));
}

void event_stream(const struct event *ev, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", stream_prefix[ev->type], ev->id);
}

/* --- encoding ---------------------------------------------------------------------- */

static void put_str(struct sbuf *o, const char *key, const char *v)
{
    sbuf_json_key(o, key);
    sbuf_json_cstr(o, v);
}

static void put_i64(struct sbuf *o, const char *key, int64_t v)
{
    sbuf_json_key(o, key);
    sbuf_json_i64(o, v);
}

static void put_str_or_null(struct sbuf *o, const char *key, int has, const char *v)
{
    if (has) {
        put_str(o, key, v);
    } else {
        sbuf_json_key(o, key);
        sbuf_puts(o, "null");
    }
}

static void encode_lines(const struct event *ev, struct sbuf *o)
{
    sbuf_json_key(o, "lines");
    sbuf_putc(o, '[');
    for (size_t i = 0; i < ev->nlines; i++) {
        const struct ev_line *l = &ev->lines[i];
        if (i)
            sbuf_putc(o, ',');
        sbuf_putc(o, '{');
        put_str(o, "item_id", l->item_id);
        put_str(o, "name", l->name);
        put_str(o, "category", l->category);
        put_i64(o, "quantity", l->quantity);
        put_i64(o, "price_cents", l->price);
        sbuf_putc(o, '}');
    }
    sbuf_putc(o, ']');
}

void event_encode_data(const struct event *ev, struct sbuf *o)
{
    sbuf_putc(o, '{');
    switch (ev->type) {
    case EV_USER_REGISTERED:
        put_str(o, "user_id", ev->id);
        put_str(o, "name", ev->name);
        put_str_or_null(o, "email", ev->has_email, ev->email);
        break;
    case EV_FUNDS_DEPOSITED:
        put_str(o, "user_id", ev->id);
        put_i64(o, "amount_cents", ev->amount);
        put_i64(o, "balance_cents", ev->balance);
        break;
    case EV_ITEM_ADDED:
        put_str(o, "item_id", ev->id);
        put_str(o, "name", ev->name);
        put_str(o, "category", ev->category);
        put_i64(o, "price_cents", ev->price);
        break;
    case EV_ITEM_RESTOCKED:
        put_str(o, "item_id", ev->id);
        put_i64(o, "quantity", ev->quantity);
        put_i64(o, "available", ev->available);
        break;
    case EV_ORDER_CREATED:
        put_str(o, "order_id", ev->id);
        put_str(o, "user_id", ev->user_id);
        encode_lines(ev, o);
        put_i64(o, "amount_cents", ev->amount);
        break;
    case EV_PAYMENT_PROCESSED:
        put_str(o, "order_id", ev->id);
        put_str(o, "user_id", ev->user_id);
        put_i64(o, "amount_cents", ev->amount);
        put_i64(o, "balance_cents", ev->balance);
        break;
    case EV_ORDER_SHIPPED:
    case EV_ORDER_DELIVERED:
        put_str(o, "order_id", ev->id);
        break;
    case EV_ORDER_CANCELLED:
        put_str(o, "order_id", ev->id);
        put_str(o, "user_id", ev->user_id);
        put_str_or_null(o, "reason", ev->has_reason, ev->reason);
        put_i64(o, "refunded_cents", ev->refunded);
        put_str(o, "previous_status", order_status_name(ev->previous_status));
        break;
    case EV_TYPE_COUNT:
        break;
    }
    sbuf_putc(o, '}');
}

void event_encode_meta(const struct event *ev, struct sbuf *o)
{
    sbuf_putc(o, '{');
    if (ev->has_idem) {
        put_str(o, "idempotency_key", ev->idem_key);
        sbuf_json_key(o, "request");
        sbuf_putc(o, '"');
        for (int i = 0; i < EV_FINGERPRINT_LEN; i++)
            sbuf_printf(o, "%02x", ev->fingerprint[i]);
        sbuf_putc(o, '"');
    }
    sbuf_putc(o, '}');
}

/* --- decoding ---------------------------------------------------------------------- */

/* Decoding state: the parsed tree and where to report the first problem. */
struct dec {
    char *err;
    size_t errlen;
    int failed;
};

static void dec_fail(struct dec *d, const char *what, const char *key)
{
    if (!d->failed)
        snprintf(d->err, d->errlen, "%s '%s'", what, key);
    d->failed = 1;
}

static yajl_val field(yajl_val obj, const char *key)
{
    const char *path[] = { key, NULL };
    return yajl_tree_get(obj, path, yajl_t_any);
}

/* Copies string field key into dst (cap bytes); nullable: null gives *has = 0. */
static void get_str(struct dec *d, yajl_val obj, const char *key, char *dst, size_t cap, int *has)
{
    yajl_val v = field(obj, key);
    if (has && v && YAJL_IS_NULL(v)) {
        *has = 0;
        dst[0] = '\0';
        return;
    }
    if (!v || !YAJL_IS_STRING(v) || strlen(v->u.string) >= cap) {
        dec_fail(d, "missing or malformed string", key);
        return;
    }
    strcpy(dst, v->u.string);
    if (has)
        *has = 1;
}

static int64_t get_i64(struct dec *d, yajl_val obj, const char *key)
{
    yajl_val v = field(obj, key);
    if (!v || !YAJL_IS_INTEGER(v)) {
        dec_fail(d, "missing or malformed integer", key);
        return 0;
    }
    return (int64_t)YAJL_GET_INTEGER(v);
}

static void decode_lines(struct dec *d, yajl_val obj, uint16_t schema, struct event *ev)
{
    yajl_val a = field(obj, "lines");
    if (!a || !YAJL_IS_ARRAY(a) || a->u.array.len == 0 || a->u.array.len > STATE_LINES_MAX) {
        dec_fail(d, "missing or malformed array", "lines");
        return;
    }
    ev->nlines = a->u.array.len;
    for (size_t i = 0; i < ev->nlines; i++) {
        yajl_val l = a->u.array.values[i];
        struct ev_line *out = &ev->lines[i];
        get_str(d, l, "item_id", out->item_id, sizeof out->item_id, NULL);
        out->quantity = get_i64(d, l, "quantity");
        if (schema >= 2) {
            get_str(d, l, "name", out->name, sizeof out->name, NULL);
            get_str(d, l, "category", out->category, sizeof out->category, NULL);
            out->price = get_i64(d, l, "price_cents");
        } else {
            /* Upcast by the applier from the item. The lines array is reused across
             * decodes (event_clear leaves it), so clear what schema 1 does not carry. */
            out->name[0] = '\0';
            out->category[0] = '\0';
            out->price = -1;
        }
    }
}

static void decode_data(struct dec *d, yajl_val o, struct event *ev)
{
    int has;
    switch (ev->type) {
    case EV_USER_REGISTERED:
        get_str(d, o, "user_id", ev->id, sizeof ev->id, NULL);
        get_str(d, o, "name", ev->name, sizeof ev->name, NULL);
        get_str(d, o, "email", ev->email, sizeof ev->email, &ev->has_email);
        break;
    case EV_FUNDS_DEPOSITED:
        get_str(d, o, "user_id", ev->id, sizeof ev->id, NULL);
        ev->amount = get_i64(d, o, "amount_cents");
        ev->balance = get_i64(d, o, "balance_cents");
        break;
    case EV_ITEM_ADDED:
        get_str(d, o, "item_id", ev->id, sizeof ev->id, NULL);
        get_str(d, o, "name", ev->name, sizeof ev->name, NULL);
        get_str(d, o, "category", ev->category, sizeof ev->category, NULL);
        ev->price = get_i64(d, o, "price_cents");
        break;
    case EV_ITEM_RESTOCKED:
        get_str(d, o, "item_id", ev->id, sizeof ev->id, NULL);
        ev->quantity = get_i64(d, o, "quantity");
        ev->available = get_i64(d, o, "available");
        break;
    case EV_ORDER_CREATED:
        get_str(d, o, "order_id", ev->id, sizeof ev->id, NULL);
        get_str(d, o, "user_id", ev->user_id, sizeof ev->user_id, NULL);
        decode_lines(d, o, ev->schema, ev);
        ev->amount = get_i64(d, o, "amount_cents");
        break;
    case EV_PAYMENT_PROCESSED:
        get_str(d, o, "order_id", ev->id, sizeof ev->id, NULL);
        get_str(d, o, "user_id", ev->user_id, sizeof ev->user_id, NULL);
        ev->amount = get_i64(d, o, "amount_cents");
        ev->balance = get_i64(d, o, "balance_cents");
        break;
    case EV_ORDER_SHIPPED:
    case EV_ORDER_DELIVERED:
        get_str(d, o, "order_id", ev->id, sizeof ev->id, NULL);
        break;
    case EV_ORDER_CANCELLED: {
        char prev[16];
        get_str(d, o, "order_id", ev->id, sizeof ev->id, NULL);
        get_str(d, o, "user_id", ev->user_id, sizeof ev->user_id, NULL);
        get_str(d, o, "reason", ev->reason, sizeof ev->reason, &ev->has_reason);
        ev->refunded = get_i64(d, o, "refunded_cents");
        get_str(d, o, "previous_status", prev, sizeof prev, &has);
        if (!d->failed && (!has || order_status_parse(prev, &ev->previous_status) < 0))
            dec_fail(d, "unknown status in", "previous_status");
        break;
    }
    case EV_TYPE_COUNT:
        break;
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static void decode_meta(struct dec *d, yajl_val o, struct event *ev)
{
    yajl_val k = field(o, "idempotency_key");
    if (!k)
        return;
    char hex[2 * EV_FINGERPRINT_LEN + 1];
    get_str(d, o, "idempotency_key", ev->idem_key, sizeof ev->idem_key, NULL);
    get_str(d, o, "request", hex, sizeof hex, NULL);
    if (d->failed)
        return;
    for (int i = 0; i < EV_FINGERPRINT_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            dec_fail(d, "malformed fingerprint in", "request");
            return;
        }
        ev->fingerprint[i] = (unsigned char)(hi << 4 | lo);
    }
    ev->has_idem = 1;
}

/* yajl_tree needs NUL-terminated text. */
static yajl_val parse_json(const char *p, size_t n)
{
    char *text = xmalloc(n + 1);
    memcpy(text, p, n);
    text[n] = '\0';
    yajl_val v = yajl_tree_parse(text, NULL, 0);
    free(text);
    return v;
}

int event_decode(const struct log_record *rec, struct event *ev, char *err, size_t errlen)
{
    struct dec d = { err, errlen, 0 };
    event_clear(ev);
    int t = vocab_event_find(rec->type, rec->type_len);
    if (t < 0) {
        snprintf(err, errlen, "unknown event type '%.*s'",
                 (int)(rec->type_len > 64 ? 64 : rec->type_len), rec->type);
        return EVENT_UNKNOWN_TYPE;
    }
    ev->type = (enum ev_type)t;
    ev->schema = rec->schema_version;
    const char *name = vocab_event_name(ev->type);
    if (ev->schema < VOCAB_SCHEMA_MIN || ev->schema > vocab_event_schema(ev->type)) {
        snprintf(err, errlen, "unsupported schema %u of %s", ev->schema, name);
        return -1;
    }
    ev->position = rec->position;
    ev->version = rec->stream_version;
    ev->at_ms = rec->timestamp_ms;
    yajl_val data = parse_json(rec->data, rec->data_len);
    yajl_val meta = rec->meta_len ? parse_json(rec->meta, rec->meta_len) : NULL;
    if (!data || !YAJL_IS_OBJECT(data) || (rec->meta_len && (!meta || !YAJL_IS_OBJECT(meta)))) {
        dec_fail(&d, "data or meta is not a JSON object in", name);
    } else {
        decode_data(&d, data, ev);
        if (meta)
            decode_meta(&d, meta, ev);
    }
    yajl_tree_free(data);
    yajl_tree_free(meta);
    return d.failed ? -1 : 0;
}

/* --- the command's answer ---------------------------------------------------------- */

void event_response(const struct event *ev, int *status, struct sbuf *o)
{
    static const char *const id_key[EV_TYPE_COUNT] = {
        [EV_USER_REGISTERED] = "user_id", [EV_FUNDS_DEPOSITED] = "user_id",
        [EV_ITEM_ADDED] = "item_id", [EV_ITEM_RESTOCKED] = "item_id",
        [EV_ORDER_CREATED] = "order_id", [EV_PAYMENT_PROCESSED] = "order_id",
        [EV_ORDER_SHIPPED] = "order_id", [EV_ORDER_DELIVERED] = "order_id",
        [EV_ORDER_CANCELLED] = "order_id",
    };
    static const int order_status_after[EV_TYPE_COUNT] = {
        [EV_ORDER_CREATED] = ORDER_CREATED, [EV_PAYMENT_PROCESSED] = ORDER_PAID,
        [EV_ORDER_SHIPPED] = ORDER_SHIPPED, [EV_ORDER_DELIVERED] = ORDER_DELIVERED,
        [EV_ORDER_CANCELLED] = ORDER_CANCELLED,
    };
    int creates = ev->type == EV_USER_REGISTERED || ev->type == EV_ITEM_ADDED ||
                  ev->type == EV_ORDER_CREATED;
    *status = creates ? 201 : 200;
    sbuf_putc(o, '{');
    put_str(o, id_key[ev->type], ev->id);
    if (order_status_after[ev->type])
        put_str(o, "status", order_status_name(order_status_after[ev->type]));
    if (ev->type == EV_FUNDS_DEPOSITED)
        put_i64(o, "balance_cents", ev->balance);
    if (ev->type == EV_ITEM_RESTOCKED)
        put_i64(o, "available", ev->available);
    if (ev->type == EV_ORDER_CREATED)
        put_i64(o, "amount_cents", ev->amount);
    sbuf_json_key(o, "version");
    sbuf_json_u64(o, ev->version);
    sbuf_json_key(o, "position");
    sbuf_json_u64(o, ev->position);
    sbuf_putc(o, '}');
}
