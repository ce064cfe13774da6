/* Unit tests of the read model: every event type folded, every projection field checked
 * against hand-computed values, pagination, time travel, dead letters and upcasting. The
 * records are built by hand (struct log_record), so these tests need no log. */
#include <config.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "readmodel/rmodel.h"
#include "readmodel/rmodel_asof.h"
#include "readmodel/rmodel_dlq.h"
#include "readmodel/rmodel_env.h"
#include "readmodel/rmodel_event.h"
#include "readmodel/rmodel_fold.h"
#include "readmodel/rmodel_internal.h" /* the stream index's rows, read raw */
#include "readmodel/rmodel_layout.h"
#include "readmodel/rmodel_query.h"
#include "testdir.h"
#include "util/eflog.h"
#include "util/sbuf.h"

#define D1 1767261600000LL /* 2026-01-01T10:00:00Z */
#define D2 1767398399000LL /* 2026-01-02T23:59:59Z */
#define D3 1767398401000LL /* 2026-01-03T00:00:01Z */

static char tmpdir[TD_PATH_MAX];
static struct rmodel_env *env;
static uint64_t next_pos;

static void setup(void)
{
    td_setup();
    strcpy(tmpdir, td_dir);
    struct rmodel_options opt = { 64u << 20, 0 };
    ck_assert_int_eq(rmodel_env_open(tmpdir, &opt, &env), 0);
    next_pos = 1;
}

static void teardown(void)
{
    rmodel_env_close(env);
    env = NULL;
    td_teardown();
}

static struct log_record mkrec(const char *stream, uint64_t ver, const char *type, int schema,
                               int64_t at, const char *data)
{
    struct log_record r;
    memset(&r, 0, sizeof r);
    r.position = next_pos++;
    r.stream = stream;
    r.stream_len = strlen(stream);
    r.stream_version = ver;
    r.type = type;
    r.type_len = strlen(type);
    r.schema_version = (uint16_t)schema;
    r.timestamp_ms = at;
    r.meta = "{}";
    r.meta_len = 2;
    r.data = data;
    r.data_len = strlen(data);
    r.segment = 1;
    r.offset = r.position * 256;
    return r;
}

/* Folds one record in its own transaction; returns rmodel_fold's result. */
static int fold(const char *stream, uint64_t ver, const char *type, int schema, int64_t at,
                const char *data)
{
    struct log_record r = mkrec(stream, ver, type, schema, at, data);
    struct rmodel_txn *t;
    ck_assert_int_eq(rmodel_txn_begin(env, 0, &t), 0);
    int rc = rmodel_fold(t, &r);
    ck_assert_int_ge(rc, 0);
    ck_assert_int_eq(rmodel_set_position(t, r.position), 0);
    ck_assert_int_eq(rmodel_txn_commit(t), 0);
    return rc;
}

#define FOLD_OK(...) ck_assert_int_eq(fold(__VA_ARGS__), 0)

enum what { USER, ITEM, ORDER, DAILY, ORDERS };

/* Renders one query answer in a fresh read txn and compares it with expected. */
static void expect(enum what w, const char *id, const char *expected)
{
    struct rmodel_txn *t;
    struct sbuf out = SBUF_INIT;
    uint64_t version = 0;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    int rc = -1;
    switch (w) {
    case USER: rc = rmodel_render_user(t, id, strlen(id), &out); break;
    case ITEM: rc = rmodel_render_item(t, id, strlen(id), &out); break;
    case ORDER: rc = rmodel_render_order(t, id, strlen(id), &out, &version); break;
    case DAILY: rc = rmodel_render_daily(t, "2026-01-01", id, &out); break;
    case ORDERS: rc = rmodel_render_user_orders(t, id, strlen(id), 100, 0, &out); break;
    }
    rmodel_txn_abort(t);
    ck_assert_msg(rc == 0, "render %s: %s", id, rmodel_strerror(rc));
    ck_assert_str_eq(sbuf_str(&out), expected);
    sbuf_free(&out);
}

static void seed_catalog(void)
{
    FOLD_OK("user-u1", 1, "UserRegistered", 1, D1, "{\"user_id\":\"u1\",\"name\":\"Ann\",\"email\":null}");
    FOLD_OK("user-u1", 2, "FundsDeposited", 1, D1,
            "{\"user_id\":\"u1\",\"amount_cents\":200000,\"balance_cents\":200000}");
    FOLD_OK("item-A", 1, "ItemAdded", 1, D1,
            "{\"item_id\":\"A\",\"name\":\"Book\",\"category\":\"books\",\"price_cents\":1000}");
    FOLD_OK("item-B", 1, "ItemAdded", 1, D1,
            "{\"item_id\":\"B\",\"name\":\"Game\",\"category\":\"games\",\"price_cents\":2500}");
    FOLD_OK("item-A", 2, "ItemRestocked", 1, D1, "{\"item_id\":\"A\",\"quantity\":10,\"available\":10}");
    FOLD_OK("item-B", 2, "ItemRestocked", 1, D1, "{\"item_id\":\"B\",\"quantity\":5,\"available\":5}");
}

static const char *const O1_CREATED =
    "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"lines\":["
    "{\"item_id\":\"A\",\"name\":\"Book\",\"category\":\"books\",\"quantity\":2,\"price_cents\":1000},"
    "{\"item_id\":\"B\",\"name\":\"Game\",\"category\":\"games\",\"quantity\":1,\"price_cents\":2500}],"
    "\"amount_cents\":4500}";

static void lifecycle_to_payment(void)
{
    seed_catalog();
    FOLD_OK("order-o1", 1, "OrderCreated", 2, D1, O1_CREATED);
    FOLD_OK("order-o1", 2, "PaymentProcessed", 1, D1,
            "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"amount_cents\":4500,\"balance_cents\":195500}");
    FOLD_OK("order-o2", 1, "OrderCreated", 2, D2,
            "{\"order_id\":\"o2\",\"user_id\":\"u1\",\"lines\":[{\"item_id\":\"B\",\"name\":\"Game\","
            "\"category\":\"games\",\"quantity\":2,\"price_cents\":2500}],\"amount_cents\":5000}");
    FOLD_OK("order-o2", 2, "OrderCancelled", 1, D2,
            "{\"order_id\":\"o2\",\"user_id\":\"u1\",\"reason\":null,\"refunded_cents\":0,"
            "\"previous_status\":\"created\"}");
    FOLD_OK("order-o3", 1, "OrderCreated", 2, D2,
            "{\"order_id\":\"o3\",\"user_id\":\"u1\",\"lines\":[{\"item_id\":\"A\",\"name\":\"Book\","
            "\"category\":\"books\",\"quantity\":1,\"price_cents\":1000}],\"amount_cents\":1000}");
    FOLD_OK("order-o3", 2, "PaymentProcessed", 1, D2,
            "{\"order_id\":\"o3\",\"user_id\":\"u1\",\"amount_cents\":1000,\"balance_cents\":194500}");
}

static void lifecycle_rest(void)
{
    FOLD_OK("order-o3", 3, "OrderCancelled", 1, D3,
            "{\"order_id\":\"o3\",\"user_id\":\"u1\",\"reason\":\"changed mind\",\"refunded_cents\":1000,"
            "\"previous_status\":\"paid\"}");
    FOLD_OK("order-o1", 3, "OrderShipped", 1, D3, "{\"order_id\":\"o1\"}");
    FOLD_OK("order-o1", 4, "OrderDelivered", 1, D3, "{\"order_id\":\"o1\"}");
}

START_TEST(test_lifecycle_midway)
{
    lifecycle_to_payment();
    /* o1 paid (4500), o2 cancelled unpaid, o3 paid (1000): placed = o1, o3. */
    expect(USER, "u1",
           "{\"user_id\":\"u1\",\"name\":\"Ann\",\"wallet_balance_cents\":194500,\"order_count\":2,"
           "\"total_spent_cents\":5500,\"avg_order_value_cents\":2750,"
           "\"last_order_at\":\"2026-01-02T23:59:59.000Z\",\"preferred_category\":\"books\",\"vip\":false}");
    expect(ITEM, "A",
           "{\"item_id\":\"A\",\"name\":\"Book\",\"category\":\"books\",\"price_cents\":1000,"
           "\"available\":7,\"reserved\":3,\"sold\":0}");
    expect(ITEM, "B",
           "{\"item_id\":\"B\",\"name\":\"Game\",\"category\":\"games\",\"price_cents\":2500,"
           "\"available\":4,\"reserved\":1,\"sold\":0}");
    expect(ORDER, "o2",
           "{\"order_id\":\"o2\",\"user_id\":\"u1\",\"status\":\"cancelled\",\"items\":[{\"item_id\":\"B\","
           "\"name\":\"Game\",\"quantity\":2,\"price_cents\":2500}],\"amount_cents\":5000,"
           "\"created_at\":\"2026-01-02T23:59:59.000Z\",\"updated_at\":\"2026-01-02T23:59:59.000Z\","
           "\"version\":2}");
}
END_TEST

START_TEST(test_lifecycle_complete)
{
    lifecycle_to_payment();
    lifecycle_rest();
    expect(USER, "u1",
           "{\"user_id\":\"u1\",\"name\":\"Ann\",\"wallet_balance_cents\":195500,\"order_count\":1,"
           "\"total_spent_cents\":4500,\"avg_order_value_cents\":4500,"
           "\"last_order_at\":\"2026-01-02T23:59:59.000Z\",\"preferred_category\":\"books\",\"vip\":false}");
    expect(ITEM, "A",
           "{\"item_id\":\"A\",\"name\":\"Book\",\"category\":\"books\",\"price_cents\":1000,"
           "\"available\":8,\"reserved\":0,\"sold\":2}");
    expect(ITEM, "B",
           "{\"item_id\":\"B\",\"name\":\"Game\",\"category\":\"games\",\"price_cents\":2500,"
           "\"available\":4,\"reserved\":0,\"sold\":1}");
    expect(ORDER, "o1",
           "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"status\":\"delivered\",\"items\":["
           "{\"item_id\":\"A\",\"name\":\"Book\",\"quantity\":2,\"price_cents\":1000},"
           "{\"item_id\":\"B\",\"name\":\"Game\",\"quantity\":1,\"price_cents\":2500}],"
           "\"amount_cents\":4500,\"created_at\":\"2026-01-01T10:00:00.000Z\","
           "\"updated_at\":\"2026-01-03T00:00:01.000Z\",\"version\":4}");
    /* Revenue per UTC day of the event: day 3 only refunds, so it is negative. */
    expect(DAILY, "2026-01-31",
           "{\"days\":[{\"date\":\"2026-01-01\",\"orders_created\":1,\"orders_paid\":1,"
           "\"orders_cancelled\":0,\"revenue_cents\":4500},{\"date\":\"2026-01-02\",\"orders_created\":2,"
           "\"orders_paid\":1,\"orders_cancelled\":1,\"revenue_cents\":1000},{\"date\":\"2026-01-03\","
           "\"orders_created\":0,\"orders_paid\":0,\"orders_cancelled\":1,\"revenue_cents\":-1000}]}");
    expect(DAILY, "2026-01-02",
           "{\"days\":[{\"date\":\"2026-01-01\",\"orders_created\":1,\"orders_paid\":1,"
           "\"orders_cancelled\":0,\"revenue_cents\":4500},{\"date\":\"2026-01-02\",\"orders_created\":2,"
           "\"orders_paid\":1,\"orders_cancelled\":1,\"revenue_cents\":1000}]}");
    expect(ORDERS, "u1",
           "{\"orders\":[{\"order_id\":\"o3\",\"status\":\"cancelled\",\"amount_cents\":1000,\"item_count\":1,"
           "\"created_at\":\"2026-01-02T23:59:59.000Z\"},{\"order_id\":\"o2\",\"status\":\"cancelled\","
           "\"amount_cents\":5000,\"item_count\":1,\"created_at\":\"2026-01-02T23:59:59.000Z\"},"
           "{\"order_id\":\"o1\",\"status\":\"delivered\",\"amount_cents\":4500,\"item_count\":2,"
           "\"created_at\":\"2026-01-01T10:00:00.000Z\"}],\"next_cursor\":null}");

    struct rmodel_txn *t;
    uint64_t pos, n;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    ck_assert_int_eq(rmodel_position(t, &pos), 0);
    ck_assert_uint_eq(pos, 15);
    ck_assert_int_eq(rmodel_dlq_count(t, &n), 0);
    ck_assert_uint_eq(n, 0);
    rmodel_txn_abort(t);
}
END_TEST

START_TEST(test_vip_and_category_tie)
{
    seed_catalog();
    FOLD_OK("item-C", 1, "ItemAdded", 1, D1,
            "{\"item_id\":\"C\",\"name\":\"Lamp\",\"category\":\"home\",\"price_cents\":100000}");
    FOLD_OK("item-C", 2, "ItemRestocked", 1, D1, "{\"item_id\":\"C\",\"quantity\":5,\"available\":5}");
    FOLD_OK("user-u2", 1, "UserRegistered", 1, D1, "{\"user_id\":\"u2\",\"name\":\"Bo\"}");
    FOLD_OK("user-u2", 2, "FundsDeposited", 1, D1,
            "{\"user_id\":\"u2\",\"amount_cents\":300000,\"balance_cents\":300000}");
    /* No orders: null last_order_at and preferred_category, average 0. */
    expect(USER, "u2",
           "{\"user_id\":\"u2\",\"name\":\"Bo\",\"wallet_balance_cents\":300000,\"order_count\":0,"
           "\"total_spent_cents\":0,\"avg_order_value_cents\":0,\"last_order_at\":null,"
           "\"preferred_category\":null,\"vip\":false}");
    FOLD_OK("order-o5", 1, "OrderCreated", 2, D2,
            "{\"order_id\":\"o5\",\"user_id\":\"u2\",\"lines\":["
            "{\"item_id\":\"C\",\"name\":\"Lamp\",\"category\":\"home\",\"quantity\":1,\"price_cents\":100000},"
            "{\"item_id\":\"B\",\"name\":\"Game\",\"category\":\"games\",\"quantity\":1,\"price_cents\":2500}],"
            "\"amount_cents\":102500}");
    /* Created, not paid: placed (order_count 1, categories count) but not spent. */
    expect(USER, "u2",
           "{\"user_id\":\"u2\",\"name\":\"Bo\",\"wallet_balance_cents\":300000,\"order_count\":1,"
           "\"total_spent_cents\":0,\"avg_order_value_cents\":0,\"last_order_at\":\"2026-01-02T23:59:59.000Z\","
           "\"preferred_category\":\"games\",\"vip\":false}");
    FOLD_OK("order-o5", 2, "PaymentProcessed", 1, D2,
            "{\"order_id\":\"o5\",\"user_id\":\"u2\",\"amount_cents\":102500,\"balance_cents\":197500}");
    expect(USER, "u2",
           "{\"user_id\":\"u2\",\"name\":\"Bo\",\"wallet_balance_cents\":197500,\"order_count\":1,"
           "\"total_spent_cents\":102500,\"avg_order_value_cents\":102500,"
           "\"last_order_at\":\"2026-01-02T23:59:59.000Z\",\"preferred_category\":\"games\",\"vip\":true}");
    /* Exactly 100000 spent is VIP. */
    FOLD_OK("user-u3", 1, "UserRegistered", 1, D1, "{\"user_id\":\"u3\",\"name\":\"Cy\",\"email\":\"c@x\"}");
    FOLD_OK("user-u3", 2, "FundsDeposited", 1, D1,
            "{\"user_id\":\"u3\",\"amount_cents\":100000,\"balance_cents\":100000}");
    FOLD_OK("order-o6", 1, "OrderCreated", 2, D3,
            "{\"order_id\":\"o6\",\"user_id\":\"u3\",\"lines\":[{\"item_id\":\"C\",\"name\":\"Lamp\","
            "\"category\":\"home\",\"quantity\":1,\"price_cents\":100000}],\"amount_cents\":100000}");
    FOLD_OK("order-o6", 2, "PaymentProcessed", 1, D3,
            "{\"order_id\":\"o6\",\"user_id\":\"u3\",\"amount_cents\":100000,\"balance_cents\":0}");
    expect(USER, "u3",
           "{\"user_id\":\"u3\",\"name\":\"Cy\",\"wallet_balance_cents\":0,\"order_count\":1,"
           "\"total_spent_cents\":100000,\"avg_order_value_cents\":100000,"
           "\"last_order_at\":\"2026-01-03T00:00:01.000Z\",\"preferred_category\":\"home\",\"vip\":true}");
}
END_TEST

static void create_order(const char *user, int i)
{
    char stream[64], data[512];
    snprintf(stream, sizeof stream, "order-%s-%03d", user, i);
    snprintf(data, sizeof data,
             "{\"order_id\":\"%s-%03d\",\"user_id\":\"%s\",\"lines\":[{\"item_id\":\"A\",\"name\":"
             "\"Book\",\"category\":\"books\",\"quantity\":1,\"price_cents\":1000}],\"amount_cents\":1000}",
             user, i, user);
    FOLD_OK(stream, 1, "OrderCreated", 2, D1 + i, data);
}

/* Reads one page; returns the cursor ("" at the end) and appends the ids to seen. */
static void read_page(const char *user, unsigned limit, char *cursor, struct sbuf *seen)
{
    struct rmodel_txn *t;
    struct sbuf out = SBUF_INIT;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    uint64_t c = cursor[0] ? strtoull(cursor, NULL, 10) : 0;
    ck_assert_int_eq(rmodel_render_user_orders(t, user, strlen(user), limit, c, &out), 0);
    rmodel_txn_abort(t);
    const char *p = sbuf_str(&out);
    unsigned n = 0;
    while ((p = strstr(p, "\"order_id\":\"")) != NULL) {
        p += 12;
        const char *e = strchr(p, '"');
        sbuf_append(seen, p, (size_t)(e - p));
        sbuf_putc(seen, ' ');
        n++;
    }
    ck_assert_uint_le(n, limit);
    const char *nc = strstr(sbuf_str(&out), "\"next_cursor\":");
    ck_assert_ptr_nonnull(nc);
    nc += 14;
    if (strncmp(nc, "null", 4) == 0) {
        cursor[0] = '\0';
    } else {
        ck_assert_uint_eq(n, limit);
        ck_assert_int_eq(sscanf(nc, "\"%20[0-9]\"", cursor), 1);
    }
    sbuf_free(&out);
}

START_TEST(test_pagination_stable_while_adding)
{
    seed_catalog();
    for (int i = 1; i <= 25; i++)
        create_order("u1", i);
    struct sbuf seen = SBUF_INIT;
    char cursor[32] = "";
    int pages = 0;
    do {
        read_page("u1", 10, cursor, &seen);
        create_order("u1", 100 + pages); /* a newer order arrives between pages */
        pages++;
    } while (cursor[0] && pages < 10);
    ck_assert_int_eq(pages, 3);
    /* Newest first, every order of the first snapshot exactly once, none of the new ones
     * after the first page (they are newer than the cursor). */
    struct sbuf want = SBUF_INIT;
    for (int i = 25; i >= 1; i--)
        sbuf_printf(&want, "u1-%03d ", i);
    ck_assert_str_eq(sbuf_str(&seen), sbuf_str(&want));
    sbuf_free(&seen);
    sbuf_free(&want);
    /* Limit validation happens in the caller; an unknown user is not found. */
    struct rmodel_txn *t;
    struct sbuf out = SBUF_INIT;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    ck_assert_int_eq(rmodel_render_user_orders(t, "nobody", 6, 10, 0, &out), RMODEL_ENOTFOUND);
    rmodel_txn_abort(t);
    sbuf_free(&out);
}
END_TEST

START_TEST(test_as_of_each_position)
{
    lifecycle_to_payment();
    lifecycle_rest();
    /* o1's stream: created@7, paid@8, shipped@14, delivered@15. */
    static const char *const status[] = { "created", "paid", "shipped", "delivered" };
    struct rmodel_txn *t;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    struct rmodel_loc locs[8];
    size_t n;
    int more;
    ck_assert_int_eq(rmodel_stream_locs(t, "order-o1", 8, 1, locs, 8, &n, &more), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(more, 0);
    ck_assert_uint_eq(locs[0].position, 7);
    ck_assert_uint_eq(locs[3].position, 15);
    ck_assert_uint_eq(locs[3].offset, 15 * 256);
    struct rmodel_loc pl;
    ck_assert_int_eq(rmodel_position_loc(t, 8, &pl), 0);
    ck_assert_uint_eq(pl.offset, 8 * 256);
    ck_assert_int_eq(rmodel_position_loc(t, 99, &pl), RMODEL_ENOTFOUND);
    ck_assert_int_eq(rmodel_stream_locs(t, "order-none", 10, 1, locs, 8, &n, &more), RMODEL_ENOTFOUND);
    rmodel_txn_abort(t);

    struct log_record recs[4];
    next_pos = 7;
    recs[0] = mkrec("order-o1", 1, "OrderCreated", 2, D1, O1_CREATED);
    recs[1] = mkrec("order-o1", 2, "PaymentProcessed", 1, D1,
                    "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"amount_cents\":4500,\"balance_cents\":1}");
    recs[2] = mkrec("order-o1", 3, "OrderShipped", 1, D3, "{\"order_id\":\"o1\"}");
    recs[3] = mkrec("order-o1", 4, "OrderDelivered", 1, D3, "{\"order_id\":\"o1\"}");
    recs[1].position = 8, recs[2].position = 14, recs[3].position = 15;
    for (int upto = 0; upto <= 4; upto++) {
        ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
        struct rmodel_asof *a = rmodel_asof_new();
        for (int i = 0; i < upto; i++)
            ck_assert_int_eq(rmodel_asof_apply(t, a, &recs[i]), 0);
        struct sbuf out = SBUF_INIT;
        uint64_t version = 0;
        int rc = rmodel_asof_render(a, &out, &version);
        if (upto == 0) {
            ck_assert_int_eq(rc, RMODEL_ENOTFOUND);
        } else {
            ck_assert_int_eq(rc, 0);
            ck_assert_uint_eq(version, (uint64_t)upto);
            char want[64];
            snprintf(want, sizeof want, "\"status\":\"%s\"", status[upto - 1]);
            ck_assert_ptr_nonnull(strstr(sbuf_str(&out), want));
            ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "\"order_id\":\"o1\""));
            ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "\"amount_cents\":4500"));
        }
        sbuf_free(&out);
        rmodel_asof_free(a);
        rmodel_txn_abort(t);
    }
}
END_TEST

START_TEST(test_dead_letters_and_retry)
{
    seed_catalog();
    /* 7: unknown type; 8: unknown schema; 9: missing field; 10: unknown order; 11: ok */
    ck_assert_int_eq(fold("user-u1", 3, "UserRenamed", 1, D1, "{\"user_id\":\"u1\"}"), 1);
    ck_assert_int_eq(fold("order-x", 1, "OrderCreated", 3, D1, O1_CREATED), 1);
    ck_assert_int_eq(fold("user-u1", 4, "FundsDeposited", 1, D1, "{\"user_id\":\"u1\"}"), 1);
    ck_assert_int_eq(fold("order-zz", 1, "OrderShipped", 1, D1, "{\"order_id\":\"zz\"}"), 1);
    FOLD_OK("user-u1", 5, "FundsDeposited", 1, D1,
            "{\"user_id\":\"u1\",\"amount_cents\":5,\"balance_cents\":200005}");
    /* A shipped order that is only created is an impossible transition. */
    FOLD_OK("order-o1", 1, "OrderCreated", 2, D1, O1_CREATED);
    ck_assert_int_eq(fold("order-o1", 2, "OrderShipped", 1, D1, "{\"order_id\":\"o1\"}"), 1);
    expect(ITEM, "A",
           "{\"item_id\":\"A\",\"name\":\"Book\",\"category\":\"books\",\"price_cents\":1000,"
           "\"available\":8,\"reserved\":2,\"sold\":0}");

    struct rmodel_txn *t;
    uint64_t n, pos, seg, off;
    struct sbuf out = SBUF_INIT;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    ck_assert_int_eq(rmodel_dlq_count(t, &n), 0);
    ck_assert_uint_eq(n, 5);
    ck_assert_int_eq(rmodel_dlq_get(t, 2, &pos, &seg, &off), 0);
    ck_assert_uint_eq(pos, 8);
    ck_assert_int_eq(rmodel_dlq_render(t, &out), 0);
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "\"id\":1,\"position\":7,\"projection\":\"read_model\","
                                                 "\"reason\":\"unknown event type UserRenamed\""));
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "unknown schema_version 3 for OrderCreated"));
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "unknown order zz"));
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "OrderShipped on order o1 in status created"));
    rmodel_txn_abort(t);
    sbuf_free(&out);

    /* Retry: the order now exists, so "zz" still fails; drop it. Then the shipment of o1
     * after a payment applies on retry. */
    FOLD_OK("order-o1", 3, "PaymentProcessed", 1, D1,
            "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"amount_cents\":4500,\"balance_cents\":1}");
    next_pos = 13;
    struct log_record ship = mkrec("order-o1", 2, "OrderShipped", 1, D1, "{\"order_id\":\"o1\"}");
    next_pos = 10;
    struct log_record zz = mkrec("order-zz", 1, "OrderShipped", 1, D1, "{\"order_id\":\"zz\"}");
    ck_assert_int_eq(rmodel_txn_begin(env, 0, &t), 0);
    ck_assert_int_eq(rmodel_dlq_retry(t, 4, &zz), 1);
    ck_assert_int_eq(rmodel_dlq_retry(t, 4, &ship), RMODEL_EBADARG); /* not the letter's record */
    ck_assert_int_eq(rmodel_dlq_retry(t, 5, &ship), 0);
    ck_assert_int_eq(rmodel_dlq_drop(t, 4), 0);
    ck_assert_int_eq(rmodel_dlq_drop(t, 4), RMODEL_ENOTFOUND);
    ck_assert_int_eq(rmodel_dlq_count(t, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(rmodel_txn_commit(t), 0);
    expect(ITEM, "A",
           "{\"item_id\":\"A\",\"name\":\"Book\",\"category\":\"books\",\"price_cents\":1000,"
           "\"available\":8,\"reserved\":0,\"sold\":2}");
}
END_TEST

START_TEST(test_upcast_order_created_v1)
{
    seed_catalog();
    /* Schema 1 lines carry only item_id and quantity. */
    FOLD_OK("order-old", 1, "OrderCreated", 1, D1,
            "{\"order_id\":\"old\",\"user_id\":\"u1\",\"lines\":[{\"item_id\":\"B\",\"quantity\":1},"
            "{\"item_id\":\"A\",\"quantity\":3}],\"amount_cents\":5500}");
    FOLD_OK("order-new", 1, "OrderCreated", 2, D2, O1_CREATED);
    expect(ORDER, "old",
           "{\"order_id\":\"old\",\"user_id\":\"u1\",\"status\":\"created\",\"items\":["
           "{\"item_id\":\"B\",\"name\":\"Game\",\"quantity\":1,\"price_cents\":2500},"
           "{\"item_id\":\"A\",\"name\":\"Book\",\"quantity\":3,\"price_cents\":1000}],"
           "\"amount_cents\":5500,\"created_at\":\"2026-01-01T10:00:00.000Z\","
           "\"updated_at\":\"2026-01-01T10:00:00.000Z\",\"version\":1}");
    /* The upcast category counts for the user: books 3 + 2, games 1 + 1. */
    expect(USER, "u1",
           "{\"user_id\":\"u1\",\"name\":\"Ann\",\"wallet_balance_cents\":200000,\"order_count\":2,"
           "\"total_spent_cents\":0,\"avg_order_value_cents\":0,"
           "\"last_order_at\":\"2026-01-02T23:59:59.000Z\",\"preferred_category\":\"books\",\"vip\":false}");
    expect(ITEM, "A",
           "{\"item_id\":\"A\",\"name\":\"Book\",\"category\":\"books\",\"price_cents\":1000,"
           "\"available\":5,\"reserved\":5,\"sold\":0}");
    /* A v1 order naming an unknown item cannot be upcast: dead letter, nothing applied. */
    ck_assert_int_eq(fold("order-bad", 1, "OrderCreated", 1, D1,
                          "{\"order_id\":\"bad\",\"user_id\":\"u1\",\"lines\":[{\"item_id\":\"A\","
                          "\"quantity\":1},{\"item_id\":\"Q\",\"quantity\":1}],\"amount_cents\":1}"),
                     1);
    expect(ITEM, "A",
           "{\"item_id\":\"A\",\"name\":\"Book\",\"category\":\"books\",\"price_cents\":1000,"
           "\"available\":5,\"reserved\":5,\"sold\":0}");
}
END_TEST

START_TEST(test_dlq_retry_after_upgrade)
{
    seed_catalog();
    /* An OrderCreated of a schema this build does not know: dead letter, folding goes on. */
    ck_assert_int_eq(fold("order-o1", 1, "OrderCreated", 3, D1, O1_CREATED), 1);
    FOLD_OK("user-u1", 3, "FundsDeposited", 1, D1,
            "{\"user_id\":\"u1\",\"amount_cents\":1,\"balance_cents\":200001}");
    struct rmodel_txn *t;
    struct sbuf out = SBUF_INIT;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    ck_assert_int_eq(rmodel_render_order(t, "o1", 2, &out, &(uint64_t){ 0 }), RMODEL_ENOTFOUND);
    rmodel_txn_abort(t);
    /* "Upgrade": schema 3 becomes known; the retry applies it and removes the letter. */
    next_pos = 7;
    struct log_record r = mkrec("order-o1", 1, "OrderCreated", 3, D1, O1_CREATED);
    int old = rmodel_ev_set_max_schema(EV_ORDER_CREATED, 3);
    ck_assert_int_eq(rmodel_txn_begin(env, 0, &t), 0);
    int rc = rmodel_dlq_retry(t, 1, &r);
    rmodel_ev_set_max_schema(EV_ORDER_CREATED, old);
    ck_assert_int_eq(rc, 0);
    uint64_t n;
    ck_assert_int_eq(rmodel_dlq_count(t, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(rmodel_txn_commit(t), 0);
    expect(ITEM, "A",
           "{\"item_id\":\"A\",\"name\":\"Book\",\"category\":\"books\",\"price_cents\":1000,"
           "\"available\":8,\"reserved\":2,\"sold\":0}");
    sbuf_free(&out);
}
END_TEST

/* Renders like expect() and checks that the answer contains want. */
static void expect_has(enum what w, const char *id, const char *want)
{
    struct rmodel_txn *t;
    struct sbuf out = SBUF_INIT;
    uint64_t version = 0;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    int rc = -1;
    switch (w) {
    case USER: rc = rmodel_render_user(t, id, strlen(id), &out); break;
    case ITEM: rc = rmodel_render_item(t, id, strlen(id), &out); break;
    case ORDER: rc = rmodel_render_order(t, id, strlen(id), &out, &version); break;
    case DAILY: rc = rmodel_render_daily(t, "2026-01-01", id, &out); break;
    case ORDERS: rc = rmodel_render_user_orders(t, id, strlen(id), 100, 0, &out); break;
    }
    rmodel_txn_abort(t);
    ck_assert_msg(rc == 0, "render %s: %s", id, rmodel_strerror(rc));
    ck_assert_msg(strstr(sbuf_str(&out), want), "%s lacks %s", sbuf_str(&out), want);
    sbuf_free(&out);
}

#define MAXS "9223372036854775807"

/* A log an older build could have written (nothing refused these amounts then): every
 * sum that would leave 64 bits makes its event a dead letter, applied not at all (the
 * user, the items, the categories and the day keep their values), and folding goes on. */
START_TEST(test_money_overflow_dead_letters)
{
    FOLD_OK("user-u1", 1, "UserRegistered", 1, D1, "{\"user_id\":\"u1\",\"name\":\"Ann\",\"email\":null}");
    FOLD_OK("user-u1", 2, "FundsDeposited", 1, D1,
            "{\"user_id\":\"u1\",\"amount_cents\":" MAXS ",\"balance_cents\":" MAXS "}");
    /* 3: the balance would pass INT64_MAX */
    ck_assert_int_eq(fold("user-u1", 3, "FundsDeposited", 1, D1,
                          "{\"user_id\":\"u1\",\"amount_cents\":1,\"balance_cents\":0}"), 1);
    expect_has(USER, "u1", "\"wallet_balance_cents\":" MAXS ",");
    FOLD_OK("item-X", 1, "ItemAdded", 1, D1,
            "{\"item_id\":\"X\",\"name\":\"Gold\",\"category\":\"metal\",\"price_cents\":" MAXS "}");
    FOLD_OK("item-X", 2, "ItemRestocked", 1, D1, "{\"item_id\":\"X\",\"quantity\":2,\"available\":2}");
    /* 7: the restocked count would pass INT64_MAX */
    ck_assert_int_eq(fold("item-X", 3, "ItemRestocked", 1, D1,
                          "{\"item_id\":\"X\",\"quantity\":" MAXS ",\"available\":0}"), 1);
    expect_has(ITEM, "X", "\"available\":2,\"reserved\":0,");
    FOLD_OK("order-o1", 1, "OrderCreated", 2, D1,
            "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"lines\":[{\"item_id\":\"X\",\"name\":\"Gold\","
            "\"category\":\"metal\",\"quantity\":1,\"price_cents\":" MAXS "}],\"amount_cents\":" MAXS "}");
    FOLD_OK("order-o1", 2, "PaymentProcessed", 1, D1,
            "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"amount_cents\":" MAXS ",\"balance_cents\":0}");
    expect_has(USER, "u1", "\"total_spent_cents\":" MAXS ",\"avg_order_value_cents\":" MAXS ",");
    FOLD_OK("order-o2", 1, "OrderCreated", 2, D1,
            "{\"order_id\":\"o2\",\"user_id\":\"u1\",\"lines\":[{\"item_id\":\"X\",\"name\":\"Gold\","
            "\"category\":\"metal\",\"quantity\":1,\"price_cents\":1}],\"amount_cents\":1}");
    /* 12: the user's total spent (and the day's revenue) would pass INT64_MAX */
    ck_assert_int_eq(fold("order-o2", 2, "PaymentProcessed", 1, D1,
                          "{\"order_id\":\"o2\",\"user_id\":\"u1\",\"amount_cents\":1,\"balance_cents\":4}"), 1);
    expect_has(USER, "u1", "\"wallet_balance_cents\":0,\"order_count\":2,\"total_spent_cents\":" MAXS ",");
    expect_has(ORDER, "o2", "\"status\":\"created\"");
    expect_has(DAILY, "2026-01-01", "\"orders_created\":2,\"orders_paid\":1,\"orders_cancelled\":0,"
                                    "\"revenue_cents\":" MAXS "}");
    /* 13: a refund of -INT64_MAX: the day's revenue minus it would overflow. */
    ck_assert_int_eq(fold("order-o2", 2, "OrderCancelled", 1, D1,
                          "{\"order_id\":\"o2\",\"user_id\":\"u1\",\"reason\":null,"
                          "\"refunded_cents\":-9223372036854775807,\"previous_status\":\"created\"}"), 1);
    expect_has(ITEM, "X", "\"available\":0,\"reserved\":2,\"sold\":0");
    expect_has(USER, "u1", "\"wallet_balance_cents\":0,\"order_count\":2,");
    /* 14: a line of a huge quantity: the reserved count would overflow. */
    ck_assert_int_eq(fold("order-o3", 1, "OrderCreated", 2, D1,
                          "{\"order_id\":\"o3\",\"user_id\":\"u1\",\"lines\":[{\"item_id\":\"X\",\"name\":\"Gold\","
                          "\"category\":\"metal\",\"quantity\":" MAXS ",\"price_cents\":1}],\"amount_cents\":1}"), 1);
    expect_has(ITEM, "X", "\"reserved\":2,");
    /* The cancellation of the paid maximal order brings the day back to 0 exactly. */
    FOLD_OK("order-o1", 3, "OrderCancelled", 1, D1,
            "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"reason\":null,\"refunded_cents\":" MAXS ","
            "\"previous_status\":\"paid\"}");
    expect_has(DAILY, "2026-01-01", "\"orders_cancelled\":1,\"revenue_cents\":0}");
    expect_has(USER, "u1", "\"wallet_balance_cents\":" MAXS ",\"order_count\":1,\"total_spent_cents\":0,"
                           "\"avg_order_value_cents\":0,");

    struct rmodel_txn *t;
    uint64_t n;
    struct sbuf out = SBUF_INIT;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    ck_assert_int_eq(rmodel_dlq_count(t, &n), 0);
    ck_assert_uint_eq(n, 5);
    ck_assert_int_eq(rmodel_dlq_render(t, &out), 0);
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "the wallet balance would overflow"));
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "the item's restocked count would overflow"));
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "the user's total spent would overflow"));
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "the day's revenue would overflow"));
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "an item's reserved count would overflow"));
    rmodel_txn_abort(t);
    sbuf_free(&out);
}
END_TEST

/* A live write txn's row cache keeps rows across commits, and past 32 768 rows keeps only
 * users, items and counters (orders go). 40 000 orders of one user, folded 1 000 per txn,
 * take it past that limit: every count must still add up (a kept row that lost its newest
 * value would make the next txn's fold start from a stale one), and an order created before
 * the limit, dropped from the cache, must still be found when it is paid. */
START_TEST(test_rows_kept_past_the_cache_limit)
{
    seed_catalog();
    FOLD_OK("item-A", 3, "ItemRestocked", 1, D1, "{\"item_id\":\"A\",\"quantity\":100000,\"available\":100010}");
    enum { ORDERS_N = 40000, PER_TXN = 1000 };
    char stream[32], data[400];
    for (int done = 0; done < ORDERS_N;) {
        struct rmodel_txn *t;
        ck_assert_int_eq(rmodel_txn_begin(env, 0, &t), 0);
        for (int j = 0; j < PER_TXN; j++, done++) {
            snprintf(stream, sizeof stream, "order-k%d", done);
            snprintf(data, sizeof data,
                     "{\"order_id\":\"k%d\",\"user_id\":\"u1\",\"lines\":[{\"item_id\":\"A\",\"name\":"
                     "\"Book\",\"category\":\"books\",\"quantity\":1,\"price_cents\":1}],\"amount_cents\":1}",
                     done);
            struct log_record r = mkrec(stream, 1, "OrderCreated", 2, D1, data);
            ck_assert_int_eq(rmodel_fold(t, &r), 0);
        }
        ck_assert_int_eq(rmodel_set_position(t, next_pos - 1), 0);
        ck_assert_int_eq(rmodel_txn_commit(t), 0);
    }
    FOLD_OK("order-k7", 2, "PaymentProcessed", 1, D1,
            "{\"order_id\":\"k7\",\"user_id\":\"u1\",\"amount_cents\":1,\"balance_cents\":199999}");
    FOLD_OK("order-k39999", 2, "PaymentProcessed", 1, D1,
            "{\"order_id\":\"k39999\",\"user_id\":\"u1\",\"amount_cents\":1,\"balance_cents\":199998}");
    expect(USER, "u1",
           "{\"user_id\":\"u1\",\"name\":\"Ann\",\"wallet_balance_cents\":199998,\"order_count\":40000,"
           "\"total_spent_cents\":2,\"avg_order_value_cents\":1,"
           "\"last_order_at\":\"2026-01-01T10:00:00.000Z\",\"preferred_category\":\"books\",\"vip\":false}");
    expect(ITEM, "A",
           "{\"item_id\":\"A\",\"name\":\"Book\",\"category\":\"books\",\"price_cents\":1000,"
           "\"available\":60010,\"reserved\":40000,\"sold\":0}");
    expect(ITEM, "B",
           "{\"item_id\":\"B\",\"name\":\"Game\",\"category\":\"games\",\"price_cents\":2500,"
           "\"available\":5,\"reserved\":0,\"sold\":0}");
    struct sbuf out = SBUF_INIT;
    struct rmodel_txn *t;
    uint64_t version = 0;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    ck_assert_int_eq(rmodel_render_order(t, "k7", 2, &out, &version), 0);
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "\"status\":\"paid\""));
    ck_assert_uint_eq(version, 2);
    rmodel_txn_abort(t);
    sbuf_free(&out);
}
END_TEST

/* Where deposit_versions puts the record at position p when asked to: segments of 50
 * records, offsets growing by 100 + p % 7, and a gap in the segments' numbers. */
static struct rmodel_ploc loc_of(uint64_t p)
{
    uint64_t seg = p / 50 < 3 ? 1 + p / 50 : 1000 + p / 50;
    return (struct rmodel_ploc){ seg, 64 + (p % 50) * 107 + p % 7 };
}

/* Deposits to user u1 with versions from..to, per_txn records a transaction; pos[v] gets
 * each version's position (pos may be NULL). With loc, each record is where loc_of says
 * and loc[position] is set to it (else mkrec's segment 1, offset position * 256). */
static void deposit_versions(uint64_t from, uint64_t to, int per_txn, uint64_t *pos, struct rmodel_ploc *loc)
{
    char data[200];
    uint64_t v = from;
    while (v <= to) {
        struct rmodel_txn *t;
        ck_assert_int_eq(rmodel_txn_begin(env, 0, &t), 0);
        for (int j = 0; j < per_txn && v <= to; j++, v++) {
            snprintf(data, sizeof data, "{\"user_id\":\"u1\",\"amount_cents\":1,\"balance_cents\":%llu}",
                     (unsigned long long)(200000 + v - 2));
            struct log_record r = mkrec("user-u1", v, "FundsDeposited", 1, D1, data);
            if (pos)
                pos[v] = r.position;
            if (loc) {
                loc[r.position] = loc_of(r.position);
                r.segment = loc[r.position].segment;
                r.offset = loc[r.position].offset;
            }
            ck_assert_int_eq(rmodel_fold(t, &r), 0);
        }
        ck_assert_int_eq(rmodel_set_position(t, next_pos - 1), 0);
        ck_assert_int_eq(rmodel_txn_commit(t), 0);
    }
}

/* The rows of the stream index whose key starts with stream NUL. */
static size_t stream_rows(const char *stream)
{
    struct rmodel_txn *t;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    MDB_cursor *c;
    ck_assert_int_eq(mdb_cursor_open(t->txn, env->dbi[RMODEL_DB_STREAMS], &c), 0);
    size_t len = strlen(stream) + 1, n = 0;
    MDB_val k = { len, (void *)stream }, v;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && k.mv_size == len + 8 &&
                                                             memcmp(k.mv_data, stream, len) == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        n++;
    mdb_cursor_close(c);
    rmodel_txn_abort(t);
    return n;
}

/* Checks rmodel_stream_locs(stream, from, max): versions from.. (those pos[] has) in order. */
static void expect_locs(const char *stream, uint64_t from, size_t max, const uint64_t *pos, uint64_t last,
                        size_t want_n, int want_more)
{
    struct rmodel_txn *t;
    struct rmodel_loc locs[128];
    size_t n;
    int more;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    ck_assert_int_eq(rmodel_stream_locs(t, stream, strlen(stream), from, locs, max, &n, &more), 0);
    rmodel_txn_abort(t);
    ck_assert_uint_eq(n, want_n);
    ck_assert_int_eq(more, want_more);
    uint64_t v = from;
    for (size_t i = 0; i < n; i++, v++) {
        while (v <= last && pos[v] == 0)
            v++;
        ck_assert_uint_eq(locs[i].version, v);
        ck_assert_uint_eq(locs[i].position, pos[v]);
        ck_assert_uint_eq(locs[i].segment, 1);
        ck_assert_uint_eq(locs[i].offset, pos[v] * 256);
    }
}

/* The stream index holds a row per RMODEL_STREAM_CHUNK versions, merged across transactions
 * and within one; readers get every version in order from any starting point. */
START_TEST(test_stream_index_rows)
{
    uint64_t pos[80] = { 0 };
    seed_catalog(); /* user-u1 versions 1 and 2 at positions 1 and 2 */
    pos[1] = 1;
    pos[2] = 2;
    deposit_versions(3, 20, 1, pos, NULL);  /* one record per txn: each merges into the row */
    deposit_versions(21, 70, 17, pos, NULL); /* across the rows' bounds within txns */
    ck_assert_uint_eq(stream_rows("user-u1"), 3); /* versions 1-32, 33-64, 65-70 */
    expect_locs("user-u1", 1, 128, pos, 70, 70, 0);
    expect_locs("user-u1", 33, 128, pos, 70, 38, 0);
    expect_locs("user-u1", 40, 5, pos, 70, 5, 1);
    expect_locs("user-u1", 64, 2, pos, 70, 2, 1);
    expect_locs("user-u1", 70, 1, pos, 70, 1, 0);
    struct rmodel_txn *t;
    struct rmodel_loc locs[4];
    size_t n;
    int more;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    ck_assert_int_eq(rmodel_stream_locs(t, "user-u1", 7, 71, locs, 4, &n, &more), RMODEL_ENOTFOUND);
    ck_assert_int_eq(rmodel_stream_locs(t, "user-u", 6, 1, locs, 4, &n, &more), RMODEL_ENOTFOUND);
    ck_assert_int_eq(rmodel_stream_locs(t, "user-u1", 7, 1, locs, 0, &n, &more), RMODEL_EBADARG);
    rmodel_txn_abort(t);
    /* A write txn reads its own entries (the buffered ones are merged first). */
    ck_assert_int_eq(rmodel_txn_begin(env, 0, &t), 0);
    struct log_record r = mkrec("user-u1", 71, "FundsDeposited", 1, D1,
                                "{\"user_id\":\"u1\",\"amount_cents\":1,\"balance_cents\":200069}");
    ck_assert_int_eq(rmodel_fold(t, &r), 0);
    ck_assert_int_eq(rmodel_stream_locs(t, "user-u1", 7, 70, locs, 4, &n, &more), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(locs[1].version, 71);
    ck_assert_uint_eq(locs[1].position, r.position);
    rmodel_txn_abort(t);
}
END_TEST

/* A log the write side would never write: a version missing and one seen twice. The
 * index keeps the gap and the later record of the version, in the same txn or not. */
START_TEST(test_stream_index_gap_and_repeat)
{
    uint64_t pos[8] = { 0 };
    seed_catalog();
    pos[1] = 1;
    pos[2] = 2;
    deposit_versions(4, 4, 1, pos, NULL); /* no version 3 */
    deposit_versions(2, 2, 1, pos, NULL); /* version 2 again, later in the log */
    ck_assert_uint_gt(pos[2], pos[4]);
    expect_locs("user-u1", 1, 8, pos, 4, 3, 0);
    deposit_versions(5, 5, 1, pos, NULL);
    uint64_t again[8];
    memcpy(again, pos, sizeof again);
    deposit_versions(5, 5, 1, again, NULL); /* twice in one txn below */
    struct rmodel_txn *t;
    ck_assert_int_eq(rmodel_txn_begin(env, 0, &t), 0);
    struct log_record a = mkrec("user-u1", 6, "FundsDeposited", 1, D1,
                                "{\"user_id\":\"u1\",\"amount_cents\":1,\"balance_cents\":1}");
    struct log_record b = mkrec("user-u1", 6, "FundsDeposited", 1, D1,
                                "{\"user_id\":\"u1\",\"amount_cents\":1,\"balance_cents\":1}");
    ck_assert_int_ge(rmodel_fold(t, &a), 0);
    ck_assert_int_ge(rmodel_fold(t, &b), 0);
    ck_assert_int_eq(rmodel_set_position(t, b.position), 0);
    ck_assert_int_eq(rmodel_txn_commit(t), 0);
    again[6] = b.position;
    expect_locs("user-u1", 1, 8, again, 6, 5, 0);
}
END_TEST

/* The row codec refuses what the fold never writes. */
START_TEST(test_stream_row_codec)
{
    uint64_t pos[RMODEL_STREAM_CHUNK] = { 0 };
    struct sbuf sb = SBUF_INIT;
    rmodel_stream_entry(&sb, 31, 9);
    ck_assert_int_eq(rmodel_stream_merge(sb.data, sb.len, 0, pos), 0);
    ck_assert_uint_eq(pos[31], 9);
    ck_assert_int_eq(rmodel_stream_merge(sb.data, sb.len, 1, pos), RMODEL_EFORMAT); /* no version byte */
    ck_assert_int_eq(rmodel_stream_merge(sb.data, sb.len - 1, 0, pos), RMODEL_EFORMAT); /* torn */
    ((unsigned char *)sb.data)[0] = RMODEL_STREAM_CHUNK;
    ck_assert_int_eq(rmodel_stream_merge(sb.data, sb.len, 0, pos), RMODEL_EFORMAT); /* slot */
    ck_assert_int_eq(rmodel_stream_merge("\0\0", 2, 0, pos), RMODEL_EFORMAT); /* position 0 */
    ck_assert_int_eq(rmodel_stream_merge("\0", 1, 0, pos), RMODEL_EFORMAT); /* a slot alone */
    ck_assert_int_eq(rmodel_stream_merge("\0\x81", 2, 0, pos), RMODEL_EFORMAT); /* a torn varint */
    ck_assert_int_eq(rmodel_stream_merge("\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\3", 11, 0, pos),
                     RMODEL_EFORMAT); /* more than 64 bits */
    ck_assert_int_eq(rmodel_stream_merge("", 0, 1, pos), RMODEL_EFORMAT);
    ck_assert_int_eq(rmodel_stream_merge("\1\0\1", 3, 1, pos), RMODEL_EFORMAT); /* format 3's row */
    memset(pos, 0, sizeof pos);
    pos[3] = 7;
    pos[0] = 5;
    pos[31] = UINT64_MAX;
    rmodel_stream_encode(pos, &sb);
    ck_assert_uint_eq(sb.len, 1 + 2 + 2 + 1 + 10); /* version, two entries of a byte, one of ten */
    uint64_t back[RMODEL_STREAM_CHUNK] = { 0 };
    ck_assert_int_eq(rmodel_stream_merge(sb.data, sb.len, 1, back), 0);
    ck_assert_mem_eq(back, pos, sizeof pos);
    uint64_t first, slot;
    rmodel_stream_chunk(1, &first, &slot);
    ck_assert(first == 1 && slot == 0);
    rmodel_stream_chunk(32, &first, &slot);
    ck_assert(first == 1 && slot == 31);
    rmodel_stream_chunk(33, &first, &slot);
    ck_assert(first == 33 && slot == 0);
    sbuf_free(&sb);
}
END_TEST

static size_t position_rows(void)
{
    struct rmodel_txn *t;
    MDB_stat st;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    ck_assert_int_eq(mdb_stat(t->txn, env->dbi[RMODEL_DB_POSITIONS], &st), 0);
    rmodel_txn_abort(t);
    return st.ms_entries;
}

/* The position index keeps a row per RMODEL_POS_CHUNK positions, whatever the commits'
 * sizes: each commit continues the last row, and every position is found where it is. */
START_TEST(test_position_index_rows)
{
    static struct rmodel_ploc loc[400];
    seed_catalog(); /* positions 1 and 2 (user-u1 versions 1 and 2) */
    uint64_t seeded = next_pos - 1;
    struct rmodel_txn *t;
    struct rmodel_loc pl;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    for (uint64_t p = 1; p <= seeded; p++) {
        ck_assert_int_eq(rmodel_position_loc(t, p, &pl), 0);
        loc[p] = (struct rmodel_ploc){ pl.segment, pl.offset };
    }
    rmodel_txn_abort(t);
    uint64_t v = 3;
    static const int per_txn[] = { 1, 1, 61, 1, 64, 65, 2, 130, 7 };
    for (size_t i = 0; i < sizeof per_txn / sizeof per_txn[0]; i++) {
        deposit_versions(v, v + (uint64_t)per_txn[i] - 1, per_txn[i], NULL, loc);
        v += (uint64_t)per_txn[i];
    }
    uint64_t last = next_pos - 1; /* 334 */
    ck_assert_uint_eq(position_rows(), (last + RMODEL_POS_CHUNK - 1) / RMODEL_POS_CHUNK);
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    for (uint64_t p = 1; p <= last; p++) {
        ck_assert_int_eq(rmodel_position_loc(t, p, &pl), 0);
        ck_assert_uint_eq(pl.position, p);
        ck_assert_uint_eq(pl.segment, loc[p].segment);
        ck_assert_uint_eq(pl.offset, loc[p].offset);
    }
    ck_assert_int_eq(rmodel_position_loc(t, 0, &pl), RMODEL_ENOTFOUND);
    ck_assert_int_eq(rmodel_position_loc(t, last + 1, &pl), RMODEL_ENOTFOUND); /* in the last row */
    ck_assert_int_eq(rmodel_position_loc(t, last + RMODEL_POS_CHUNK, &pl), RMODEL_ENOTFOUND);
    rmodel_txn_abort(t);
    /* A write txn finds the positions it has not flushed yet. */
    ck_assert_int_eq(rmodel_txn_begin(env, 0, &t), 0);
    struct log_record r = mkrec("user-u1", v, "FundsDeposited", 1, D1,
                                "{\"user_id\":\"u1\",\"amount_cents\":1,\"balance_cents\":200333}");
    r.segment = 7777;
    r.offset = 5;
    ck_assert_int_eq(rmodel_fold(t, &r), 0);
    ck_assert_int_eq(rmodel_position_loc(t, r.position, &pl), 0);
    ck_assert(pl.segment == 7777 && pl.offset == 5);
    ck_assert_int_eq(rmodel_position_loc(t, r.position - 1, &pl), 0);
    ck_assert_uint_eq(pl.offset, loc[r.position - 1].offset);
    rmodel_txn_abort(t);
}
END_TEST

/* decode refuses the value in sb torn at every byte, and with one byte more (appended). */
#define REFUSES_DAMAGE(sb, decode, out)                                                      \
    do {                                                                                     \
        for (size_t n_ = 0; n_ < (sb)->len; n_++)                                            \
            ck_assert_int_eq(decode((sb)->data, n_, out), RMODEL_EFORMAT);                   \
        sbuf_append(sb, "", 1);                                                              \
        ck_assert_int_eq(decode((sb)->data, (sb)->len, out), RMODEL_EFORMAT);                \
    } while (0)

/* The value codecs. The order's: every field round-trips, extremes included (varints of
 * up to ten bytes, zigzag signs, a time difference that wraps), small values are short;
 * and it refuses a value of another version, torn at any byte, with bytes after its end,
 * with a varint of more than 64 bits, a string length past 65535 or too many lines. The
 * user, item and day decoders refuse a value torn at any byte or with bytes after its end
 * (the encoders never write them: such a value is damaged). */
START_TEST(test_value_codecs)
{
    struct rmodel_order o = { 0 }, d;
    rmodel_order_lines(&o, 2);
    o.status = ORDER_PAID;
    o.version = 2;
    o.created_at = 1735689600123;
    o.updated_at = 1735689600999;
    o.amount = 4200;
    o.created_position = 123456;
    o.user = (struct rmodel_str){ "u1", 2 };
    o.nlines = 2;
    o.lines[0] = (struct rmodel_line){ { "i1", 2 }, { "Pen", 3 }, { "office", 6 }, 3, 1400 };
    o.lines[1] = (struct rmodel_line){ { "i2", 2 }, { "", 0 }, { "", 0 }, 1, 0 };
    struct sbuf sb = SBUF_INIT;
    rmodel_order_encode(&o, &sb);
    /* v, status, version, created 6, difference 2, amount 2, position 3, user 3, nlines,
     * line 1: 3 + 4 + 7 + 1 + 2, line 2: 3 + 1 + 1 + 1 + 1 */
    ck_assert_uint_eq(sb.len, 1 + 1 + 1 + 6 + 2 + 2 + 3 + 3 + 1 + 17 + 7);
    ck_assert_int_eq(rmodel_order_decode(sb.data, sb.len, &d), 0);
    ck_assert(d.status == o.status && d.version == o.version && d.created_at == o.created_at &&
              d.updated_at == o.updated_at && d.amount == o.amount &&
              d.created_position == o.created_position && d.nlines == 2);
    ck_assert(d.user.n == 2 && memcmp(d.user.p, "u1", 2) == 0);
    for (size_t i = 0; i < 2; i++) {
        const struct rmodel_line *x = &d.lines[i], *y = &o.lines[i];
        ck_assert(x->item.n == y->item.n && memcmp(x->item.p, y->item.p, y->item.n) == 0);
        ck_assert(x->name.n == y->name.n && memcmp(x->name.p, y->name.p, y->name.n) == 0);
        ck_assert(x->category.n == y->category.n && memcmp(x->category.p, y->category.p, y->category.n) == 0);
        ck_assert(x->quantity == y->quantity && x->price == y->price);
    }
    rmodel_order_clear(&d);
    REFUSES_DAMAGE(&sb, rmodel_order_decode, &d);
    ((unsigned char *)sb.data)[0] = RMODEL_VAL_V1; /* format 3's order */
    ck_assert_int_eq(rmodel_order_decode(sb.data, sb.len - 1, &d), RMODEL_EFORMAT);

    /* Extremes: the largest integers, both signs, a difference of times that wraps. */
    static const int64_t ends[][4] = { /* created_at, updated_at, amount, quantity */
                                       { INT64_MIN, INT64_MAX, INT64_MIN, INT64_MAX },
                                       { INT64_MAX, INT64_MIN, INT64_MAX, INT64_MIN },
                                       { -1, 0, -1, 1 },
                                       { 0, -1, 0, -1 } };
    for (size_t k = 0; k < sizeof ends / sizeof ends[0]; k++) {
        o.version = UINT64_MAX - k;
        o.created_position = UINT64_MAX - k;
        o.created_at = ends[k][0];
        o.updated_at = ends[k][1];
        o.amount = ends[k][2];
        o.lines[0].quantity = ends[k][3];
        o.lines[1].price = ends[k][2];
        sbuf_reset(&sb);
        rmodel_order_encode(&o, &sb);
        ck_assert_int_eq(rmodel_order_decode(sb.data, sb.len, &d), 0);
        ck_assert(d.version == o.version && d.created_position == o.created_position &&
                  d.created_at == o.created_at && d.updated_at == o.updated_at && d.amount == o.amount &&
                  d.lines[0].quantity == o.lines[0].quantity && d.lines[1].price == o.lines[1].price);
        rmodel_order_clear(&d);
        REFUSES_DAMAGE(&sb, rmodel_order_decode, &d);
    }
    /* A varint of more than 64 bits (the version), a string of 65536 bytes, 1001 lines. */
    ck_assert_int_eq(rmodel_order_decode("\2\2\xff\xff\xff\xff\xff\xff\xff\xff\xff\3\0\0\0\0\0\0", 18, &d),
                     RMODEL_EFORMAT);
    ck_assert_int_eq(rmodel_order_decode("\2\2\1\0\0\0\0\x80\x80\4", 10, &d), RMODEL_EFORMAT);
    ck_assert_int_eq(rmodel_order_decode("\2\2\1\0\0\0\0\0\xe9\7", 10, &d), RMODEL_EFORMAT);
    ck_assert_int_eq(rmodel_order_decode("\2\2\1\0\0\0\0\0\0", 9, &d), 0); /* no lines: valid */
    ck_assert_uint_eq(d.nlines, 0);
    rmodel_order_clear(&d);
    ck_assert_int_eq(rmodel_order_decode("\2\77\1\0\0\0\0\0\0", 9, &d), RMODEL_EFORMAT); /* status */
    rmodel_order_clear(&o);

    struct rmodel_user u = { 1, { "Ann", 3 }, -5, 2, 7, 1, RMODEL_NO_TIME }, du;
    struct rmodel_item it = { 1, { "Pen", 3 }, { "office", 6 }, 150, 10, 2, 3 }, di;
    struct rmodel_daily day = { 4, 3, 1, 999 }, dd;
    sbuf_reset(&sb);
    rmodel_user_encode(&u, &sb);
    ck_assert_int_eq(rmodel_user_decode(sb.data, sb.len, &du), 0);
    ck_assert(du.balance == -5 && du.order_count == 2 && du.last_order_at == RMODEL_NO_TIME && du.name.n == 3);
    REFUSES_DAMAGE(&sb, rmodel_user_decode, &du);
    sbuf_reset(&sb);
    rmodel_item_encode(&it, &sb);
    ck_assert_int_eq(rmodel_item_decode(sb.data, sb.len, &di), 0);
    ck_assert(di.price == 150 && di.sold == 3 && di.category.n == 6);
    REFUSES_DAMAGE(&sb, rmodel_item_decode, &di);
    sbuf_reset(&sb);
    rmodel_daily_encode(&day, &sb);
    ck_assert_int_eq(rmodel_daily_decode(sb.data, sb.len, &dd), 0);
    ck_assert(dd.created == 4 && dd.revenue == 999);
    REFUSES_DAMAGE(&sb, rmodel_daily_decode, &dd);
    sbuf_free(&sb);
}
END_TEST

/* The position row codec: steps within a segment, a whole entry otherwise; and it refuses
 * what the fold never writes. */
START_TEST(test_position_row_codec)
{
    struct sbuf sb = SBUF_INIT;
    struct rmodel_ploc e[] = { { 1, 64 }, { 1, 300 }, { 2, 64 }, { 2, 64 }, { 2, 10 },
                               { UINT64_MAX, UINT64_MAX } };
    rmodel_put_u8(&sb, RMODEL_VAL_V1);
    for (size_t i = 0; i < 6; i++)
        rmodel_ploc_put(&sb, i ? &e[i - 1] : NULL, e[i]);
    /* version, 0 1 64, step 236 (2 bytes), 0 2 64, 0 2 64, 0 2 10, 0 + 2 x 10 bytes */
    ck_assert_uint_eq(sb.len, 1 + 3 + 2 + 3 + 3 + 3 + 21);
    uint64_t count, first, slot;
    size_t bytes;
    struct rmodel_ploc last;
    ck_assert_int_eq(rmodel_ploc_walk(sb.data, sb.len, 100, &count, &bytes, &last), 0);
    ck_assert(count == 6 && bytes == sb.len && last.segment == UINT64_MAX && last.offset == UINT64_MAX);
    for (uint64_t i = 0; i < 6; i++) {
        ck_assert_int_eq(rmodel_ploc_walk(sb.data, sb.len, i + 1, &count, &bytes, &last), 0);
        ck_assert(count == i + 1 && last.segment == e[i].segment && last.offset == e[i].offset);
    }
    ck_assert_int_eq(rmodel_ploc_walk(sb.data, sb.len, 2, &count, &bytes, &last), 0);
    ck_assert_uint_eq(bytes, 6);
    ck_assert_int_eq(rmodel_ploc_walk(sb.data, sb.len - 1, 100, &count, &bytes, &last), RMODEL_EFORMAT); /* torn */
    ck_assert_int_eq(rmodel_ploc_walk(sb.data + 1, sb.len - 1, 100, &count, &bytes, &last), RMODEL_EFORMAT);
    ck_assert_int_eq(rmodel_ploc_walk("", 0, 100, &count, &bytes, &last), RMODEL_EFORMAT);
    ck_assert_int_eq(rmodel_ploc_walk("\1", 1, 100, &count, &bytes, &last), 0); /* no entries */
    ck_assert_uint_eq(count, 0);
    ck_assert_int_eq(rmodel_ploc_walk("\1\5", 2, 100, &count, &bytes, &last), RMODEL_EFORMAT); /* a step first */
    /* a step past 2^64, and a varint of more than 64 bits */
    ck_assert_int_eq(rmodel_ploc_walk("\1\0\1\xfe\xff\xff\xff\xff\xff\xff\xff\xff\1\5", 14, 100, &count, &bytes,
                                      &last), RMODEL_EFORMAT);
    ck_assert_int_eq(rmodel_ploc_walk("\1\0\1\xff\xff\xff\xff\xff\xff\xff\xff\xff\3", 13, 100, &count, &bytes,
                                      &last), RMODEL_EFORMAT);
    /* more entries than a row has */
    sbuf_reset(&sb);
    rmodel_put_u8(&sb, RMODEL_VAL_V1);
    for (uint64_t i = 0; i <= RMODEL_POS_CHUNK; i++)
        rmodel_ploc_put(&sb, i ? &(struct rmodel_ploc){ 1, i - 1 + 64 } : NULL,
                        (struct rmodel_ploc){ 1, i + 64 });
    ck_assert_int_eq(rmodel_ploc_walk(sb.data, sb.len, RMODEL_POS_CHUNK, &count, &bytes, &last), 0);
    ck_assert_int_eq(rmodel_ploc_walk(sb.data, sb.len, UINT64_MAX, &count, &bytes, &last), RMODEL_EFORMAT);
    rmodel_pos_chunk(1, &first, &slot);
    ck_assert(first == 1 && slot == 0);
    rmodel_pos_chunk(RMODEL_POS_CHUNK, &first, &slot);
    ck_assert(first == 1 && slot == RMODEL_POS_CHUNK - 1);
    rmodel_pos_chunk(RMODEL_POS_CHUNK + 1, &first, &slot);
    ck_assert(first == RMODEL_POS_CHUNK + 1 && slot == 0);
    sbuf_free(&sb);
}
END_TEST

static Suite *read_suite(void)
{
    Suite *s = suite_create("readmodel_fold");
    TCase *tc = tcase_create("fold");
    tcase_add_unchecked_fixture(tc, td_case_setup, td_case_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_lifecycle_midway);
    tcase_add_test(tc, test_lifecycle_complete);
    tcase_add_test(tc, test_vip_and_category_tie);
    tcase_add_test(tc, test_pagination_stable_while_adding);
    tcase_add_test(tc, test_as_of_each_position);
    tcase_add_test(tc, test_dead_letters_and_retry);
    tcase_add_test(tc, test_upcast_order_created_v1);
    tcase_add_test(tc, test_dlq_retry_after_upgrade);
    tcase_add_test(tc, test_money_overflow_dead_letters);
    tcase_add_test(tc, test_rows_kept_past_the_cache_limit);
    tcase_add_test(tc, test_stream_index_rows);
    tcase_add_test(tc, test_stream_index_gap_and_repeat);
    tcase_add_test(tc, test_stream_row_codec);
    tcase_add_test(tc, test_position_index_rows);
    tcase_add_test(tc, test_position_row_codec);
    tcase_add_test(tc, test_value_codecs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    eflog_init("check_readmodel_fold", EF_ERROR);
    SRunner *sr = srunner_create(read_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
