#include <config.h>

#include <assert.h>
#include <string.h>

#include "log/record.h"
#include "read/rm.h"
#include "read/rm_internal.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"

/* Every handler first checks everything that can make the event inapplicable (returning 1
 * with t->reason set, before any write), then writes. After its first write a handler only
 * fails for a store error (negative), which aborts the whole batch. So an event is applied
 * whole or not at all without nested transactions. */
typedef int (*fold_fn)(struct rm_txn *t, const struct log_record *rec, const struct rm_ev *ev);

static int put_user(struct rm_txn *t, struct rm_str id, const struct rm_user *u)
{
    sbuf_reset(&t->val);
    rm_user_encode(u, &t->val);
    return rm_put(t, RM_DB_USERS, id.p, id.n, t->val.data, t->val.len);
}

static int put_item(struct rm_txn *t, struct rm_str id, const struct rm_item *it)
{
    sbuf_reset(&t->val);
    rm_item_encode(it, &t->val);
    return rm_put(t, RM_DB_ITEMS, id.p, id.n, t->val.data, t->val.len);
}

static int put_order(struct rm_txn *t, struct rm_str id, const struct rm_order *o)
{
    sbuf_reset(&t->val);
    rm_order_encode(o, &t->val);
    return rm_put(t, RM_DB_ORDERS, id.p, id.n, t->val.data, t->val.len);
}

/* Loads a record that must exist; a missing one becomes the dead-letter reason. */
static int need(int rc, struct rm_txn *t, const char *what, struct rm_str id)
{
    if (rc == RM_ENOTFOUND) {
        sbuf_printf(&t->reason, "unknown %s %.*s", what, (int)id.n, id.p);
        return 1;
    }
    return rc;
}

static int absent(struct rm_txn *t, enum rm_dbi db, const char *what, struct rm_str id)
{
    int rc = rm_get_copy(t, db, id.p, id.n, &t->key);
    if (rc == 0) {
        sbuf_printf(&t->reason, "%s %.*s already exists", what, (int)id.n, id.p);
        return 1;
    }
    return rc == RM_ENOTFOUND ? 0 : rc;
}

/* Adds deltas to an item's reserved and sold counts (the item was checked to exist). */
static int item_move(struct rm_txn *t, struct rm_str id, int64_t reserved, int64_t sold)
{
    struct rm_item it;
    int rc = rm_load_item(t, id, &it);
    if (rc)
        return rc == RM_ENOTFOUND ? RM_EFORMAT : rc;
    it.reserved += reserved;
    it.sold += sold;
    return put_item(t, id, &it);
}

/* Adds delta to the user's quantity in a category; a zero total is deleted, so the
 * preferred-category scan only meets categories of placed orders. */
static int user_cat_add(struct rm_txn *t, struct rm_str user, struct rm_str cat, int64_t delta)
{
    struct sbuf *k = &t->key;
    rm_key2(k, user.p, user.n, cat.p, cat.n);
    int64_t q = 0;
    int rc = rm_get_copy(t, RM_DB_USER_CAT, k->data, k->len, &t->json);
    if (rc == 0 && t->json.len == 8) {
        struct rm_reader r = { (const unsigned char *)t->json.data, 8, 0 };
        q = (int64_t)rm_read_u64(&r);
    } else if (rc != RM_ENOTFOUND) {
        return rc ? rc : RM_EFORMAT;
    }
    q += delta;
    if (q == 0)
        return rm_del(t, RM_DB_USER_CAT, k->data, k->len);
    sbuf_reset(&t->val);
    rm_put_u64(&t->val, (uint64_t)q);
    return rm_put(t, RM_DB_USER_CAT, k->data, k->len, t->val.data, t->val.len);
}

/* Adds to the counters of the UTC day of the event time. */
static int daily_add(struct rm_txn *t, int64_t at, uint64_t created, uint64_t paid,
                     uint64_t cancelled, int64_t revenue)
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
    const char *day = t->day_key;
    struct rm_daily d = { 0, 0, 0, 0 };
    int rc = rm_get_copy(t, RM_DB_DAILY, day, 10, &t->key);
    if (rc == 0)
        rc = rm_daily_decode(t->key.data, t->key.len, &d);
    else if (rc == RM_ENOTFOUND)
        rc = 0;
    if (rc)
        return rc;
    d.created += created;
    d.paid += paid;
    d.cancelled += cancelled;
    d.revenue += revenue;
    sbuf_reset(&t->val);
    rm_daily_encode(&d, &t->val);
    return rm_put(t, RM_DB_DAILY, day, 10, t->val.data, t->val.len);
}

static int fold_user_registered(struct rm_txn *t, const struct log_record *rec, const struct rm_ev *ev)
{
    int rc = absent(t, RM_DB_USERS, "user", ev->user_id);
    if (rc)
        return rc;
    struct rm_user u = { 1, ev->name, 0, 0, 0, 0, RM_NO_TIME };
    return put_user(t, ev->user_id, &u);
}

static int fold_funds_deposited(struct rm_txn *t, const struct log_record *rec, const struct rm_ev *ev)
{
    struct rm_user u;
    int rc = need(rm_load_user(t, ev->user_id, &u), t, "user", ev->user_id);
    if (rc)
        return rc;
    u.balance += ev->amount;
    return put_user(t, ev->user_id, &u);
}

static int fold_item_added(struct rm_txn *t, const struct log_record *rec, const struct rm_ev *ev)
{
    int rc = absent(t, RM_DB_ITEMS, "item", ev->item_id);
    if (rc)
        return rc;
    struct rm_item it = { 1, ev->name, ev->category, ev->price, 0, 0, 0 };
    return put_item(t, ev->item_id, &it);
}

static int fold_item_restocked(struct rm_txn *t, const struct log_record *rec, const struct rm_ev *ev)
{
    struct rm_item it;
    int rc = need(rm_load_item(t, ev->item_id, &it), t, "item", ev->item_id);
    if (rc)
        return rc;
    it.restocked += ev->quantity;
    return put_item(t, ev->item_id, &it);
}

/* Checks the order's own event against the stored order and the order's user: the common
 * first half of every order handler. o is loaded (or zero for OrderCreated) and applied; u
 * is the order's user, decoded from t->ubuf, which stays valid until the next
 * rm_load_user (the handlers write orders, items and categories in between, never users). */
static int order_check(struct rm_txn *t, const struct log_record *rec, const struct rm_ev *ev,
                       struct rm_order *o, int *prev_status, struct rm_user *u)
{
    int rc = rm_load_order(t, ev->order_id, o);
    if (rc == RM_ENOTFOUND && ev->type != RM_EV_ORDER_CREATED)
        return need(rc, t, "order", ev->order_id);
    if (rc && rc != RM_ENOTFOUND)
        return rc;
    *prev_status = o->status;
    rc = rm_order_apply(t, o, rec, ev);
    if (rc)
        return rc;
    return need(rm_load_user(t, o->user, u), t, "user", o->user);
}

static int fold_order_created(struct rm_txn *t, const struct log_record *rec, const struct rm_ev *ev)
{
    struct rm_order o = { 0 };
    struct rm_user u;
    int prev;
    int rc = order_check(t, rec, ev, &o, &prev, &u);
    for (size_t i = 0; rc == 0 && i < o.nlines; i++) {
        struct rm_item it;
        rc = need(rm_load_item(t, o.lines[i].item, &it), t, "item", o.lines[i].item);
    }
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
        rm_put_be64(be, rec->position);
        rm_key2(&t->key, o.user.p, o.user.n, be, 8);
        rc = rm_put(t, RM_DB_USER_ORDERS, t->key.data, t->key.len, ev->order_id.p, ev->order_id.n);
    }
    if (rc == 0)
        rc = daily_add(t, rec->timestamp_ms, 1, 0, 0, 0);
out:
    rm_order_clear(&o);
    return rc;
}

/* Payment, shipping, delivery, cancellation: the order changes status, then the user, the
 * items and the day change by the amounts of the transition. */
static int fold_order_transition(struct rm_txn *t, const struct log_record *rec,
                                 const struct rm_ev *ev)
{
    struct rm_order o = { 0 };
    struct rm_user u;
    int prev = 0;
    int rc = order_check(t, rec, ev, &o, &prev, &u);
    if (rc)
        goto out;
    rc = put_order(t, ev->order_id, &o);
    int64_t reserved = 0, sold = 0; /* per unit of each line */
    if (ev->type == RM_EV_ORDER_SHIPPED)
        reserved = -1, sold = 1;
    else if (ev->type == RM_EV_ORDER_CANCELLED)
        reserved = -1;
    for (size_t i = 0; rc == 0 && (reserved || sold) && i < o.nlines; i++) {
        rc = item_move(t, o.lines[i].item, reserved * o.lines[i].quantity, sold * o.lines[i].quantity);
        if (rc == 0 && ev->type == RM_EV_ORDER_CANCELLED)
            rc = user_cat_add(t, o.user, o.lines[i].category, -o.lines[i].quantity);
    }
    if (rc || (ev->type != RM_EV_PAYMENT_PROCESSED && ev->type != RM_EV_ORDER_CANCELLED))
        goto out;
    if (ev->type == RM_EV_PAYMENT_PROCESSED) {
        u.balance -= ev->amount;
        u.total_spent += o.amount;
        u.spent_orders++;
        rc = put_user(t, o.user, &u);
        if (rc == 0)
            rc = daily_add(t, rec->timestamp_ms, 0, 1, 0, ev->amount);
    } else {
        u.balance += ev->refunded;
        u.order_count--;
        if (prev == RM_PAID) {
            u.total_spent -= o.amount;
            u.spent_orders--;
        }
        rc = put_user(t, o.user, &u);
        if (rc == 0)
            rc = daily_add(t, rec->timestamp_ms, 0, 0, 1, -ev->refunded);
    }
out:
    rm_order_clear(&o);
    return rc;
}

static const fold_fn handlers[RM_EV_COUNT] = {
    [RM_EV_USER_REGISTERED] = fold_user_registered,
    [RM_EV_FUNDS_DEPOSITED] = fold_funds_deposited,
    [RM_EV_ITEM_ADDED] = fold_item_added,
    [RM_EV_ITEM_RESTOCKED] = fold_item_restocked,
    [RM_EV_ORDER_CREATED] = fold_order_created,
    [RM_EV_PAYMENT_PROCESSED] = fold_order_transition,
    [RM_EV_ORDER_SHIPPED] = fold_order_transition,
    [RM_EV_ORDER_DELIVERED] = fold_order_transition,
    [RM_EV_ORDER_CANCELLED] = fold_order_transition,
};

/* The stream and position indexes locate every record in the local log. */
static int index_record(struct rm_txn *t, const struct log_record *rec)
{
    unsigned char be[8];
    rm_put_be64(be, rec->stream_version);
    rm_key2(&t->key, rec->stream, rec->stream_len, be, 8);
    sbuf_reset(&t->val);
    rm_put_u8(&t->val, RM_VAL_V1);
    rm_put_u64(&t->val, rec->position);
    rm_put_u64(&t->val, rec->segment);
    rm_put_u64(&t->val, rec->offset);
    int rc = rm_put(t, RM_DB_STREAMS, t->key.data, t->key.len, t->val.data, t->val.len);
    if (rc)
        return rc;
    rm_put_be64(be, rec->position);
    /* val minus its position field: v, segment, offset */
    sbuf_reset(&t->val);
    rm_put_u8(&t->val, RM_VAL_V1);
    rm_put_u64(&t->val, rec->segment);
    rm_put_u64(&t->val, rec->offset);
    MDB_val k = { 8, be }, v = { t->val.len, t->val.data };
    /* Positions only grow: MDB_APPEND fills pages densely and skips the search. */
    rc = mdb_put(t->txn, t->env->dbi[RM_DB_POSITIONS], &k, &v, MDB_APPEND);
    return ef_mdb_rc(rc);
}

/* Starts fetching the cache slots of the rows the event names, so that their misses
 * overlap (a handler then loads them one after another). */
static void prefetch_rows(struct rm_txn *t, const struct rm_ev *ev)
{
    if (ev->order_id.n)
        rm_cache_prefetch(t, RM_DB_ORDERS, ev->order_id.p, ev->order_id.n);
    if (ev->user_id.n)
        rm_cache_prefetch(t, RM_DB_USERS, ev->user_id.p, ev->user_id.n);
    for (size_t i = 0; i < ev->nlines; i++)
        rm_cache_prefetch(t, RM_DB_ITEMS, ev->lines[i].item.p, ev->lines[i].item.n);
}

int rm_fold_apply(struct rm_txn *t, const struct log_record *rec)
{
    assert(!t->rdonly);
    int rc = rm_ev_parse(&t->ev, rec, &t->reason);
    if (rc)
        return rc;
    prefetch_rows(t, &t->ev);
    return handlers[t->ev.type](t, rec, &t->ev);
}

int rm_fold(struct rm_txn *t, const struct log_record *rec)
{
    int rc = index_record(t, rec);
    if (rc)
        return rc;
    rc = rm_fold_apply(t, rec);
    if (rc != 1)
        return rc;
    const char *projection = t->ev.projection ? t->ev.projection : "read_model";
    LOG_WARN("dead letter position=%llu type=%.*s projection=%s reason=\"%s\"",
             (unsigned long long)rec->position, (int)rec->type_len, rec->type, projection,
             sbuf_str(&t->reason));
    rc = rm_dlq_add(t, rec, projection, sbuf_str(&t->reason));
    return rc ? rc : 1;
}
