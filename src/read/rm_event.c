#include "config.h"

#include "read/rm_event.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

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

struct ev_type_desc {
    const char *name;
    int min_schema, max_schema; /* max_schema is the current one */
    const char *projection;
    unsigned required;
};

/* Indexed by enum rm_ev_type. Optional fields (email, reason, previous_status) are not
 * used by any projection, so they are not checked either. Written only by the test hook
 * rm_ev_set_max_schema(). */
static struct ev_type_desc types[RM_EV_COUNT] = {
    [RM_EV_USER_REGISTERED] = { "UserRegistered", 1, 1, "users", F_USER_ID | F_NAME },
    [RM_EV_FUNDS_DEPOSITED] = { "FundsDeposited", 1, 1, "users", F_USER_ID | F_AMOUNT | F_BALANCE },
    [RM_EV_ITEM_ADDED] = { "ItemAdded", 1, 1, "items", F_ITEM_ID | F_NAME | F_CATEGORY | F_PRICE },
    [RM_EV_ITEM_RESTOCKED] = { "ItemRestocked", 1, 1, "items", F_ITEM_ID | F_QUANTITY | F_AVAILABLE },
    [RM_EV_ORDER_CREATED] = { "OrderCreated", 1, 2, "orders", F_ORDER_ID | F_USER_ID | F_LINES | F_AMOUNT },
    [RM_EV_PAYMENT_PROCESSED] = { "PaymentProcessed", 1, 1, "orders", F_ORDER_ID | F_USER_ID | F_AMOUNT },
    [RM_EV_ORDER_SHIPPED] = { "OrderShipped", 1, 1, "orders", F_ORDER_ID },
    [RM_EV_ORDER_DELIVERED] = { "OrderDelivered", 1, 1, "orders", F_ORDER_ID },
    [RM_EV_ORDER_CANCELLED] = { "OrderCancelled", 1, 1, "orders", F_ORDER_ID | F_USER_ID | F_REFUNDED },
};

int rm_ev_current_schema(enum rm_ev_type type) { return types[type].max_schema; }

int rm_ev_set_max_schema(enum rm_ev_type type, int max)
{
    int old = types[type].max_schema;
    types[type].max_schema = max;
    return old;
}

static int find_type(const char *name, size_t n)
{
    for (int i = 0; i < RM_EV_COUNT; i++)
        if (strlen(types[i].name) == n && memcmp(types[i].name, name, n) == 0)
            return i;
    return -1;
}

static int get_str(yajl_val v, struct rm_str *out)
{
    if (!YAJL_IS_STRING(v))
        return -1;
    out->p = v->u.string;
    out->n = strlen(v->u.string);
    return out->n <= UINT16_MAX ? 0 : -1;
}

static int get_int(yajl_val v, int64_t *out)
{
    if (!YAJL_IS_INTEGER(v))
        return -1;
    *out = YAJL_GET_INTEGER(v);
    return 0;
}

/* Parses one order line. Schema 1 lines have only item_id and quantity (upcast later). */
static int parse_line(yajl_val v, int upcast, struct rm_line *l)
{
    if (!YAJL_IS_OBJECT(v))
        return -1;
    memset(l, 0, sizeof *l);
    unsigned seen = 0;
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        yajl_val x = v->u.object.values[i];
        int rc = 0;
        if (strcmp(k, "item_id") == 0)
            rc = get_str(x, &l->item), seen |= F_ITEM_ID;
        else if (strcmp(k, "quantity") == 0)
            rc = get_int(x, &l->quantity), seen |= F_QUANTITY;
        else if (!upcast && strcmp(k, "name") == 0)
            rc = get_str(x, &l->name), seen |= F_NAME;
        else if (!upcast && strcmp(k, "category") == 0)
            rc = get_str(x, &l->category), seen |= F_CATEGORY;
        else if (!upcast && strcmp(k, "price_cents") == 0)
            rc = get_int(x, &l->price), seen |= F_PRICE;
        if (rc)
            return -1;
    }
    unsigned need = F_ITEM_ID | F_QUANTITY | (upcast ? 0 : F_NAME | F_CATEGORY | F_PRICE);
    return (seen & need) == need && l->quantity > 0 && l->item.n > 0 ? 0 : -1;
}

static int parse_lines(struct rm_ev *ev, yajl_val v)
{
    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0 || v->u.array.len > RM_MAX_LINES)
        return -1;
    size_t n = v->u.array.len;
    if (n > ev->lines_cap) {
        ev->lines = xrealloc(ev->lines, n * sizeof *ev->lines);
        ev->lines_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        if (parse_line(v->u.array.values[i], ev->upcast, &ev->lines[i]))
            return -1;
    ev->nlines = n;
    return 0;
}

/* Stores one top-level field; returns its bit, 0 for a field no fold uses, -1 if mistyped. */
static int parse_field(struct rm_ev *ev, const char *k, yajl_val x)
{
    static const struct {
        const char *key;
        unsigned bit;
        size_t off; /* offsetof the rm_str or int64_t */
        int is_str;
    } fields[] = {
        { "order_id", F_ORDER_ID, offsetof(struct rm_ev, order_id), 1 },
        { "user_id", F_USER_ID, offsetof(struct rm_ev, user_id), 1 },
        { "item_id", F_ITEM_ID, offsetof(struct rm_ev, item_id), 1 },
        { "name", F_NAME, offsetof(struct rm_ev, name), 1 },
        { "category", F_CATEGORY, offsetof(struct rm_ev, category), 1 },
        { "amount_cents", F_AMOUNT, offsetof(struct rm_ev, amount), 0 },
        { "balance_cents", F_BALANCE, offsetof(struct rm_ev, balance), 0 },
        { "price_cents", F_PRICE, offsetof(struct rm_ev, price), 0 },
        { "quantity", F_QUANTITY, offsetof(struct rm_ev, quantity), 0 },
        { "available", F_AVAILABLE, offsetof(struct rm_ev, available), 0 },
        { "refunded_cents", F_REFUNDED, offsetof(struct rm_ev, refunded), 0 },
    };
    if (strcmp(k, "lines") == 0)
        return parse_lines(ev, x) ? -1 : F_LINES;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(k, fields[i].key) != 0)
            continue;
        char *dst = (char *)ev + fields[i].off;
        int rc = fields[i].is_str ? get_str(x, (struct rm_str *)(void *)dst)
                                  : get_int(x, (int64_t *)(void *)dst);
        return rc ? -1 : (int)fields[i].bit;
    }
    return 0;
}

static void release(struct rm_ev *ev)
{
    yajl_tree_free(ev->tree);
    ev->tree = NULL;
}

int rm_ev_parse(struct rm_ev *ev, const struct log_record *rec, struct sbuf *scratch,
                struct sbuf *reason)
{
    release(ev);
    struct rm_line *lines = ev->lines;
    size_t cap = ev->lines_cap;
    memset(ev, 0, sizeof *ev);
    ev->lines = lines;
    ev->lines_cap = cap;
    sbuf_reset(reason);

    int t = find_type(rec->type, rec->type_len);
    if (t < 0) {
        sbuf_printf(reason, "unknown event type %.*s", (int)rec->type_len, rec->type);
        return 1;
    }
    const struct ev_type_desc *d = &types[t];
    ev->type = (enum rm_ev_type)t;
    ev->schema = rec->schema_version;
    ev->projection = d->projection;
    if (rec->schema_version < d->min_schema || rec->schema_version > d->max_schema) {
        sbuf_printf(reason, "unknown schema_version %u for %s", rec->schema_version, d->name);
        return 1;
    }
    ev->upcast = ev->type == RM_EV_ORDER_CREATED && rec->schema_version == 1;

    /* yajl_tree_parse wants a NUL-terminated text: sbuf keeps one after len. */
    sbuf_reset(scratch);
    sbuf_append(scratch, rec->data, rec->data_len);
    char err[128];
    yajl_val root = yajl_tree_parse(sbuf_str(scratch), err, sizeof err);
    ev->tree = root;
    if (!YAJL_IS_OBJECT(root)) {
        sbuf_printf(reason, "%s data is not a JSON object", d->name);
        return 1;
    }
    unsigned seen = 0;
    for (size_t i = 0; i < root->u.object.len; i++) {
        int bit = parse_field(ev, root->u.object.keys[i], root->u.object.values[i]);
        if (bit < 0) {
            sbuf_printf(reason, "%s field %s is invalid", d->name, root->u.object.keys[i]);
            return 1;
        }
        seen |= (unsigned)bit;
    }
    if ((seen & d->required) != d->required) {
        sbuf_printf(reason, "%s lacks a required field", d->name);
        return 1;
    }
    return 0;
}

void rm_ev_free(struct rm_ev *ev)
{
    release(ev);
    free(ev->lines);
    memset(ev, 0, sizeof *ev);
}
