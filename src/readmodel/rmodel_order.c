#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "log/record.h"
#include "readmodel/rmodel.h"
#include "readmodel/rmodel_internal.h"
#include "util/xalloc.h"

int rmodel_load_user(struct rmodel_txn *t, struct rmodel_str id, struct rmodel_user *u)
{
    const void *v;
    size_t n;
    int rc = rmodel_get_ref(t, RMODEL_DB_USERS, id.p, id.n, &t->ubuf, &v, &n);
    return rc ? rc : rmodel_user_decode(v, n, u);
}

int rmodel_load_item(struct rmodel_txn *t, struct rmodel_str id, struct rmodel_item *it)
{
    const void *v;
    size_t n;
    int rc = rmodel_get_ref(t, RMODEL_DB_ITEMS, id.p, id.n, &t->ibuf, &v, &n);
    return rc ? rc : rmodel_item_decode(v, n, it);
}

int rmodel_load_order(struct rmodel_txn *t, struct rmodel_str id, struct rmodel_order *o)
{
    const void *v;
    size_t n;
    int rc = rmodel_get_ref(t, RMODEL_DB_ORDERS, id.p, id.n, &t->obuf, &v, &n);
    return rc ? rc : rmodel_order_decode(v, n, o);
}

/* Upcasts OrderCreated v1 lines: name, category and price come from the item as the read
 * model has it. The text is gathered in t->upc first and the pointers set afterwards,
 * because appending may move the buffer. */
static int upcast_lines(struct rmodel_txn *t, struct rmodel_line *lines, size_t n)
{
    size_t *off = xmalloc(n * 2 * sizeof *off);
    sbuf_reset(&t->upc);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct rmodel_item it;
        rc = rmodel_load_item(t, lines[i].item, &it);
        if (rc == RMODEL_ENOTFOUND) {
            sbuf_printf(&t->reason, "OrderCreated v1 upcast: unknown item %.*s",
                        (int)lines[i].item.n, lines[i].item.p);
            rc = 1;
        }
        if (rc)
            goto out;
        off[2 * i] = t->upc.len;
        sbuf_append(&t->upc, it.name.p, it.name.n);
        off[2 * i + 1] = t->upc.len;
        sbuf_append(&t->upc, it.category.p, it.category.n);
        lines[i].name.n = it.name.n;
        lines[i].category.n = it.category.n;
        lines[i].price = it.price;
    }
    for (size_t i = 0; i < n; i++) {
        lines[i].name.p = t->upc.data + off[2 * i];
        lines[i].category.p = t->upc.data + off[2 * i + 1];
    }
out:
    free(off);
    return rc;
}

static int apply_created(struct rmodel_txn *t, struct rmodel_order *o, const struct log_record *rec,
                         const struct rmodel_ev *ev)
{
    if (o->status != 0) {
        sbuf_printf(&t->reason, "order %.*s already exists", (int)ev->order_id.n, ev->order_id.p);
        return 1;
    }
    struct rmodel_line *lines = rmodel_order_lines(o, ev->nlines);
    memcpy(lines, ev->lines, ev->nlines * sizeof *lines);
    o->nlines = ev->nlines;
    if (ev->upcast) {
        int rc = upcast_lines(t, lines, ev->nlines);
        if (rc)
            return rc; /* the caller clears o */
    }
    o->status = ORDER_CREATED;
    o->user = ev->user_id;
    o->amount = ev->amount;
    o->created_at = rec->timestamp_ms;
    o->created_position = rec->position;
    return 0;
}

/* The order lifecycle of API.md section 4: which status each event requires (as a bit
 * mask of statuses) and the status it leads to. */
static const struct {
    unsigned from;
    int to;
} transitions[EV_TYPE_COUNT] = {
    [EV_PAYMENT_PROCESSED] = { 1u << ORDER_CREATED, ORDER_PAID },
    [EV_ORDER_SHIPPED] = { 1u << ORDER_PAID, ORDER_SHIPPED },
    [EV_ORDER_DELIVERED] = { 1u << ORDER_SHIPPED, ORDER_DELIVERED },
    [EV_ORDER_CANCELLED] = { (1u << ORDER_CREATED) | (1u << ORDER_PAID), ORDER_CANCELLED },
};

int rmodel_order_apply(struct rmodel_txn *t, struct rmodel_order *o, const struct log_record *rec,
                   const struct rmodel_ev *ev)
{
    if (ev->type == EV_ORDER_CREATED) {
        int rc = apply_created(t, o, rec, ev);
        if (rc)
            return rc;
    } else if (transitions[ev->type].to != 0) {
        if (o->status == 0 || !(transitions[ev->type].from & (1u << o->status))) {
            sbuf_printf(&t->reason, "%.*s on order %.*s in status %s", (int)rec->type_len,
                        rec->type, (int)ev->order_id.n, ev->order_id.p,
                        o->status ? vocab_status_name(o->status) : "(none)");
            return 1;
        }
        o->status = transitions[ev->type].to;
    } else {
        sbuf_printf(&t->reason, "%.*s is not an order event", (int)rec->type_len, rec->type);
        return 1;
    }
    o->version = rec->stream_version;
    o->updated_at = rec->timestamp_ms;
    return 0;
}
