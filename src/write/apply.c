#include <config.h>

#include "write/apply.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/eflog.h"
#include "util/xalloc.h"

/* Scratch state for one application: big structs live on the heap, not the stack. */
struct applier {
    struct wm *wm;
    MDB_txn *txn;
    const struct event *ev;
    char *err;
    size_t errlen;
    struct user_state user;
    struct item_state item;
    struct order_state order;
};

/* Records why the event cannot be applied; returns WM_EAPPLY. */
__attribute__((format(printf, 2, 3)))
static int broken(struct applier *a, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(a->err, a->errlen, "%s at position %" PRIu64 ": ",
                     vocab_event_name(a->ev->type), a->ev->position);
    if (n > 0 && (size_t)n < a->errlen) {
        va_start(ap, fmt);
        vsnprintf(a->err + n, a->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return WM_EAPPLY;
}

/* Loads into a->user/item/order; a missing one is WM_EAPPLY. */
static int load_user(struct applier *a, const char *id)
{
    int rc = wm_get_user(a->wm, a->txn, id, &a->user);
    return rc == 0 ? broken(a, "user '%s' does not exist", id) : rc < 0 ? rc : 0;
}

static int load_item(struct applier *a, const char *id)
{
    int rc = wm_get_item(a->wm, a->txn, id, &a->item);
    return rc == 0 ? broken(a, "item '%s' does not exist", id) : rc < 0 ? rc : 0;
}

static int load_order(struct applier *a)
{
    int rc = wm_get_order(a->wm, a->txn, a->ev->id, &a->order);
    if (rc == 0)
        return broken(a, "order '%s' does not exist", a->ev->id);
    if (rc < 0)
        return rc;
    if (a->ev->version != a->order.version + 1)
        return broken(a, "stream version %" PRIu64 " after %" PRIu64, a->ev->version,
                      a->order.version);
    return 0;
}

/* Moves quantities of every line of a->order between an item's counters: each delta is
 * added (so -q/+q moves q). */
static int move_stock(struct applier *a, int d_available, int d_reserved, int d_sold)
{
    for (size_t i = 0; i < a->order.nlines; i++) {
        const struct order_line_state *l = &a->order.lines[i];
        int rc = load_item(a, l->item_id);
        if (rc)
            return rc;
        /* quantity > 0 (apply_order_created checks it), so d * quantity is exact. */
        if (__builtin_add_overflow(a->item.available, d_available * l->quantity, &a->item.available) ||
            __builtin_add_overflow(a->item.reserved, d_reserved * l->quantity, &a->item.reserved) ||
            __builtin_add_overflow(a->item.sold, d_sold * l->quantity, &a->item.sold))
            return broken(a, "stock of item '%s' would overflow", l->item_id);
        if (a->item.available < 0 || a->item.reserved < 0 || a->item.sold < 0)
            return broken(a, "stock of item '%s' would go negative", l->item_id);
        if ((rc = wm_put_item(a->wm, a->txn, l->item_id, &a->item)) != 0)
            return rc;
    }
    return 0;
}

static int apply_user_registered(struct applier *a)
{
    const struct event *ev = a->ev;
    int rc = wm_get_user(a->wm, a->txn, ev->id, &a->user);
    if (rc < 0)
        return rc;
    if (rc == 1 || ev->version != 1)
        return broken(a, "user '%s' already exists or version %" PRIu64 " is not 1", ev->id,
                      ev->version);
    struct user_state u = { 0, 1 };
    return wm_put_user(a->wm, a->txn, ev->id, &u);
}

/* Adds a deposit to the model's deposit total. A log of an older build may hold more than
 * INT64_MAX in deposits (nothing refused them then): the total saturates, so that such a
 * log still builds a model, and every further deposit is refused by the rules. */
static int add_deposited(struct applier *a, int64_t amount)
{
    int64_t total;
    int rc = wm_get_deposited(a->wm, a->txn, &total);
    if (rc < 0)
        return rc;
    if (__builtin_add_overflow(total, amount, &total))
        total = INT64_MAX;
    return wm_set_deposited(a->wm, a->txn, total);
}

static int apply_funds_deposited(struct applier *a)
{
    const struct event *ev = a->ev;
    int rc = load_user(a, ev->id);
    if (rc)
        return rc;
    int64_t after;
    if (ev->version != a->user.version + 1 || ev->amount <= 0 ||
        __builtin_add_overflow(a->user.balance, ev->amount, &after) || after != ev->balance)
        return broken(a, "does not follow user '%s' (version %" PRIu64 ", balance %" PRId64 ")",
                      ev->id, a->user.version, a->user.balance);
    a->user.balance = after;
    a->user.version = ev->version;
    rc = wm_put_user(a->wm, a->txn, ev->id, &a->user);
    return rc ? rc : add_deposited(a, ev->amount);
}

static int apply_item_added(struct applier *a)
{
    const struct event *ev = a->ev;
    int rc = wm_get_item(a->wm, a->txn, ev->id, &a->item);
    if (rc < 0)
        return rc;
    if (rc == 1 || ev->version != 1 || ev->price <= 0)
        return broken(a, "item '%s' already exists, or bad version or price", ev->id);
    memset(&a->item, 0, sizeof a->item);
    memcpy(a->item.name, ev->name, sizeof a->item.name);
    memcpy(a->item.category, ev->category, sizeof a->item.category);
    a->item.price = ev->price;
    a->item.version = 1;
    return wm_put_item(a->wm, a->txn, ev->id, &a->item);
}

static int apply_item_restocked(struct applier *a)
{
    const struct event *ev = a->ev;
    int rc = load_item(a, ev->id);
    if (rc)
        return rc;
    int64_t after;
    if (ev->version != a->item.version + 1 || ev->quantity <= 0 ||
        __builtin_add_overflow(a->item.available, ev->quantity, &after) || after != ev->available)
        return broken(a, "does not follow item '%s' (version %" PRIu64 ", available %" PRId64 ")",
                      ev->id, a->item.version, a->item.available);
    a->item.available = after;
    a->item.version = ev->version;
    return wm_put_item(a->wm, a->txn, ev->id, &a->item);
}

/* Reserves the stock of every line; schema-1 lines take their price from the item. */
static int apply_order_created(struct applier *a)
{
    const struct event *ev = a->ev;
    int rc = wm_get_order(a->wm, a->txn, ev->id, &a->order);
    if (rc < 0)
        return rc;
    if (rc == 1 || ev->version != 1 || ev->nlines < 1 || ev->amount < 0)
        return broken(a, "order '%s' already exists, or bad version, lines or amount", ev->id);
    if ((rc = load_user(a, ev->user_id)) != 0)
        return rc;
    memset(&a->order, 0, sizeof a->order);
    memcpy(a->order.user_id, ev->user_id, sizeof a->order.user_id);
    a->order.status = ORDER_CREATED;
    a->order.amount = ev->amount;
    a->order.version = 1;
    a->order.nlines = ev->nlines;
    for (size_t i = 0; i < ev->nlines; i++) {
        struct order_line_state *l = &a->order.lines[i];
        memcpy(l->item_id, ev->lines[i].item_id, sizeof l->item_id);
        l->quantity = ev->lines[i].quantity;
        if ((rc = load_item(a, l->item_id)) != 0)
            return rc;
        l->price = ev->lines[i].price >= 0 ? ev->lines[i].price : a->item.price;
        if (l->quantity <= 0)
            return broken(a, "line %zu has quantity %" PRId64, i, l->quantity);
    }
    if ((rc = move_stock(a, -1, +1, 0)) != 0)
        return rc;
    return wm_put_order(a->wm, a->txn, ev->id, &a->order);
}

static int apply_payment_processed(struct applier *a)
{
    const struct event *ev = a->ev;
    int rc = load_order(a);
    if (rc == 0)
        rc = load_user(a, a->order.user_id);
    if (rc)
        return rc;
    int64_t after;
    if (a->order.status != ORDER_CREATED || ev->amount != a->order.amount ||
        __builtin_sub_overflow(a->user.balance, a->order.amount, &after) ||
        after != ev->balance || ev->balance < 0)
        return broken(a, "order '%s' is %s, amount %" PRId64 ", balance %" PRId64, ev->id,
                      order_status_name(a->order.status), a->order.amount, a->user.balance);
    a->user.balance = ev->balance;
    a->order.status = ORDER_PAID;
    a->order.version = ev->version;
    if ((rc = wm_put_user(a->wm, a->txn, a->order.user_id, &a->user)) != 0)
        return rc;
    return wm_put_order(a->wm, a->txn, ev->id, &a->order);
}

static int apply_status_change(struct applier *a, enum order_status from, enum order_status to)
{
    int rc = load_order(a);
    if (rc)
        return rc;
    if (a->order.status != from)
        return broken(a, "order '%s' is %s, not %s", a->ev->id,
                      order_status_name(a->order.status), order_status_name(from));
    if (to == ORDER_SHIPPED && (rc = move_stock(a, 0, -1, +1)) != 0)
        return rc;
    a->order.status = to;
    a->order.version = a->ev->version;
    return wm_put_order(a->wm, a->txn, a->ev->id, &a->order);
}

static int apply_order_shipped(struct applier *a)
{
    return apply_status_change(a, ORDER_PAID, ORDER_SHIPPED);
}

static int apply_order_delivered(struct applier *a)
{
    return apply_status_change(a, ORDER_SHIPPED, ORDER_DELIVERED);
}

static int apply_order_cancelled(struct applier *a)
{
    const struct event *ev = a->ev;
    int rc = load_order(a);
    if (rc)
        return rc;
    enum order_status st = a->order.status;
    int64_t refund = st == ORDER_PAID ? a->order.amount : 0;
    if ((st != ORDER_CREATED && st != ORDER_PAID) || ev->refunded != refund)
        return broken(a, "order '%s' is %s, refund %" PRId64, ev->id, order_status_name(st),
                      ev->refunded);
    if (refund) {
        if ((rc = load_user(a, a->order.user_id)) != 0)
            return rc;
        if (__builtin_add_overflow(a->user.balance, refund, &a->user.balance))
            return broken(a, "refund overflows the balance of '%s'", a->order.user_id);
        if ((rc = wm_put_user(a->wm, a->txn, a->order.user_id, &a->user)) != 0)
            return rc;
    }
    if ((rc = move_stock(a, +1, -1, 0)) != 0)
        return rc;
    a->order.status = ORDER_CANCELLED;
    a->order.version = ev->version;
    return wm_put_order(a->wm, a->txn, ev->id, &a->order);
}

typedef int (*apply_fn)(struct applier *a);

static const apply_fn appliers[EV_TYPE_COUNT] = {
    [EV_USER_REGISTERED] = apply_user_registered,
    [EV_FUNDS_DEPOSITED] = apply_funds_deposited,
    [EV_ITEM_ADDED] = apply_item_added,
    [EV_ITEM_RESTOCKED] = apply_item_restocked,
    [EV_ORDER_CREATED] = apply_order_created,
    [EV_PAYMENT_PROCESSED] = apply_payment_processed,
    [EV_ORDER_SHIPPED] = apply_order_shipped,
    [EV_ORDER_DELIVERED] = apply_order_delivered,
    [EV_ORDER_CANCELLED] = apply_order_cancelled,
};

/* Remembers the answer of an event that carried an Idempotency-Key. */
static int remember_answer(struct applier *a)
{
    const struct event *ev = a->ev;
    struct wm_idem *e = xcalloc(1, sizeof *e);
    struct sbuf body = SBUF_INIT;
    event_response(ev, &e->status, &body);
    memcpy(e->fingerprint, ev->fingerprint, sizeof e->fingerprint);
    e->position = ev->position;
    e->version = ev->version;
    e->at_ms = ev->at_ms;
    int rc = 0;
    if (body.len > WM_BODY_MAX) {
        rc = broken(a, "answer of %zu bytes is too long to remember", body.len);
    } else {
        memcpy(e->body, body.data, body.len);
        e->body_len = body.len;
        rc = wm_put_idem(a->wm, a->txn, ev->idem_key, e);
    }
    sbuf_free(&body);
    free(e);
    return rc;
}

int wm_apply_event(struct wm *wm, MDB_txn *txn, const struct event *ev, char *err,
                   size_t errlen)
{
    struct applier *a = xmalloc(sizeof *a);
    a->wm = wm;
    a->txn = txn;
    a->ev = ev;
    a->err = err;
    a->errlen = errlen;
    err[0] = '\0';
    uint64_t applied;
    int rc = wm_get_applied(wm, txn, &applied);
    if (rc == 0 && ev->position != applied + 1)
        rc = broken(a, "the model has applied up to %" PRIu64, applied);
    if (rc == 0 && applied == 0)
        rc = wm_set_deposited(wm, txn, 0); /* marks a model of this build (model.h) */
    if (rc == 0)
        rc = appliers[ev->type](a);
    if (rc == 0 && ev->has_idem)
        rc = remember_answer(a);
    if (rc == 0)
        rc = wm_set_applied(wm, txn, ev->position);
    if (rc && !err[0])
        snprintf(err, errlen, "%s", wm_strerror(rc));
    free(a);
    return rc;
}

/* A record of a type the shop does not know (an operator's or a newer component's event)
 * cannot change what the shop rules see: the model only records that it was passed, so the
 * positions stay dense. A known type in a schema this build cannot read is an error. */
static int skip_foreign(struct wm *wm, MDB_txn *txn, const struct log_record *rec, char *err,
                        size_t errlen)
{
    uint64_t applied;
    int rc = wm_get_applied(wm, txn, &applied);
    if (rc)
        return rc;
    if (rec->position != applied + 1) {
        snprintf(err, errlen, "record at position %" PRIu64 " after %" PRIu64, rec->position,
                 applied);
        return WM_EAPPLY;
    }
    EFLOG_WARN("write model skips a record position=%" PRIu64 " reason=\"%s\"", rec->position, err);
    if (applied == 0 && (rc = wm_set_deposited(wm, txn, 0)) != 0)
        return rc;
    return wm_set_applied(wm, txn, rec->position);
}

int wm_apply_record(struct wm *wm, MDB_txn *txn, const struct log_record *rec, char *err,
                    size_t errlen)
{
    struct event *ev = xmalloc(sizeof *ev);
    int rc = event_decode(rec, ev, err, errlen);
    if (rc == EVENT_UNKNOWN_TYPE)
        rc = skip_foreign(wm, txn, rec, err, errlen);
    else if (rc < 0)
        rc = WM_EAPPLY;
    else
        rc = wm_apply_event(wm, txn, ev, err, errlen);
    free(ev);
    return rc;
}
