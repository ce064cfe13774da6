#include <config.h>

#include "readmodel/rmodel_fold.h"

#include <assert.h>
#include <string.h>

#include "log/record.h"
#include "readmodel/rmodel_internal.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"

/* Every handler first checks everything that can make the event inapplicable (returning 1
 * with t->reason set, before any write), then writes. After its first write a handler only
 * fails for a store error (negative), which aborts the whole batch. So an event is applied
 * whole or not at all without nested transactions. */
typedef int (*fold_fn)(struct rmodel_txn *t, const struct log_record *rec, const struct rmodel_ev *ev);

static int put_user(struct rmodel_txn *t, struct rmodel_str id, const struct rmodel_user *u)
{
    sbuf_reset(&t->val);
    rmodel_user_encode(u, &t->val);
    return rmodel_put(t, RMODEL_DB_USERS, id.p, id.n, t->val.data, t->val.len);
}

static int put_item(struct rmodel_txn *t, struct rmodel_str id, const struct rmodel_item *it)
{
    sbuf_reset(&t->val);
    rmodel_item_encode(it, &t->val);
    return rmodel_put(t, RMODEL_DB_ITEMS, id.p, id.n, t->val.data, t->val.len);
}

static int put_order(struct rmodel_txn *t, struct rmodel_str id, const struct rmodel_order *o)
{
    sbuf_reset(&t->val);
    rmodel_order_encode(o, &t->val);
    return rmodel_put(t, RMODEL_DB_ORDERS, id.p, id.n, t->val.data, t->val.len);
}

/* Loads a record that must exist; a missing one becomes the dead-letter reason. */
static int need(int rc, struct rmodel_txn *t, const char *what, struct rmodel_str id)
{
    if (rc == RMODEL_ENOTFOUND) {
        sbuf_printf(&t->reason, "unknown %s %.*s", what, (int)id.n, id.p);
        return 1;
    }
    return rc;
}

static int absent(struct rmodel_txn *t, enum rmodel_dbi db, const char *what, struct rmodel_str id)
{
    const void *v;
    size_t n;
    int rc = rmodel_get_ref(t, db, id.p, id.n, &t->key, &v, &n);
    if (rc == 0) {
        sbuf_printf(&t->reason, "%s %.*s already exists", what, (int)id.n, id.p);
        return 1;
    }
    return rc == RMODEL_ENOTFOUND ? 0 : rc;
}

/* Checked arithmetic for every sum the folds keep (money and quantities): an event whose
 * sum would leave the 64-bit range is a dead letter, never a wrapped or undefined value.
 * The command side refuses such commands (doc/events.md, "Money"), so only a log written
 * by an older build, or by hand, can get here. Returns 0 with *out set, or 1 with the
 * reason. */
static int checked_add(struct rmodel_txn *t, const char *what, int64_t a, int64_t b, int64_t *out)
{
    if (!__builtin_add_overflow(a, b, out))
        return 0;
    sbuf_printf(&t->reason, "%s would overflow: %lld + %lld", what, (long long)a, (long long)b);
    return 1;
}

static int checked_sub(struct rmodel_txn *t, const char *what, int64_t a, int64_t b, int64_t *out)
{
    if (!__builtin_sub_overflow(a, b, out))
        return 0;
    sbuf_printf(&t->reason, "%s would overflow: %lld - %lld", what, (long long)a, (long long)b);
    return 1;
}

/* The summed quantity of an order's lines (each > 0: rmodel_ev_parse checks it). Every count
 * an order moves changes by at most this much, so checking a counter against it before
 * the first write covers lines that name the same item or category twice. */
static int order_quantity(struct rmodel_txn *t, const struct rmodel_order *o, int64_t *q)
{
    *q = 0;
    for (size_t i = 0; i < o->nlines; i++)
        if (checked_add(t, "the order's total quantity", *q, o->lines[i].quantity, q))
            return 1;
    return 0;
}

/* Before any write: every item of the order can take +-q on reserved and sold. */
static int items_can_move(struct rmodel_txn *t, const struct rmodel_order *o, int64_t q)
{
    for (size_t i = 0; i < o->nlines; i++) {
        struct rmodel_item it;
        int64_t x;
        int rc = need(rmodel_load_item(t, o->lines[i].item, &it), t, "item", o->lines[i].item);
        if (rc == 0 && (checked_add(t, "an item's reserved count", it.reserved, q, &x) ||
                        checked_sub(t, "an item's reserved count", it.reserved, q, &x) ||
                        checked_add(t, "an item's sold count", it.sold, q, &x)))
            rc = 1;
        if (rc)
            return rc;
    }
    return 0;
}

/* Adds deltas to an item's reserved and sold counts (the item was checked to exist and to
 * take them: items_can_move). */
static int item_move(struct rmodel_txn *t, struct rmodel_str id, int64_t reserved, int64_t sold)
{
    struct rmodel_item it;
    int rc = rmodel_load_item(t, id, &it);
    if (rc)
        return rc == RMODEL_ENOTFOUND ? RMODEL_EFORMAT : rc;
    if (__builtin_add_overflow(it.reserved, reserved, &it.reserved) ||
        __builtin_add_overflow(it.sold, sold, &it.sold))
        return RMODEL_EFORMAT; /* items_can_move said it could not happen */
    return put_item(t, id, &it);
}

/* Adds delta to the user's quantity in a category; a zero total is deleted, so the
 * preferred-category scan only meets categories of placed orders. */
static int user_cat_get(struct rmodel_txn *t, struct rmodel_str user, struct rmodel_str cat, int64_t *q)
{
    struct sbuf *k = &t->key;
    rmodel_key2(k, user.p, user.n, cat.p, cat.n);
    *q = 0;
    const void *v;
    size_t n;
    int rc = rmodel_get_ref(t, RMODEL_DB_USER_CAT, k->data, k->len, &t->json, &v, &n);
    if (rc == 0 && n == 8) {
        struct rmodel_reader r = { v, 8, 0 };
        *q = (int64_t)rmodel_read_u64(&r);
    } else if (rc != RMODEL_ENOTFOUND) {
        return rc ? rc : RMODEL_EFORMAT;
    }
    return 0;
}

/* Before any write: every category of the order's lines can take +-q for the user. */
static int cats_can_move(struct rmodel_txn *t, const struct rmodel_order *o, int64_t q)
{
    for (size_t i = 0; i < o->nlines; i++) {
        int64_t have, x;
        int rc = user_cat_get(t, o->user, o->lines[i].category, &have);
        if (rc)
            return rc;
        if (checked_add(t, "a category's quantity", have, q, &x) ||
            checked_sub(t, "a category's quantity", have, q, &x))
            return 1;
    }
    return 0;
}

static int user_cat_add(struct rmodel_txn *t, struct rmodel_str user, struct rmodel_str cat, int64_t delta)
{
    struct sbuf *k = &t->key;
    int64_t q;
    int rc = user_cat_get(t, user, cat, &q);
    if (rc)
        return rc;
    if (__builtin_add_overflow(q, delta, &q))
        return RMODEL_EFORMAT; /* cats_can_move said it could not happen */
    if (q == 0)
        return rmodel_del(t, RMODEL_DB_USER_CAT, k->data, k->len);
    sbuf_reset(&t->val);
    rmodel_put_u64(&t->val, (uint64_t)q);
    return rmodel_put(t, RMODEL_DB_USER_CAT, k->data, k->len, t->val.data, t->val.len);
}

/* Loads the counters of the UTC day of the event time (zero for a new day). */
static int daily_get(struct rmodel_txn *t, int64_t at, struct rmodel_daily *d)
{
    /* Events come in time order, so consecutive ones share a day: format it once. */
    const int64_t day_ms = 86400000;
    int64_t start = at / day_ms * day_ms;
    if (start > at)
        start -= day_ms; /* floor for times before 1970 */
    if (t->day_key[0] == '\0' || start != t->day_start) {
        ef_format_day(at, t->day_key);
        t->day_start = start;
    }
    *d = (struct rmodel_daily){ 0, 0, 0, 0 };
    const void *v;
    size_t n;
    int rc = rmodel_get_ref(t, RMODEL_DB_DAILY, t->day_key, 10, &t->key, &v, &n);
    if (rc == 0)
        return rmodel_daily_decode(v, n, d);
    return rc == RMODEL_ENOTFOUND ? 0 : rc;
}

/* Stores the counters of the day daily_get loaded last. */
static int daily_put(struct rmodel_txn *t, const struct rmodel_daily *d)
{
    sbuf_reset(&t->val);
    rmodel_daily_encode(d, &t->val);
    return rmodel_put(t, RMODEL_DB_DAILY, t->day_key, 10, t->val.data, t->val.len);
}

static int fold_user_registered(struct rmodel_txn *t, const struct log_record *rec, const struct rmodel_ev *ev)
{
    int rc = absent(t, RMODEL_DB_USERS, "user", ev->user_id);
    if (rc)
        return rc;
    struct rmodel_user u = { 1, ev->name, 0, 0, 0, 0, RMODEL_NO_TIME };
    return put_user(t, ev->user_id, &u);
}

static int fold_funds_deposited(struct rmodel_txn *t, const struct log_record *rec, const struct rmodel_ev *ev)
{
    struct rmodel_user u;
    int rc = need(rmodel_load_user(t, ev->user_id, &u), t, "user", ev->user_id);
    if (rc)
        return rc;
    if (checked_add(t, "the wallet balance", u.balance, ev->amount, &u.balance))
        return 1;
    return put_user(t, ev->user_id, &u);
}

static int fold_item_added(struct rmodel_txn *t, const struct log_record *rec, const struct rmodel_ev *ev)
{
    int rc = absent(t, RMODEL_DB_ITEMS, "item", ev->item_id);
    if (rc)
        return rc;
    struct rmodel_item it = { 1, ev->name, ev->category, ev->price, 0, 0, 0 };
    return put_item(t, ev->item_id, &it);
}

static int fold_item_restocked(struct rmodel_txn *t, const struct log_record *rec, const struct rmodel_ev *ev)
{
    struct rmodel_item it;
    int rc = need(rmodel_load_item(t, ev->item_id, &it), t, "item", ev->item_id);
    if (rc)
        return rc;
    if (checked_add(t, "the item's restocked count", it.restocked, ev->quantity, &it.restocked))
        return 1;
    return put_item(t, ev->item_id, &it);
}

/* Checks the order's own event against the stored order and the order's user: the common
 * first half of every order handler. o is loaded (or zero for OrderCreated) and applied; u
 * is the order's user. Both are decoded in place from their rows (rmodel_get_ref), so each
 * handler writes the user and the order after everything else it takes from them. */
static int order_check(struct rmodel_txn *t, const struct log_record *rec, const struct rmodel_ev *ev,
                       struct rmodel_order *o, int *prev_status, struct rmodel_user *u)
{
    int rc = rmodel_load_order(t, ev->order_id, o);
    if (rc == RMODEL_ENOTFOUND && ev->type != EV_ORDER_CREATED)
        return need(rc, t, "order", ev->order_id);
    if (rc && rc != RMODEL_ENOTFOUND)
        return rc;
    *prev_status = o->status;
    rc = rmodel_order_apply(t, o, rec, ev);
    if (rc)
        return rc;
    return need(rmodel_load_user(t, o->user, u), t, "user", o->user);
}

static int fold_order_created(struct rmodel_txn *t, const struct log_record *rec, const struct rmodel_ev *ev)
{
    struct rmodel_order o = { 0 };
    struct rmodel_user u;
    int prev;
    int64_t q;
    struct rmodel_daily d;
    int rc = order_check(t, rec, ev, &o, &prev, &u);
    if (rc == 0)
        rc = order_quantity(t, &o, &q);
    if (rc == 0)
        rc = items_can_move(t, &o, q);
    if (rc == 0)
        rc = cats_can_move(t, &o, q);
    if (rc == 0)
        rc = daily_get(t, rec->timestamp_ms, &d);
    if (rc)
        goto out;
    rc = put_order(t, ev->order_id, &o);
    for (size_t i = 0; rc == 0 && i < o.nlines; i++) {
        rc = item_move(t, o.lines[i].item, o.lines[i].quantity, 0);
        if (rc == 0)
            rc = user_cat_add(t, o.user, o.lines[i].category, o.lines[i].quantity);
    }
    if (rc == 0) {
        u.order_count++;
        u.last_order_at = rec->timestamp_ms;
        rc = put_user(t, o.user, &u);
    }
    if (rc == 0) {
        unsigned char be[8];
        rmodel_put_be64(be, rec->position);
        rmodel_key2(&t->key, o.user.p, o.user.n, be, 8);
        rc = rmodel_put(t, RMODEL_DB_USER_ORDERS, t->key.data, t->key.len, ev->order_id.p, ev->order_id.n);
    }
    if (rc == 0) {
        d.created++;
        rc = daily_put(t, &d);
    }
out:
    rmodel_order_clear(&o);
    return rc;
}

/* Before any write of a transition: computes the user's and the day's new money figures
 * into *u and t->day_new, and checks that the items and categories can move, all with
 * checked arithmetic (1 and a reason when something would overflow). */
static int transition_check(struct rmodel_txn *t, const struct log_record *rec,
                            const struct rmodel_ev *ev, struct rmodel_order *o, int prev, struct rmodel_user *u)
{
    int64_t q;
    int rc = 0;
    if (ev->type == EV_ORDER_SHIPPED || ev->type == EV_ORDER_CANCELLED) {
        if ((rc = order_quantity(t, o, &q)) == 0)
            rc = items_can_move(t, o, q);
        if (rc == 0 && ev->type == EV_ORDER_CANCELLED)
            rc = cats_can_move(t, o, q);
        if (rc)
            return rc;
    }
    if (ev->type != EV_PAYMENT_PROCESSED && ev->type != EV_ORDER_CANCELLED)
        return 0;
    struct rmodel_daily *d = &t->day_new;
    if ((rc = daily_get(t, rec->timestamp_ms, d)) != 0)
        return rc;
    if (ev->type == EV_PAYMENT_PROCESSED) {
        if (checked_sub(t, "the wallet balance", u->balance, ev->amount, &u->balance) ||
            checked_add(t, "the user's total spent", u->total_spent, o->amount, &u->total_spent) ||
            checked_add(t, "the day's revenue", d->revenue, ev->amount, &d->revenue))
            return 1;
        u->spent_orders++;
        d->paid++;
        return 0;
    }
    if (checked_add(t, "the wallet balance", u->balance, ev->refunded, &u->balance) ||
        (prev == ORDER_PAID &&
         checked_sub(t, "the user's total spent", u->total_spent, o->amount, &u->total_spent)) ||
        checked_sub(t, "the day's revenue", d->revenue, ev->refunded, &d->revenue))
        return 1;
    u->order_count--;
    if (prev == ORDER_PAID)
        u->spent_orders--;
    d->cancelled++;
    return 0;
}

/* Payment, shipping, delivery, cancellation: the order changes status, then the user, the
 * items and the day change by the amounts of the transition. */
static int fold_order_transition(struct rmodel_txn *t, const struct log_record *rec,
                                 const struct rmodel_ev *ev)
{
    struct rmodel_order o = { 0 };
    struct rmodel_user u;
    int prev = 0;
    int rc = order_check(t, rec, ev, &o, &prev, &u);
    if (rc == 0)
        rc = transition_check(t, rec, ev, &o, prev, &u);
    if (rc)
        goto out;
    int64_t reserved = 0, sold = 0; /* per unit of each line */
    if (ev->type == EV_ORDER_SHIPPED)
        reserved = -1, sold = 1;
    else if (ev->type == EV_ORDER_CANCELLED)
        reserved = -1;
    for (size_t i = 0; rc == 0 && (reserved || sold) && i < o.nlines; i++) {
        rc = item_move(t, o.lines[i].item, reserved * o.lines[i].quantity, sold * o.lines[i].quantity);
        if (rc == 0 && ev->type == EV_ORDER_CANCELLED)
            rc = user_cat_add(t, o.user, o.lines[i].category, -o.lines[i].quantity);
    }
    if (rc == 0 && (ev->type == EV_PAYMENT_PROCESSED || ev->type == EV_ORDER_CANCELLED))
        rc = put_user(t, o.user, &u);
    if (rc == 0 && (ev->type == EV_PAYMENT_PROCESSED || ev->type == EV_ORDER_CANCELLED))
        rc = daily_put(t, &t->day_new);
    if (rc == 0) /* last: o was decoded in place from the order's row (rmodel_get_ref) */
        rc = put_order(t, ev->order_id, &o);
out:
    rmodel_order_clear(&o);
    return rc;
}

static const fold_fn handlers[EV_TYPE_COUNT] = {
    [EV_USER_REGISTERED] = fold_user_registered,
    [EV_FUNDS_DEPOSITED] = fold_funds_deposited,
    [EV_ITEM_ADDED] = fold_item_added,
    [EV_ITEM_RESTOCKED] = fold_item_restocked,
    [EV_ORDER_CREATED] = fold_order_created,
    [EV_PAYMENT_PROCESSED] = fold_order_transition,
    [EV_ORDER_SHIPPED] = fold_order_transition,
    [EV_ORDER_DELIVERED] = fold_order_transition,
    [EV_ORDER_CANCELLED] = fold_order_transition,
};

/* The stream index has a row per RMODEL_STREAM_CHUNK versions of a stream (rmodel_layout.h),
 * so that an order of a few events costs one row, not one per event. The fold puts the
 * record's entry without reading the row: the flush merges the entries into it. */
static int index_stream(struct rmodel_txn *t, const struct log_record *rec)
{
    uint64_t first, slot;
    rmodel_stream_chunk(rec->stream_version, &first, &slot);
    unsigned char be[8];
    rmodel_put_be64(be, first);
    rmodel_key2(&t->key, rec->stream, rec->stream_len, be, 8);
    sbuf_reset(&t->val);
    rmodel_stream_entry(&t->val, slot, rec->position);
    return rmodel_put(t, RMODEL_DB_STREAMS, t->key.data, t->key.len, t->val.data, t->val.len);
}

/* The stream and position indexes locate every record in the local log. A position's
 * entry waits in the row cache for the flush, which writes them a row per
 * RMODEL_POS_CHUNK positions (rmodel_layout.h). */
static int index_record(struct rmodel_txn *t, const struct log_record *rec)
{
    int rc = index_stream(t, rec);
    if (rc)
        return rc;
    return rmodel_cache_put_position(t, rec->position, rec->segment, rec->offset);
}

/* Starts fetching the cache slots of the rows the event names, so that their misses
 * overlap (a handler then loads them one after another). */
static void prefetch_rows(struct rmodel_txn *t, const struct rmodel_ev *ev)
{
    if (ev->order_id.n)
        rmodel_cache_prefetch(t, RMODEL_DB_ORDERS, ev->order_id.p, ev->order_id.n);
    if (ev->user_id.n)
        rmodel_cache_prefetch(t, RMODEL_DB_USERS, ev->user_id.p, ev->user_id.n);
    for (size_t i = 0; i < ev->nlines; i++) {
        const struct rmodel_line *l = &ev->lines[i];
        rmodel_cache_prefetch(t, RMODEL_DB_ITEMS, l->item.p, l->item.n);
        if (ev->user_id.n && l->category.n) { /* OrderCreated's user and category counters */
            rmodel_key2(&t->key, ev->user_id.p, ev->user_id.n, l->category.p, l->category.n);
            rmodel_cache_prefetch(t, RMODEL_DB_USER_CAT, t->key.data, t->key.len);
        }
    }
}

int rmodel_fold_apply(struct rmodel_txn *t, const struct log_record *rec)
{
    assert(!t->rdonly);
    int rc = rmodel_ev_parse(&t->ev, rec, &t->reason);
    if (rc)
        return rc;
    prefetch_rows(t, &t->ev);
    return handlers[t->ev.type](t, rec, &t->ev);
}

int rmodel_fold(struct rmodel_txn *t, const struct log_record *rec)
{
    int rc = index_record(t, rec);
    if (rc)
        return rc;
    rc = rmodel_fold_apply(t, rec);
    if (rc != 1)
        return rc;
    const char *projection = t->ev.projection ? t->ev.projection : "read_model";
    EFLOG_WARN("dead letter position=%llu type=%.*s projection=%s reason=\"%s\"",
             (unsigned long long)rec->position, (int)rec->type_len, rec->type, projection,
             sbuf_str(&t->reason));
    rc = rmodel_dlq_add(t, rec, projection, sbuf_str(&t->reason));
    return rc ? rc : 1;
}
