#include <config.h>

#include "readmodel/rmodel_query.h"

#include <stdlib.h>
#include <string.h>

#include "log/record.h"
#include "readmodel/rmodel_internal.h"
#include "util/lmdb_map.h"
#include "util/xalloc.h"

/* avg_order_value_cents. The fold keeps total_spent exact and spent_orders >= 1 while it
 * is non-zero; the guards keep even a damaged row from a division by zero or the one
 * overflowing division (INT64_MIN / -1). */
static int64_t average(int64_t total, uint64_t orders)
{
    if (orders == 0 || orders > INT64_MAX)
        return 0;
    return total / (int64_t)orders;
}

/* available = restocked - reserved - sold, which a folded log keeps in [0, restocked];
 * a damaged row saturates instead of overflowing. */
static int64_t available(const struct rmodel_item *it)
{
    int64_t a;
    if (__builtin_sub_overflow(it->restocked, it->reserved, &a) ||
        __builtin_sub_overflow(a, it->sold, &a))
        return a < 0 ? INT64_MAX : INT64_MIN; /* the wrapped result has the wrong sign */
    return a;
}

static void json_time_or_null(struct sbuf *out, int64_t ms)
{
    if (ms == RMODEL_NO_TIME)
        sbuf_puts(out, "null");
    else
        sbuf_json_time(out, ms);
}

void rmodel_render_order_view(const struct rmodel_order *o, const char *id, size_t id_len,
                              struct sbuf *out)
{
    sbuf_putc(out, '{');
    sbuf_json_key(out, "order_id");
    sbuf_json_str(out, id, id_len);
    sbuf_json_key(out, "user_id");
    sbuf_json_str(out, o->user.p, o->user.n);
    sbuf_json_key(out, "status");
    sbuf_json_cstr(out, vocab_status_name(o->status));
    sbuf_json_key(out, "items");
    sbuf_putc(out, '[');
    for (size_t i = 0; i < o->nlines; i++) {
        const struct rmodel_line *l = &o->lines[i];
        sbuf_putc(out, '{');
        sbuf_json_key(out, "item_id");
        sbuf_json_str(out, l->item.p, l->item.n);
        sbuf_json_key(out, "name");
        sbuf_json_str(out, l->name.p, l->name.n);
        sbuf_json_key(out, "quantity");
        sbuf_json_i64(out, l->quantity);
        sbuf_json_key(out, "price_cents");
        sbuf_json_i64(out, l->price);
        sbuf_putc(out, '}');
        if (i + 1 < o->nlines)
            sbuf_putc(out, ',');
    }
    sbuf_putc(out, ']');
    sbuf_json_key(out, "amount_cents");
    sbuf_json_i64(out, o->amount);
    sbuf_json_key(out, "created_at");
    sbuf_json_time(out, o->created_at);
    sbuf_json_key(out, "updated_at");
    sbuf_json_time(out, o->updated_at);
    sbuf_json_key(out, "version");
    sbuf_json_u64(out, o->version);
    sbuf_putc(out, '}');
}

int rmodel_render_order(struct rmodel_txn *t, const char *id, size_t id_len, struct sbuf *out,
                    uint64_t *version)
{
    struct rmodel_order o;
    int rc = rmodel_load_order(t, (struct rmodel_str){ id, id_len }, &o);
    if (rc)
        return rc;
    rmodel_render_order_view(&o, id, id_len, out);
    *version = o.version;
    rmodel_order_clear(&o);
    return 0;
}

/* The category with the largest quantity over the user's placed orders; keys sort by
 * name, so keeping the first strict maximum breaks ties to the smallest name. */
static int preferred_category(struct rmodel_txn *t, const char *id, size_t id_len, struct sbuf *out)
{
    MDB_cursor *c;
    int rc = rmodel_cache_flush(t); /* a write txn's cached rows first (rmodel_internal.h) */
    if (rc)
        return rc;
    rc = mdb_cursor_open(t->txn, t->env->dbi[RMODEL_DB_USER_CAT], &c);
    if (rc)
        return ef_mdb_rc(rc);
    rmodel_key2(&t->key, id, id_len, "", 0);
    MDB_val k = { t->key.len, t->key.data }, v;
    int64_t best = 0;
    const char *best_p = NULL;
    size_t best_n = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size < t->key.len || memcmp(k.mv_data, t->key.data, t->key.len) != 0)
            break;
        struct rmodel_reader r = { v.mv_data, v.mv_size, 0 };
        int64_t q = (int64_t)rmodel_read_u64(&r);
        if (!r.bad && q > best) {
            best = q;
            best_p = (const char *)k.mv_data + t->key.len;
            best_n = k.mv_size - t->key.len;
        }
    }
    if (best_p)
        sbuf_json_str(out, best_p, best_n); /* page memory: valid while the txn lives */
    else
        sbuf_puts(out, "null");
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : ef_mdb_rc(rc);
}

int rmodel_render_user(struct rmodel_txn *t, const char *id, size_t id_len, struct sbuf *out)
{
    struct rmodel_user u;
    int rc = rmodel_load_user(t, (struct rmodel_str){ id, id_len }, &u);
    if (rc)
        return rc;
    sbuf_putc(out, '{');
    sbuf_json_key(out, "user_id");
    sbuf_json_str(out, id, id_len);
    sbuf_json_key(out, "name");
    sbuf_json_str(out, u.name.p, u.name.n);
    sbuf_json_key(out, "wallet_balance_cents");
    sbuf_json_i64(out, u.balance);
    sbuf_json_key(out, "order_count");
    sbuf_json_u64(out, u.order_count);
    sbuf_json_key(out, "total_spent_cents");
    sbuf_json_i64(out, u.total_spent);
    sbuf_json_key(out, "avg_order_value_cents");
    sbuf_json_i64(out, average(u.total_spent, u.spent_orders));
    sbuf_json_key(out, "last_order_at");
    json_time_or_null(out, u.last_order_at);
    sbuf_json_key(out, "preferred_category");
    rc = preferred_category(t, id, id_len, out);
    if (rc)
        return rc;
    sbuf_json_key(out, "vip");
    sbuf_puts(out, u.total_spent >= 100000 ? "true" : "false");
    sbuf_putc(out, '}');
    return 0;
}

static int render_order_summary(struct rmodel_txn *t, const MDB_val *order_id, struct sbuf *out)
{
    struct rmodel_order o;
    int rc = rmodel_load_order(t, (struct rmodel_str){ order_id->mv_data, order_id->mv_size }, &o);
    if (rc)
        return rc == RMODEL_ENOTFOUND ? RMODEL_EFORMAT : rc; /* the list names a missing order */
    sbuf_putc(out, '{');
    sbuf_json_key(out, "order_id");
    sbuf_json_str(out, order_id->mv_data, order_id->mv_size);
    sbuf_json_key(out, "status");
    sbuf_json_cstr(out, vocab_status_name(o.status));
    sbuf_json_key(out, "amount_cents");
    sbuf_json_i64(out, o.amount);
    sbuf_json_key(out, "item_count");
    sbuf_json_u64(out, o.nlines);
    sbuf_json_key(out, "created_at");
    sbuf_json_time(out, o.created_at);
    sbuf_putc(out, '}');
    rmodel_order_clear(&o);
    return 0;
}

/* Positions the cursor on the newest entry of the user strictly before `before`. */
static int seek_before(MDB_cursor *c, const struct sbuf *prefix, uint64_t before, MDB_val *k,
                       MDB_val *v)
{
    unsigned char key[LOG_STREAM_MAX + 9];
    memcpy(key, prefix->data, prefix->len);
    rmodel_put_be64(key + prefix->len, before);
    *k = (MDB_val){ prefix->len + 8, key };
    int rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        return mdb_cursor_get(c, k, v, MDB_LAST);
    if (rc)
        return rc;
    return mdb_cursor_get(c, k, v, MDB_PREV); /* SET_RANGE found a key >= before */
}

static int has_prefix(const MDB_val *k, const struct sbuf *prefix)
{
    return k->mv_size == prefix->len + 8 && memcmp(k->mv_data, prefix->data, prefix->len) == 0;
}

int rmodel_render_user_orders(struct rmodel_txn *t, const char *id, size_t id_len, unsigned limit,
                          uint64_t cursor, struct sbuf *out)
{
    if (id_len > LOG_STREAM_MAX)
        return RMODEL_EBADARG;
    struct rmodel_user u;
    int rc = rmodel_load_user(t, (struct rmodel_str){ id, id_len }, &u);
    if (rc == 0)
        rc = rmodel_cache_flush(t); /* a write txn's buffered rows first (rmodel_internal.h) */
    if (rc)
        return rc;
    MDB_cursor *c;
    rc = mdb_cursor_open(t->txn, t->env->dbi[RMODEL_DB_USER_ORDERS], &c);
    if (rc)
        return ef_mdb_rc(rc);
    struct sbuf prefix = SBUF_INIT;
    rmodel_key2(&prefix, id, id_len, "", 0);
    MDB_val k, v;
    unsigned n = 0;
    uint64_t last = 0;
    sbuf_puts(out, "{\"orders\":[");
    for (rc = seek_before(c, &prefix, cursor ? cursor : UINT64_MAX, &k, &v);
         rc == 0 && has_prefix(&k, &prefix) && n < limit;
         rc = mdb_cursor_get(c, &k, &v, MDB_PREV)) {
        if (n++)
            sbuf_putc(out, ',');
        rc = render_order_summary(t, &v, out);
        if (rc)
            goto out;
        last = rmodel_get_be64((const unsigned char *)k.mv_data + prefix.len);
    }
    if (rc && rc != MDB_NOTFOUND)
        goto out;
    /* More entries exist only if the loop stopped at the limit on an entry of this user. */
    int more = rc == 0 && has_prefix(&k, &prefix) && n == limit;
    sbuf_puts(out, "],\"next_cursor\":");
    if (more)
        sbuf_printf(out, "\"%llu\"", (unsigned long long)last);
    else
        sbuf_puts(out, "null");
    sbuf_putc(out, '}');
    rc = 0;
out:
    mdb_cursor_close(c);
    sbuf_free(&prefix);
    return ef_mdb_rc(rc);
}

int rmodel_render_item(struct rmodel_txn *t, const char *id, size_t id_len, struct sbuf *out)
{
    struct rmodel_item it;
    int rc = rmodel_load_item(t, (struct rmodel_str){ id, id_len }, &it);
    if (rc)
        return rc;
    sbuf_putc(out, '{');
    sbuf_json_key(out, "item_id");
    sbuf_json_str(out, id, id_len);
    sbuf_json_key(out, "name");
    sbuf_json_str(out, it.name.p, it.name.n);
    sbuf_json_key(out, "category");
    sbuf_json_str(out, it.category.p, it.category.n);
    sbuf_json_key(out, "price_cents");
    sbuf_json_i64(out, it.price);
    sbuf_json_key(out, "available");
    sbuf_json_i64(out, available(&it));
    sbuf_json_key(out, "reserved");
    sbuf_json_i64(out, it.reserved);
    sbuf_json_key(out, "sold");
    sbuf_json_i64(out, it.sold);
    sbuf_putc(out, '}');
    return 0;
}

int rmodel_render_daily(struct rmodel_txn *t, const char *from, const char *to, struct sbuf *out)
{
    if (strlen(from) != 10 || strlen(to) != 10)
        return RMODEL_EBADARG;
    MDB_cursor *c;
    int rc = rmodel_cache_flush(t); /* a write txn's cached rows first (rmodel_internal.h) */
    if (rc)
        return rc;
    rc = mdb_cursor_open(t->txn, t->env->dbi[RMODEL_DB_DAILY], &c);
    if (rc)
        return ef_mdb_rc(rc);
    sbuf_puts(out, "{\"days\":[");
    MDB_val k = { 10, (void *)from }, v;
    int first = 1;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 10 || memcmp(k.mv_data, to, 10) > 0)
            break;
        struct rmodel_daily d;
        rc = rmodel_daily_decode(v.mv_data, v.mv_size, &d);
        if (rc)
            break;
        sbuf_puts(out, first ? "{" : ",{");
        first = 0;
        sbuf_json_key(out, "date");
        sbuf_json_str(out, k.mv_data, 10);
        sbuf_json_key(out, "orders_created");
        sbuf_json_u64(out, d.created);
        sbuf_json_key(out, "orders_paid");
        sbuf_json_u64(out, d.paid);
        sbuf_json_key(out, "orders_cancelled");
        sbuf_json_u64(out, d.cancelled);
        sbuf_json_key(out, "revenue_cents");
        sbuf_json_i64(out, d.revenue);
        sbuf_putc(out, '}');
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return ef_mdb_rc(rc);
    sbuf_puts(out, "]}");
    return 0;
}

/* Fills loc's segment and offset from the position index (loc->position set). */
static int where(struct rmodel_txn *t, struct rmodel_loc *loc)
{
    uint64_t first, slot, count;
    if (loc->position == 0)
        return RMODEL_ENOTFOUND; /* positions start at 1 */
    rmodel_pos_chunk(loc->position, &first, &slot);
    unsigned char be[8];
    rmodel_put_be64(be, first);
    MDB_val k = { 8, be }, v;
    int rc = mdb_get(t->txn, t->env->dbi[RMODEL_DB_POSITIONS], &k, &v);
    if (rc == MDB_NOTFOUND)
        return RMODEL_ENOTFOUND;
    if (rc)
        return ef_mdb_rc(rc);
    size_t bytes;
    struct rmodel_ploc at;
    rc = rmodel_ploc_walk(v.mv_data, v.mv_size, slot + 1, &count, &bytes, &at);
    if (rc)
        return rc;
    if (count <= slot)
        return RMODEL_ENOTFOUND;
    loc->segment = at.segment;
    loc->offset = at.offset;
    return 0;
}

int rmodel_stream_locs(struct rmodel_txn *t, const char *stream, size_t stream_len, uint64_t from_version,
                       struct rmodel_loc *locs, size_t max, size_t *n, int *more)
{
    *n = 0;
    *more = 0;
    if (stream_len > LOG_STREAM_MAX || max == 0)
        return RMODEL_EBADARG;
    MDB_cursor *c;
    int rc = rmodel_cache_flush(t); /* a write txn's buffered rows first (rmodel_internal.h) */
    if (rc)
        return rc;
    rc = mdb_cursor_open(t->txn, t->env->dbi[RMODEL_DB_STREAMS], &c);
    if (rc)
        return ef_mdb_rc(rc);
    struct sbuf prefix = SBUF_INIT;
    rmodel_key2(&prefix, stream, stream_len, "", 0);
    unsigned char key[LOG_STREAM_MAX + 9];
    memcpy(key, prefix.data, prefix.len);
    uint64_t first, from_slot;
    rmodel_stream_chunk(from_version, &first, &from_slot);
    rmodel_put_be64(key + prefix.len, first);
    MDB_val k = { prefix.len + 8, key }, v;
    /* The stream's rows from the one holding from_version on (rmodel_layout.h). */
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && has_prefix(&k, &prefix);
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        uint64_t row_first = rmodel_get_be64((const unsigned char *)k.mv_data + prefix.len);
        uint64_t pos[RMODEL_STREAM_CHUNK] = { 0 };
        rc = rmodel_stream_merge(v.mv_data, v.mv_size, 1, pos);
        if (rc)
            break;
        for (uint64_t slot = 0; slot < RMODEL_STREAM_CHUNK; slot++) {
            uint64_t version = row_first + slot;
            if (version < from_version || pos[slot] == 0) /* before the range, or a gap */
                continue;
            if (*n == max) {
                *more = 1;
                goto rows_read;
            }
            locs[(*n)++] = (struct rmodel_loc){ .version = version, .position = pos[slot] };
        }
    }
rows_read:
    mdb_cursor_close(c);
    sbuf_free(&prefix);
    if (rc && rc != MDB_NOTFOUND)
        return ef_mdb_rc(rc);
    /* Where each record is: the position index, which every folded record is in. */
    for (size_t i = 0; i < *n; i++) {
        rc = where(t, &locs[i]);
        if (rc)
            return rc == RMODEL_ENOTFOUND ? RMODEL_EFORMAT : rc;
    }
    return *n ? 0 : RMODEL_ENOTFOUND;
}

int rmodel_position_loc(struct rmodel_txn *t, uint64_t pos, struct rmodel_loc *loc)
{
    *loc = (struct rmodel_loc){ .position = pos };
    int rc = rmodel_cache_flush(t); /* a write txn's buffered positions first */
    return rc ? rc : where(t, loc);
}
