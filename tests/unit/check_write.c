/* Unit tests of the write side through write_execute(), the handler's core, on a real log
 * and a real write model in a temp dir (no HTTP): every success answer, every error a
 * command can produce (each checking that nothing was appended), idempotency across
 * reopen, If-Match, the order transition matrix, catch-up after a "crashed" worker,
 * rebuild equality, ENOSPC/EIO injection, TTL pruning and cross-process serializability. */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log/io.h"
#include "log/log.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "util/sbuf.h"
#include "util/xalloc.h"
#include "util/config.h"
#include "write/execute.h"
#include "write/handler.h"
#include "write/model.h"
#include "write/replay.h"
#include "write/wsnap.h"
#include "testdir.h"
#include "write_testutil.h"

static char tmpdir[64];
static struct write_ctx ctx;
static struct write_response resp;
static int have_resp;

static void open_all(void)
{
    wt_open(tmpdir, &ctx);
}

static void close_all(void)
{
    wt_close(&ctx);
}

static void setup(void)
{
    eflog_init("check_write", EF_ERROR);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ef-write-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    ef_clock_set_fixed(1764201600000); /* 2025-11-27T00:00:00Z */
    open_all();
}

static void teardown(void)
{
    if (have_resp)
        write_response_free(&resp);
    have_resp = 0;
    log_io_reset();
    close_all();
    td_rmtree(tmpdir);
    ef_clock_set_fixed(-1);
}

/* Runs one request; the answer is in resp. Returns its status. */
static int run5(const char *path, const char *body, const char *if_match, const char *key,
                const char *ctype)
{
    if (have_resp)
        write_response_free(&resp);
    struct write_request q = {
        .method = "POST", .path = path, .content_type = ctype, .body = body,
        .body_len = strlen(body), .if_match = if_match, .idempotency_key = key,
    };
    write_execute(&ctx, &q, &resp);
    have_resp = 1;
    return resp.status;
}

static int run(const char *path, const char *body)
{
    return run5(path, body, NULL, NULL, "application/json");
}

static int code_is(const char *code)
{
    char want[64];
    snprintf(want, sizeof want, "\"code\":\"%s\"", code);
    return strstr(resp.body.data, want) != NULL;
}

/* Asserts an error answer with code and that the log head did not move. */
#define ASSERT_FAILS(expr, st, code)                                                   \
    do {                                                                               \
        uint64_t head_ = log_head(ctx.log);                                            \
        ck_assert_int_eq((expr), (st));                                                \
        ck_assert_msg(code_is(code), "want %s, body %s", code, resp.body.data);       \
        ck_assert_str_eq(resp.content_type, "application/problem+json");               \
        ck_assert_uint_eq(log_head(ctx.log), head_);                                   \
    } while (0)

#define ASSERT_OK(expr, st, body_text)                                                 \
    do {                                                                               \
        ck_assert_int_eq((expr), (st));                                                \
        ck_assert_str_eq(resp.body.data, (body_text));                                 \
    } while (0)

/* A user u1 with 10000 cents, an item i1 (price 250, 10 in stock), an item i2 (price 100,
 * 5 in stock). Positions 1..6. */
static void seed(void)
{
    ck_assert_int_eq(run("/api/users", "{\"user_id\":\"u1\",\"name\":\"Ann\",\"email\":\"ann@example.com\"}"), 201);
    ck_assert_int_eq(run("/api/users/u1/deposits", "{\"amount_cents\":10000}"), 200);
    ck_assert_int_eq(run("/api/items", "{\"item_id\":\"i1\",\"name\":\"Pen\",\"category\":\"office\",\"price_cents\":250}"), 201);
    ck_assert_int_eq(run("/api/items/i1/restock", "{\"quantity\":10}"), 200);
    ck_assert_int_eq(run("/api/items", "{\"item_id\":\"i2\",\"name\":\"Cup\",\"category\":\"kitchen\",\"price_cents\":100}"), 201);
    ck_assert_int_eq(run("/api/items/i2/restock", "{\"quantity\":5}"), 200);
    ck_assert_uint_eq(log_head(ctx.log), 6);
}

/* Reads the record at pos; data copied into out. */
static void record_at(uint64_t pos, struct sbuf *type, struct sbuf *data, struct sbuf *meta)
{
    struct log_reader *rd;
    struct log_record rec;
    ck_assert_int_eq(log_reader_open(ctx.log, pos, &rd), 0);
    ck_assert_int_eq(log_reader_next(rd, log_head(ctx.log), &rec), 1);
    ck_assert_uint_eq(rec.position, pos);
    sbuf_append(type, rec.type, rec.type_len);
    sbuf_append(data, rec.data, rec.data_len);
    if (meta)
        sbuf_append(meta, rec.meta, rec.meta_len);
    log_reader_close(rd);
}

START_TEST(test_success_paths)
{
    ASSERT_OK(run("/api/users", "{\"user_id\":\"u1\",\"name\":\"Ann\",\"email\":\"ann@example.com\"}"),
              201, "{\"user_id\":\"u1\",\"version\":1,\"position\":1}");
    ck_assert_str_eq(resp.headers, "Log-Position: 1\r\nETag: \"1\"\r\n");
    ck_assert_str_eq(resp.content_type, "application/json");
    ASSERT_OK(run("/api/users/u1/deposits", "{\"amount_cents\":10000}"), 200,
              "{\"user_id\":\"u1\",\"balance_cents\":10000,\"version\":2,\"position\":2}");
    ck_assert_str_eq(resp.headers, "Log-Position: 2\r\nETag: \"2\"\r\n");
    ASSERT_OK(run("/api/items", "{\"item_id\":\"i1\",\"name\":\"Pen\",\"category\":\"office\",\"price_cents\":250}"),
              201, "{\"item_id\":\"i1\",\"version\":1,\"position\":3}");
    ASSERT_OK(run("/api/items/i1/restock", "{\"quantity\":10}"), 200,
              "{\"item_id\":\"i1\",\"available\":10,\"version\":2,\"position\":4}");
    ASSERT_OK(run("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"o1\",\"items\":[{\"item_id\":\"i1\",\"quantity\":3}]}"),
              201, "{\"order_id\":\"o1\",\"status\":\"created\",\"amount_cents\":750,\"version\":1,\"position\":5}");
    ck_assert_str_eq(resp.route, "POST /api/orders");
    ASSERT_OK(run("/api/orders/o1/pay", "{}"), 200,
              "{\"order_id\":\"o1\",\"status\":\"paid\",\"version\":2,\"position\":6}");
    ASSERT_FAILS(run5("/api/orders/o1/ship", "", NULL, NULL, NULL), 400, "invalid_json");
    ASSERT_OK(run("/api/orders/o1/ship", "{}"), 200,
              "{\"order_id\":\"o1\",\"status\":\"shipped\",\"version\":3,\"position\":7}");
    ASSERT_OK(run("/api/orders/o1/deliver", "{}"), 200,
              "{\"order_id\":\"o1\",\"status\":\"delivered\",\"version\":4,\"position\":8}");
    ck_assert_str_eq(resp.headers, "Log-Position: 8\r\nETag: \"4\"\r\n");
    ASSERT_OK(run("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"o2\",\"items\":[{\"item_id\":\"i1\",\"quantity\":1}]}"),
              201, "{\"order_id\":\"o2\",\"status\":\"created\",\"amount_cents\":250,\"version\":1,\"position\":9}");
    ck_assert_int_eq(run("/api/orders/o2/pay", "{}"), 200);
    ASSERT_OK(run("/api/orders/o2/cancel", "{\"reason\":\"late\"}"), 200,
              "{\"order_id\":\"o2\",\"status\":\"cancelled\",\"version\":3,\"position\":11}");
    /* A generated order id is a lower-case, time-ordered (version 7) UUID: a later one
     * sorts after it (util/uuid7.h). */
    ck_assert_int_eq(run("/api/orders", "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"i1\",\"quantity\":1}]}"), 201);
    const char *id = strstr(resp.body.data, "\"order_id\":\"") + 12;
    ck_assert_uint_eq(strcspn(id, "\""), 36);
    ck_assert_int_eq(id[8], '-');
    ck_assert_int_eq(id[14], '7');
    char first_id[37];
    memcpy(first_id, id, 36);
    first_id[36] = '\0';
    usleep(2000); /* the next millisecond at least */
    ck_assert_int_eq(run("/api/orders", "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"i1\",\"quantity\":1}]}"), 201);
    id = strstr(resp.body.data, "\"order_id\":\"") + 12;
    ck_assert_msg(strncmp(first_id, id, 36) < 0, "%.36s does not sort after %s", id, first_id);

    /* The records are exactly doc/events.md. */
    struct sbuf t = SBUF_INIT, d = SBUF_INIT, m = SBUF_INIT;
    record_at(1, &t, &d, &m);
    ck_assert_str_eq(t.data, "UserRegistered");
    ck_assert_str_eq(d.data, "{\"user_id\":\"u1\",\"name\":\"Ann\",\"email\":\"ann@example.com\"}");
    ck_assert_str_eq(m.data, "{}");
    sbuf_reset(&t), sbuf_reset(&d);
    record_at(5, &t, &d, NULL);
    ck_assert_str_eq(t.data, "OrderCreated");
    ck_assert_str_eq(d.data, "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"lines\":[{\"item_id\":\"i1\",\"name\":\"Pen\","
                     "\"category\":\"office\",\"quantity\":3,\"price_cents\":250}],\"amount_cents\":750}");
    sbuf_reset(&t), sbuf_reset(&d);
    record_at(6, &t, &d, NULL);
    ck_assert_str_eq(d.data, "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"amount_cents\":750,\"balance_cents\":9250}");
    sbuf_reset(&t), sbuf_reset(&d);
    record_at(11, &t, &d, NULL);
    ck_assert_str_eq(t.data, "OrderCancelled");
    ck_assert_str_eq(d.data, "{\"order_id\":\"o2\",\"user_id\":\"u1\",\"reason\":\"late\",\"refunded_cents\":250,"
                     "\"previous_status\":\"paid\"}");
    sbuf_free(&t), sbuf_free(&d), sbuf_free(&m);

    /* The model: the refund came back, the stock moved. */
    MDB_txn *txn;
    struct user_state u;
    struct item_state it;
    ck_assert_int_eq(wm_begin(ctx.wm, 0, &txn), 0);
    ck_assert_int_eq(wm_get_user(ctx.wm, txn, "u1", &u), 1);
    ck_assert_int_eq(u.balance, 10000 - 750);
    ck_assert_int_eq(wm_get_item(ctx.wm, txn, "i1", &it), 1);
    ck_assert_int_eq(it.available, 10 - 3 - 2); /* o1 sold 3; the two generated ids hold 1 each */
    ck_assert_int_eq(it.reserved, 2);
    ck_assert_int_eq(it.sold, 3);
    mdb_txn_abort(txn);
}
END_TEST

START_TEST(test_errors_append_nothing)
{
    seed();
    ASSERT_FAILS(run("/api/users/nobody/deposits", "{\"amount_cents\":1}"), 404, "not_found");
    ck_assert(strstr(resp.body.data, "user 'nobody'"));
    ck_assert(strstr(resp.headers, "Log-Position: "));
    ASSERT_FAILS(run("/api/items/nothing/restock", "{\"quantity\":1}"), 404, "not_found");
    ck_assert(strstr(resp.body.data, "item 'nothing'"));
    ASSERT_FAILS(run("/api/orders/none/pay", "{}"), 404, "not_found");
    ck_assert(strstr(resp.body.data, "order 'none'"));
    ASSERT_FAILS(run("/api/orders", "{\"user_id\":\"ghost\",\"items\":[{\"item_id\":\"i1\",\"quantity\":1}]}"), 404, "not_found");
    ck_assert(strstr(resp.body.data, "user 'ghost'"));
    ASSERT_FAILS(run("/api/orders", "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"i1\",\"quantity\":1},{\"item_id\":\"zz\",\"quantity\":1}]}"), 404, "not_found");
    ck_assert(strstr(resp.body.data, "item 'zz'"));
    ASSERT_FAILS(run("/api/users", "{\"user_id\":\"u1\",\"name\":\"Again\"}"), 409, "already_exists");
    ASSERT_FAILS(run("/api/items", "{\"item_id\":\"i1\",\"name\":\"P\",\"category\":\"c\",\"price_cents\":1}"), 409, "already_exists");
    ck_assert_int_eq(run("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"o1\",\"items\":[{\"item_id\":\"i1\",\"quantity\":1}]}"), 201);
    ASSERT_FAILS(run("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"o1\",\"items\":[{\"item_id\":\"i1\",\"quantity\":1}]}"), 409, "already_exists");
    /* Stock: 9 left of i1, 5 of i2; the second line is short. */
    ASSERT_FAILS(run("/api/orders", "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"i1\",\"quantity\":9},{\"item_id\":\"i2\",\"quantity\":6}]}"), 409, "insufficient_stock");
    ck_assert(strstr(resp.body.data, "item 'i2'"));
    /* Funds: 40 pens cost 10000 + the 250 already ordered. */
    ck_assert_int_eq(run("/api/items/i1/restock", "{\"quantity\":100}"), 200);
    ck_assert_int_eq(run("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"big\",\"items\":[{\"item_id\":\"i1\",\"quantity\":41}]}"), 201);
    ASSERT_FAILS(run("/api/orders/big/pay", "{}"), 409, "insufficient_funds");
    ASSERT_FAILS(run("/api/orders/big/ship", "{}"), 409, "invalid_transition");
    ASSERT_FAILS(run5("/api/orders/big/pay", "{}", "\"7\"", NULL, "application/json"), 412, "version_mismatch");
    ASSERT_FAILS(run5("/api/users", "{\"user_id\":\"u9\",\"name\":\"N\"}", NULL, NULL, "text/plain"), 415, "unsupported_media_type");
    ASSERT_FAILS(run5("/api/users", "{\"user_id\":\"u9\",\"name\":\"N\"}", NULL, NULL, NULL), 415, "unsupported_media_type");
    ck_assert_int_eq(run5("/api/users", "{\"user_id\":\"u9\",\"name\":\"N\"}", NULL, NULL, "Application/JSON; charset=utf-8"), 201);
    ASSERT_FAILS(run("/api/users", "{"), 400, "invalid_json");
    ASSERT_FAILS(run("/api/users", ""), 400, "invalid_json");
    ASSERT_FAILS(run("/api/users", "{\"user_id\":\"u10\"}"), 400, "validation_failed");
    ASSERT_FAILS(run("/api/nowhere", "{}"), 404, "not_found");
    ASSERT_FAILS(run5("/api/users", "{\"user_id\":\"u9\",\"name\":\"N\"}", NULL, "", "application/json"), 400, "validation_failed");
    ck_assert(strstr(resp.body.data, "Idempotency-Key"));
    ASSERT_FAILS(run5("/api/users", "{\"user_id\":\"u9\",\"name\":\"N\"}", NULL, "bad\x01key", "application/json"), 400, "validation_failed");
    char longkey[130];
    memset(longkey, 'k', 129);
    longkey[129] = '\0';
    ASSERT_FAILS(run5("/api/users", "{\"user_id\":\"u9\",\"name\":\"N\"}", NULL, longkey, "application/json"), 400, "validation_failed");
    longkey[128] = '\0';
    ck_assert_int_eq(run5("/api/users", "{\"user_id\":\"u11\",\"name\":\"N\"}", NULL, longkey, "application/json"), 201);
    ASSERT_FAILS(run5("/api/users/u1/deposits", "{\"amount_cents\":1}", "W/\"2\"", NULL, "application/json"), 412, "version_mismatch");
    ASSERT_FAILS(run5("/api/users/u1/deposits", "{\"amount_cents\":1}", "\"two\"", NULL, "application/json"), 400, "validation_failed");
    ck_assert(strstr(resp.body.data, "If-Match"));
    /* Overflow of the balance is a validation error. */
    ASSERT_FAILS(run("/api/users/u1/deposits", "{\"amount_cents\":9223372036854775807}"), 400, "validation_failed");
    ck_assert(strstr(resp.body.data, "overflow"));
    /* 405 carries Allow. */
    struct write_request q = { .method = "GET", .path = "/api/users", .body = "", .content_type = "" };
    write_response_free(&resp);
    uint64_t head = log_head(ctx.log);
    write_execute(&ctx, &q, &resp);
    ck_assert_int_eq(resp.status, 405);
    ck_assert(strncmp(resp.headers, "Allow: POST\r\nLog-Position: ", 27) == 0);
    ck_assert(code_is("method_not_allowed"));
    ck_assert_uint_eq(log_head(ctx.log), head);
}
END_TEST


/* Every money total of the read models is bounded by the sum of all deposits ever made
 * (doc/events.md, "Money"): a deposit that would take that sum past INT64_MAX is refused,
 * also when the balance itself would fit (the sum counts what was spent too). A model
 * without the sum (an older build's) is rebuilt from the log at the next open. */
START_TEST(test_deposit_total_bounded)
{
    seed(); /* u1 deposited 10000 */
    ck_assert_int_eq(run("/api/users", "{\"user_id\":\"u2\",\"name\":\"Bea\"}"), 201);
    ck_assert_int_eq(run("/api/users/u2/deposits", "{\"amount_cents\":9223372036854765807}"), 200);
    ASSERT_FAILS(run("/api/users/u1/deposits", "{\"amount_cents\":1}"), 400, "validation_failed");
    ck_assert_ptr_nonnull(strstr(resp.body.data, "\"errors\":[{\"field\":\"amount_cents\","));
    ck_assert_ptr_nonnull(strstr(resp.body.data, "the total of all deposits would overflow"));
    /* Spending makes room in the balance, not in the sum. */
    ck_assert_int_eq(run("/api/orders", "{\"user_id\":\"u2\",\"order_id\":\"m\",\"items\":[{\"item_id\":\"i1\",\"quantity\":2}]}"), 201);
    ck_assert_int_eq(run("/api/orders/m/pay", "{}"), 200);
    ASSERT_FAILS(run("/api/users/u2/deposits", "{\"amount_cents\":1}"), 400, "validation_failed");
    /* A refund is not a deposit: cancelling the paid order is fine. */
    ck_assert_int_eq(run("/api/orders/m/cancel", "{}"), 200);

    /* Drop the sum, as a model of an older build lacks it: the next open rebuilds. */
    MDB_txn *txn;
    MDB_dbi meta;
    ck_assert_int_eq(wm_dbi(ctx.wm, 0, &meta), 0);
    ck_assert_int_eq(wm_begin(ctx.wm, 1, &txn), 0);
    MDB_val k = { 9, (void *)"deposited" };
    ck_assert_int_eq(mdb_del(txn, meta, &k, NULL), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    int64_t total = 0;
    ck_assert_int_eq(wm_begin(ctx.wm, 0, &txn), 0);
    ck_assert_int_eq(wm_get_deposited(ctx.wm, txn, &total), 0);
    mdb_txn_abort(txn);
    close_all();
    open_all();
    ck_assert_int_eq(wm_begin(ctx.wm, 0, &txn), 0);
    ck_assert_int_eq(wm_get_deposited(ctx.wm, txn, &total), 1);
    mdb_txn_abort(txn);
    ck_assert_int_eq(total, INT64_MAX);
    ASSERT_FAILS(run("/api/users/u2/deposits", "{\"amount_cents\":1}"), 400, "validation_failed");
}
END_TEST

/* A copy of one answer, to compare a repeat with. */
struct answer {
    int status;
    char headers[256];
    char body[1024];
};

static struct answer keep(void)
{
    struct answer a;
    a.status = resp.status;
    snprintf(a.headers, sizeof a.headers, "%s", resp.headers);
    snprintf(a.body, sizeof a.body, "%s", resp.body.data);
    return a;
}

static void assert_same(const struct answer *a)
{
    ck_assert_int_eq(resp.status, a->status);
    ck_assert_str_eq(resp.headers, a->headers);
    ck_assert_str_eq(resp.body.data, a->body);
}

START_TEST(test_idempotency)
{
    seed();
    const char *order = "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"i1\",\"quantity\":2}]}";
    ck_assert_int_eq(run5("/api/orders", order, NULL, "key-1", "application/json"), 201);
    struct answer first = keep();
    uint64_t head = log_head(ctx.log);
    ck_assert_int_eq(run5("/api/orders", order, NULL, "key-1", "application/json"), 201);
    assert_same(&first); /* same generated order id, position, version */
    ck_assert_uint_eq(log_head(ctx.log), head);
    /* The meta of the record carries the key and the fingerprint. */
    struct sbuf t = SBUF_INIT, d = SBUF_INIT, m = SBUF_INIT;
    record_at(head, &t, &d, &m);
    ck_assert(strstr(m.data, "\"idempotency_key\":\"key-1\",\"request\":\""));
    sbuf_free(&t), sbuf_free(&d), sbuf_free(&m);
    /* Across a restart of everything. */
    close_all();
    open_all();
    ck_assert_int_eq(run5("/api/orders", order, NULL, "key-1", "application/json"), 201);
    assert_same(&first);
    ck_assert_uint_eq(log_head(ctx.log), head);
    /* Also when the model is rebuilt from the log alone. */
    char err[256];
    ck_assert_int_eq(log_append_begin(ctx.log), 0);
    ck_assert_int_eq(write_model_rebuild(ctx.wm, ctx.log, err, sizeof err), 0);
    log_append_end(ctx.log);
    ck_assert_int_eq(run5("/api/orders", order, NULL, "key-1", "application/json"), 201);
    assert_same(&first);
    ck_assert_uint_eq(log_head(ctx.log), head);
    /* Same key, another request (body, or path): 422, nothing appended. */
    ASSERT_FAILS(run5("/api/orders", "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"i1\",\"quantity\":3}]}",
                      NULL, "key-1", "application/json"), 422, "idempotency_key_reused");
    ASSERT_FAILS(run5("/api/users", "{\"user_id\":\"u5\",\"name\":\"N\"}", NULL, "key-1", "application/json"),
                 422, "idempotency_key_reused");
    /* A failed request is not remembered: the same key may succeed later. */
    ASSERT_FAILS(run5("/api/users/u7/deposits", "{\"amount_cents\":5}", NULL, "key-2", "application/json"), 404, "not_found");
    ck_assert_int_eq(run("/api/users", "{\"user_id\":\"u7\",\"name\":\"N\"}"), 201);
    ck_assert_int_eq(run5("/api/users/u7/deposits", "{\"amount_cents\":5}", NULL, "key-2", "application/json"), 200);
    ck_assert_str_eq(resp.body.data, "{\"user_id\":\"u7\",\"balance_cents\":5,\"version\":2,\"position\":9}");
}
END_TEST

START_TEST(test_idempotency_ttl)
{
    seed();
    int64_t t0 = ef_now_ms();
    const char *body = "{\"amount_cents\":1}";
    ck_assert_int_eq(run5("/api/users/u1/deposits", body, NULL, "k", "application/json"), 200);
    struct answer first = keep();
    /* 47 h later it is still remembered. */
    ef_clock_set_fixed(t0 + 47ll * 3600 * 1000);
    ck_assert_int_eq(run("/api/items/i1/restock", "{\"quantity\":1}"), 200); /* prunes */
    ck_assert_int_eq(run5("/api/users/u1/deposits", body, NULL, "k", "application/json"), 200);
    assert_same(&first);
    /* After the TTL (48 h) a command prunes it; the same request is then new. */
    ef_clock_set_fixed(t0 + 49ll * 3600 * 1000);
    ck_assert_int_eq(run("/api/items/i1/restock", "{\"quantity\":1}"), 200);
    uint64_t head = log_head(ctx.log);
    ck_assert_int_eq(run5("/api/users/u1/deposits", body, NULL, "k", "application/json"), 200);
    ck_assert_uint_eq(log_head(ctx.log), head + 1);
    ck_assert(strcmp(resp.body.data, first.body) != 0);
}
END_TEST

START_TEST(test_if_match)
{
    seed();
    ASSERT_FAILS(run5("/api/users/u1/deposits", "{\"amount_cents\":1}", "\"1\"", NULL, "application/json"), 412, "version_mismatch");
    ck_assert(strstr(resp.body.data, "version 2"));
    ck_assert_int_eq(run5("/api/users/u1/deposits", "{\"amount_cents\":1}", "\"2\"", NULL, "application/json"), 200);
    ck_assert_str_eq(resp.headers, "Log-Position: 7\r\nETag: \"3\"\r\n");
    ck_assert_int_eq(run5("/api/users/u1/deposits", "{\"amount_cents\":1}", "3", NULL, "application/json"), 200);
    ck_assert_int_eq(run5("/api/users/u1/deposits", "{\"amount_cents\":1}", "*", NULL, "application/json"), 200);
    /* On a create: "0" means "only if it does not exist", anything else fails. */
    ASSERT_FAILS(run5("/api/users", "{\"user_id\":\"n1\",\"name\":\"N\"}", "\"1\"", NULL, "application/json"), 412, "version_mismatch");
    ASSERT_FAILS(run5("/api/users", "{\"user_id\":\"n1\",\"name\":\"N\"}", "*", NULL, "application/json"), 412, "version_mismatch");
    ck_assert_int_eq(run5("/api/users", "{\"user_id\":\"n1\",\"name\":\"N\"}", "\"0\"", NULL, "application/json"), 201);
    /* A missing stream is 404, whatever If-Match says. */
    ASSERT_FAILS(run5("/api/orders/zz/pay", "{}", "\"1\"", NULL, "application/json"), 404, "not_found");
}
END_TEST

/* Drives a new order to status st (0 created, 1 paid, 2 shipped, 3 delivered, 4 cancelled). */
static void order_in_status(const char *id, int st)
{
    char body[256], path[128];
    snprintf(body, sizeof body, "{\"user_id\":\"u1\",\"order_id\":\"%s\",\"items\":[{\"item_id\":\"i2\",\"quantity\":1}]}", id);
    ck_assert_int_eq(run("/api/orders", body), 201);
    static const char *const steps[] = { "pay", "ship", "deliver" };
    for (int i = 0; i < (st == 4 ? 0 : st); i++) {
        snprintf(path, sizeof path, "/api/orders/%s/%s", id, steps[i]);
        int status = run(path, "{}");
        ck_assert_msg(status == 200, "%s: %s", path, resp.body.data);
    }
    if (st == 4) {
        snprintf(path, sizeof path, "/api/orders/%s/cancel", id);
        ck_assert_int_eq(run(path, "{}"), 200);
    }
}

START_TEST(test_transition_matrix)
{
    seed();
    ck_assert_int_eq(run("/api/items/i2/restock", "{\"quantity\":100}"), 200);
    static const char *const actions[] = { "pay", "ship", "deliver", "cancel" };
    static const char *const names[] = { "created", "paid", "shipped", "delivered", "cancelled" };
    /* allowed[status][action] */
    static const int allowed[5][4] = {
        { 1, 0, 0, 1 }, { 0, 1, 0, 1 }, { 0, 0, 1, 0 }, { 0, 0, 0, 0 }, { 0, 0, 0, 0 },
    };
    int n = 0;
    for (int st = 0; st < 5; st++) {
        for (int a = 0; a < 4; a++) {
            char id[32], path[128];
            snprintf(id, sizeof id, "m%d", n++);
            order_in_status(id, st);
            snprintf(path, sizeof path, "/api/orders/%s/%s", id, actions[a]);
            if (allowed[st][a]) {
                int status = run(path, "{}");
                ck_assert_msg(status == 200, "%s on %s: %s", actions[a], names[st], resp.body.data);
            } else {
                ASSERT_FAILS(run(path, "{}"), 409, "invalid_transition");
                ck_assert(strstr(resp.body.data, names[st]));
            }
        }
    }
}
END_TEST

START_TEST(test_stock_and_refund_accounting)
{
    seed();
    ck_assert_int_eq(run("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"a\",\"items\":[{\"item_id\":\"i1\",\"quantity\":4},{\"item_id\":\"i2\",\"quantity\":5}]}"), 201);
    ck_assert(strstr(resp.body.data, "\"amount_cents\":1500"));
    ASSERT_FAILS(run("/api/orders", "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"i2\",\"quantity\":1}]}"), 409, "insufficient_stock");
    ck_assert_int_eq(run("/api/orders/a/pay", "{}"), 200);
    ck_assert_int_eq(run("/api/orders/a/cancel", "{}"), 200);
    ck_assert_int_eq(run("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"b\",\"items\":[{\"item_id\":\"i2\",\"quantity\":5}]}"), 201);
    MDB_txn *txn;
    struct user_state u;
    struct item_state it;
    ck_assert_int_eq(wm_begin(ctx.wm, 0, &txn), 0);
    ck_assert_int_eq(wm_get_user(ctx.wm, txn, "u1", &u), 1);
    ck_assert_int_eq(u.balance, 10000);
    ck_assert_int_eq(wm_get_item(ctx.wm, txn, "i1", &it), 1);
    ck_assert_int_eq(it.available, 10);
    ck_assert_int_eq(it.reserved, 0);
    ck_assert_int_eq(wm_get_item(ctx.wm, txn, "i2", &it), 1);
    ck_assert_int_eq(it.available, 0);
    ck_assert_int_eq(it.reserved, 5);
    mdb_txn_abort(txn);
}
END_TEST

/* Appends an event straight to the log, as a worker that died before committing its
 * write-model transaction would have left it. */
static void append_behind_back(const char *stream, const char *type, uint64_t version, const char *data)
{
    struct log_event ev = {
        .stream = stream, .stream_len = strlen(stream), .type = type, .type_len = strlen(type),
        .schema_version = 1, .stream_version = version, .timestamp_ms = ef_now_ms(),
        .meta = "{}", .meta_len = 2, .data = data, .data_len = strlen(data),
    };
    uint64_t pos;
    ck_assert_int_eq(log_append(ctx.log, &ev, &pos), 0);
}

START_TEST(test_catch_up)
{
    seed();
    append_behind_back("user-ghost", "UserRegistered", 1, "{\"user_id\":\"ghost\",\"name\":\"G\",\"email\":null}");
    append_behind_back("user-ghost", "FundsDeposited", 2, "{\"user_id\":\"ghost\",\"amount_cents\":5,\"balance_cents\":5}");
    ck_assert_int_eq(run("/api/users/ghost/deposits", "{\"amount_cents\":10}"), 200);
    ck_assert_str_eq(resp.body.data, "{\"user_id\":\"ghost\",\"balance_cents\":15,\"version\":3,\"position\":9}");
    /* An old-schema OrderCreated (no names or prices) is upcast from the item. */
    append_behind_back("order-old", "OrderCreated", 1,
                       "{\"order_id\":\"old\",\"user_id\":\"u1\",\"lines\":[{\"item_id\":\"i1\",\"quantity\":2}],\"amount_cents\":500}");
    ck_assert_int_eq(run("/api/orders/old/pay", "{}"), 200);
    ck_assert_str_eq(resp.body.data, "{\"order_id\":\"old\",\"status\":\"paid\",\"version\":2,\"position\":11}");
    /* A record that is not a shop event is passed over; one that is broken stops the
     * catch-up (and the rebuild it triggers), so the command is refused, not decided on a
     * model that disagrees with the log. */
    append_behind_back("ops-1", "OperatorNote", 1, "{\"text\":\"hello\"}");
    ck_assert_int_eq(run("/api/users/u1/deposits", "{\"amount_cents\":1}"), 200);
    ck_assert_str_eq(resp.headers, "Log-Position: 13\r\nETag: \"3\"\r\n");
    append_behind_back("user-u1", "FundsDeposited", 4, "{\"user_id\":\"u1\",\"amount_cents\":1,\"balance_cents\":999}");
    ASSERT_FAILS(run("/api/users/u1/deposits", "{\"amount_cents\":1}"), 503, "log_unavailable");
}
END_TEST

/* Asserts that the live write model equals one rebuilt from the log alone. */
static void assert_model_equals_rebuild(void)
{
    struct sbuf live = SBUF_INIT, rebuilt = SBUF_INIT;
    wm_test_dump(ctx.wm, &live);
    char path[128], err[256];
    struct wm *wm2;
    snprintf(path, sizeof path, "%s/write-rebuilt", tmpdir);
    ck_assert_int_eq(wm_destroy_files(path), 0);
    ck_assert_int_eq(wm_open(path, 64ull << 20, &wm2), 0);
    ck_assert_int_eq(log_append_begin(ctx.log), 0);
    ck_assert_int_eq(write_model_rebuild(wm2, ctx.log, err, sizeof err), 0);
    log_append_end(ctx.log);
    wm_test_dump(wm2, &rebuilt);
    ck_assert_uint_eq(live.len, rebuilt.len);
    ck_assert_mem_eq(live.data, rebuilt.data, live.len);
    wm_close(wm2);
    sbuf_free(&live);
    sbuf_free(&rebuilt);
}

START_TEST(test_rebuild_equals_live)
{
    seed();
    ck_assert_int_eq(run("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"a\",\"items\":[{\"item_id\":\"i1\",\"quantity\":4},{\"item_id\":\"i2\",\"quantity\":1}]}"), 201);
    ck_assert_int_eq(run5("/api/orders/a/pay", "{}", NULL, "pay-a", "application/json"), 200);
    ck_assert_int_eq(run("/api/orders/a/ship", "{}"), 200);
    ck_assert_int_eq(run5("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"b\",\"items\":[{\"item_id\":\"i2\",\"quantity\":2}]}", NULL, "b", "application/json"), 201);
    ck_assert_int_eq(run("/api/orders/b/cancel", "{\"reason\":null}"), 200);
    /* Every event type, with and without an Idempotency-Key, and strings that JSON escapes:
     * the command path applies its event without decoding the record it appends, so this
     * is what shows that nothing is lost between the two. */
    ck_assert_int_eq(run("/api/orders/a/deliver", "{}"), 200);
    ck_assert_int_eq(run5("/api/users", "{\"user_id\":\"u2\",\"name\":\"Z\\u00e9\\\"q\\\\ \\t\\u2028x\\ud83d\\ude00\"}", NULL, "reg-u2", "application/json"), 201);
    ck_assert_int_eq(run5("/api/users/u2/deposits", "{\"amount_cents\":700}", NULL, "dep-u2", "application/json"), 200);
    ck_assert_int_eq(run5("/api/items", "{\"item_id\":\"i3\",\"name\":\"<\\/b> \\u0001\",\"category\":\"\\u00fc\",\"price_cents\":300}", NULL, "add-i3", "application/json"), 201);
    ck_assert_int_eq(run5("/api/items/i3/restock", "{\"quantity\":3}", NULL, "rs-i3", "application/json"), 200);
    ck_assert_int_eq(run5("/api/orders", "{\"user_id\":\"u2\",\"items\":[{\"item_id\":\"i3\",\"quantity\":2},{\"item_id\":\"i1\",\"quantity\":1}]}", NULL, "ord-gen", "application/json"), 201);
    ck_assert_int_eq(run5("/api/orders", "{\"user_id\":\"u2\",\"order_id\":\"c\",\"items\":[{\"item_id\":\"i3\",\"quantity\":1}]}", NULL, NULL, "application/json"), 201);
    ck_assert_int_eq(run5("/api/orders/c/pay", "{}", NULL, "pay-c", "application/json"), 200);
    ck_assert_int_eq(run5("/api/orders/c/cancel", "{\"reason\":\"changed \\\"mind\\\" \\u00e9\"}", NULL, "cancel-c", "application/json"), 200);
    ck_assert_int_eq(run5("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"d\",\"items\":[{\"item_id\":\"i2\",\"quantity\":1}]}", NULL, NULL, "application/json"), 201);
    ck_assert_int_eq(run5("/api/orders/d/pay", "{}", NULL, NULL, "application/json"), 200);
    ck_assert_int_eq(run5("/api/orders/d/ship", "{}", NULL, "ship-d", "application/json"), 200);
    ck_assert_int_eq(run5("/api/orders/d/deliver", "{}", NULL, "deliver-d", "application/json"), 200);
    assert_model_equals_rebuild();
    struct sbuf live = SBUF_INIT;
    wm_test_dump(ctx.wm, &live);
    ck_assert_ptr_nonnull(memmem(live.data, live.len, "\n5:pay-a=", 9)); /* binary: not strstr */
    sbuf_free(&live);
}
END_TEST

START_TEST(test_model_ahead_of_log_is_rebuilt)
{
    seed();
    close_all();
    /* A new, shorter log under the old model: what a lost log tail looks like. */
    char logdir[256];
    snprintf(logdir, sizeof logdir, "%s/log", tmpdir);
    td_rmtree(logdir);
    open_all();
    /* The model was rebuilt from the (empty) log: u1 is gone. */
    ASSERT_FAILS(run("/api/users/u1/deposits", "{\"amount_cents\":1}"), 404, "not_found");
    ck_assert_int_eq(run("/api/users", "{\"user_id\":\"u1\",\"name\":\"Ann\"}"), 201);
    ck_assert_str_eq(resp.body.data, "{\"user_id\":\"u1\",\"version\":1,\"position\":1}");
}
END_TEST

/* Found at run time by a command (not at start): the model is ahead of the log. The
 * rebuild starts from the newest write snapshot, not from position 1, since the append lock
 * (every command) is held until it is done; the stderr log says which. */
START_TEST(test_model_ahead_at_run_time_restores_a_snapshot)
{
    seed();
    char snaps[SNAPDIR_PATH_MAX], model[256], logpath[300];
    snprintf(model, sizeof model, "%s/write", tmpdir);
    ck_assert_int_eq(wsnap_dir(model, snaps), 0);
    struct snapshot_info info;
    ck_assert_int_eq(wsnap_take(ctx.wm, ctx.log, snaps, 3, 0, &info), 0);
    ck_assert_uint_eq(info.position, 6);
    ctx.snap_dir = snaps;
    ck_assert_int_eq(run("/api/users/u1/deposits", "{\"amount_cents\":1}"), 200);
    /* Ahead by 3, with a balance no record explains. */
    MDB_txn *txn;
    struct user_state u = { 999, 9 };
    ck_assert_int_eq(wm_begin(ctx.wm, 1, &txn), 0);
    ck_assert_int_eq(wm_put_user(ctx.wm, txn, "u1", &u), 0);
    ck_assert_int_eq(wm_set_applied(ctx.wm, txn, log_head(ctx.log) + 3), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);

    snprintf(logpath, sizeof logpath, "%s/stderr.txt", tmpdir);
    fflush(stderr);
    int saved = dup(2), fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);
    eflog_init("check_write", EF_INFO);
    int st = run("/api/users/u1/deposits", "{\"amount_cents\":1}");
    fflush(stderr);
    eflog_init("check_write", EF_ERROR);
    ck_assert_int_eq(dup2(saved, 2), 2);
    close(saved);
    close(fd);
    ctx.snap_dir = NULL;
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(resp.body.data, "{\"user_id\":\"u1\",\"balance_cents\":10002,\"version\":4,\"position\":8}");
    char text[8192] = "";
    FILE *f = fopen(logpath, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    ck_assert_msg(strstr(text, "write model restored from snapshot") && strstr(text, "position=6 replayed=1"),
                  "stderr: %s", text);
}
END_TEST

START_TEST(test_unreadable_model_is_recreated)
{
    seed();
    close_all();
    char path[256];
    snprintf(path, sizeof path, "%s/write/data.mdb", tmpdir);
    FILE *f = fopen(path, "r+");
    ck_assert_ptr_nonnull(f);
    static const char junk[8192] = { 'x' };
    ck_assert_uint_eq(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    ck_assert_int_eq(fclose(f), 0);
    open_all();
    ck_assert_int_eq(run("/api/users/u1/deposits", "{\"amount_cents\":1}"), 200);
    ck_assert_str_eq(resp.body.data, "{\"user_id\":\"u1\",\"balance_cents\":10001,\"version\":3,\"position\":7}");
}
END_TEST

START_TEST(test_other_boot_is_rebuilt)
{
    seed();
    /* Tamper with the model as a power loss might have (a lost page), and make it look
     * written in another boot: the next start must not trust it. */
    MDB_txn *txn;
    struct user_state u = { 999, 2 };
    ck_assert_int_eq(wm_begin(ctx.wm, 1, &txn), 0);
    ck_assert_int_eq(wm_put_user(ctx.wm, txn, "u1", &u), 0);
    ck_assert_int_eq(wm_set_boot_id(ctx.wm, txn, "00000000-0000-0000-0000-000000000000"), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    close_all();
    open_all();
    ck_assert_int_eq(run("/api/users/u1/deposits", "{\"amount_cents\":1}"), 200);
    ck_assert_str_eq(resp.body.data, "{\"user_id\":\"u1\",\"balance_cents\":10001,\"version\":3,\"position\":7}");
    /* In the same boot the model is trusted (and only caught up). */
    ck_assert_int_eq(wm_begin(ctx.wm, 1, &txn), 0);
    u.balance = 5;
    u.version = 3;
    ck_assert_int_eq(wm_put_user(ctx.wm, txn, "u1", &u), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    close_all();
    open_all();
    ck_assert_int_eq(run("/api/users/u1/deposits", "{\"amount_cents\":1}"), 200);
    ck_assert_str_eq(resp.body.data, "{\"user_id\":\"u1\",\"balance_cents\":6,\"version\":4,\"position\":8}");
}
END_TEST

/* The model stores no state that breaks state.h's invariants: such a put is a bug of
 * apply (which refuses every event that would lead there) and must stop the process
 * (assert) before anything is written. Each put runs in a child, which dies at the assert
 * before it touches LMDB (txn NULL), so the parent's env is never used after fork. */
enum broken_kind { BROKEN_BALANCE, BROKEN_STOCK, BROKEN_RESERVED, BROKEN_NO_LINES, BROKEN_STATUS };

static void put_broken(enum broken_kind k)
{
    struct user_state u = { -1, 3 };
    struct item_state it = { .price = 5, .available = 1, .version = 2 };
    static struct order_state o;
    o.status = ORDER_PAID;
    o.version = 2;
    o.nlines = 1;
    o.lines[0].quantity = 1;
    switch (k) {
    case BROKEN_BALANCE:
        wm_put_user(ctx.wm, NULL, "u1", &u);
        break;
    case BROKEN_STOCK:
        it.available = -1;
        wm_put_item(ctx.wm, NULL, "i1", &it);
        break;
    case BROKEN_RESERVED:
        it.reserved = -2;
        wm_put_item(ctx.wm, NULL, "i1", &it);
        break;
    case BROKEN_NO_LINES:
        o.nlines = 0;
        wm_put_order(ctx.wm, NULL, "o1", &o);
        break;
    case BROKEN_STATUS:
        o.status = 0;
        wm_put_order(ctx.wm, NULL, "o1", &o);
        break;
    }
}

START_TEST(test_model_refuses_broken_state)
{
    for (int k = BROKEN_BALANCE; k <= BROKEN_STATUS; k++) {
        fflush(NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            put_broken(k);
            _exit(0);
        }
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
                      "case %d: a broken state reached the model (status 0x%x)", k, st);
    }
}
END_TEST

START_TEST(test_preflight)
{
    struct ef_config cfg;
    char err[512];
    ef_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", tmpdir);
    ck_assert_int_eq(write_preflight(&cfg, err, sizeof err), 0);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/no/such", tmpdir);
    ck_assert_int_eq(write_preflight(&cfg, err, sizeof err), -ENOENT);
    ck_assert(strstr(err, "data directory"));
    ck_assert(strstr(err, "No such file"));
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/log/00000000000000000001.seg", tmpdir);
    ck_assert_int_eq(write_preflight(&cfg, err, sizeof err), -ENOTDIR);
    ck_assert(strstr(err, "Not a directory"));
    struct stat st;
    char path[128];
    snprintf(path, sizeof path, "%s/nodir", tmpdir);
    ck_assert_int_eq(stat(path, &st), -1); /* preflight created nothing */
}
END_TEST

static ssize_t enospc_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    (void)fd, (void)buf, (void)n, (void)off;
    errno = ENOSPC;
    return -1;
}

static int eio_fdatasync(int fd)
{
    (void)fd;
    errno = EIO;
    return -1;
}

START_TEST(test_enospc)
{
    seed();
    log_io.pwrite = enospc_pwrite;
    ASSERT_FAILS(run("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"o\",\"items\":[{\"item_id\":\"i1\",\"quantity\":10}]}"), 503, "log_unavailable");
    ASSERT_FAILS(run5("/api/users/u1/deposits", "{\"amount_cents\":1}", NULL, "k", "application/json"), 503, "log_unavailable");
    log_io_reset();
    /* Nothing of the failed order stuck to the model: the whole stock is still there, and
     * the failed key was not remembered. */
    ck_assert_int_eq(run("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"o\",\"items\":[{\"item_id\":\"i1\",\"quantity\":10}]}"), 201);
    ck_assert_str_eq(resp.headers, "Log-Position: 7\r\nETag: \"1\"\r\n");
    ck_assert_int_eq(run5("/api/users/u1/deposits", "{\"amount_cents\":1}", NULL, "k", "application/json"), 200);
    ck_assert_str_eq(resp.body.data, "{\"user_id\":\"u1\",\"balance_cents\":10001,\"version\":3,\"position\":8}");
}
END_TEST

START_TEST(test_fdatasync_failure)
{
    seed();
    log_io.fdatasync = eio_fdatasync;
    uint64_t head = log_head(ctx.log);
    ck_assert_int_eq(run5("/api/users/u1/deposits", "{\"amount_cents\":1}", NULL, "k", "application/json"), 503);
    ck_assert(code_is("log_unavailable"));
    /* The record is published but was not acknowledged; a retry with the key is answered
     * only once a sync covers it. */
    ck_assert_uint_eq(log_head(ctx.log), head + 1);
    ck_assert_int_eq(run5("/api/users/u1/deposits", "{\"amount_cents\":1}", NULL, "k", "application/json"), 503);
    ck_assert_uint_eq(log_head(ctx.log), head + 1);
    /* The disk works again, but a later sync would not prove the failed one's pages
     * reached it: the log stays stopped, and says what to do. */
    log_io_reset();
    ck_assert_int_eq(run5("/api/users/u1/deposits", "{\"amount_cents\":1}", NULL, "k", "application/json"), 503);
    ck_assert_msg(code_is("log_unavailable") && strstr(resp.body.data, "restart"), "body: %s", resp.body.data);
    ck_assert_int_eq(run("/api/users/u1/deposits", "{\"amount_cents\":5}"), 503);
    ck_assert_uint_eq(log_head(ctx.log), head + 1);
    ck_assert_uint_eq(log_durable(ctx.log), head);
    /* A restart recovers: the unacknowledged record is cut, the model (ahead of the log
     * now) is rebuilt, and the retry is applied once. */
    close_all();
    open_all();
    ck_assert_uint_eq(log_head(ctx.log), head);
    ck_assert_int_eq(run5("/api/users/u1/deposits", "{\"amount_cents\":1}", NULL, "k", "application/json"), 200);
    ck_assert_str_eq(resp.body.data, "{\"user_id\":\"u1\",\"balance_cents\":10001,\"version\":3,\"position\":7}");
    ck_assert_uint_eq(log_durable(ctx.log), head + 1);
}
END_TEST

/* Size of the data file of the write model (what the map has to hold). */
static long model_file_bytes(void)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "%s/write/data.mdb", tmpdir);
    ck_assert_int_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

static void add_items(int from, int to)
{
    char name[257], body[512];
    memset(name, 'n', 256);
    name[256] = '\0';
    for (int i = from; i < to; i++) {
        snprintf(body, sizeof body, "{\"item_id\":\"i%d\",\"name\":\"%s\",\"category\":\"c\",\"price_cents\":1}", i, name);
        uint64_t head = log_head(ctx.log);
        ck_assert_msg(run("/api/items", body) == 201, "item %d: %s", i, resp.body.data);
        ck_assert_uint_eq(log_head(ctx.log), head + 1);
    }
}

/* Opens the log and a write model with a 64 KiB map, as a worker does (replacing ctx's
 * handles, which the caller closed); destroy: remove the model's files first, so no meta
 * page remembers a larger map. Returns 0, or which open failed (2: log, 3: model). */
static int open_tiny(int destroy)
{
    char path[128];
    snprintf(path, sizeof path, "%s/log", tmpdir);
    if (log_open(path, NULL, &ctx.log) != 0)
        return 2;
    snprintf(path, sizeof path, "%s/write", tmpdir);
    if (destroy && wm_destroy_files(path) != 0)
        return 3;
    return write_model_open(path, 64 << 10, ctx.log, &ctx.wm) != 0 ? 3 : 0;
}

START_TEST(test_map_full)
{
    /* A write model with a tiny map: filling it doubles the map (wm_grow) and the
     * commands go on; none is refused and each appends exactly one event. */
    close_all();
    ck_assert_int_eq(open_tiny(1), 0);
    add_items(0, 1000);
    ck_assert_int_gt(model_file_bytes(), 4 * (64 << 10)); /* it grew at least twice */
    /* Reopened with the small map (a restart keeps the configured size): LMDB maps at
     * least the data, the next full map grows again, and catch-up after a lost commit
     * (the model behind the log) grows it too. */
    close_all();
    ck_assert_int_eq(open_tiny(0), 0);
    add_items(1000, 1300);
    ck_assert_uint_eq(log_head(ctx.log), 1300);
}
END_TEST

START_TEST(test_rebuild_grows_map)
{
    /* A rebuild from a log that does not fit the configured map grows it on the way. */
    add_items(0, 300);
    close_all();
    ck_assert_int_eq(open_tiny(1), 0);
    ck_assert_int_gt(model_file_bytes(), 64 << 10);
    ck_assert_int_eq(run("/api/items/i299/restock", "{\"quantity\":2}"), 200);
    ck_assert_str_eq(resp.body.data, "{\"item_id\":\"i299\",\"available\":2,\"version\":2,\"position\":301}");
}
END_TEST

START_TEST(test_map_grown_by_another_process)
{
    /* Two processes with a tiny map: the child grows it past the parent's; the parent's
     * next transaction sees MDB_MAP_RESIZED, adopts the size and goes on. */
    close_all();
    ck_assert_int_eq(open_tiny(1), 0);
    add_items(0, 10);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close_all();
        if (have_resp)
            write_response_free(&resp);
        have_resp = 0;
        int rc = open_tiny(0);
        if (rc)
            _exit(rc);
        add_items(10, 600);
        close_all();
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_gt(model_file_bytes(), 64 << 10);
    add_items(600, 650);
    ck_assert_int_eq(run("/api/items/i599/restock", "{\"quantity\":2}"), 200);
    ck_assert_uint_eq(log_head(ctx.log), 651);
}
END_TEST

START_TEST(test_open_does_not_cut_a_grown_map)
{
    /* LMDB truncates data.mdb to the map of every process that maps it writable. A process
     * that opens with the small configured map while another has grown its map (and may
     * store into the new pages before any commit records the size) must not cut the file
     * below that map: the other's next store there would be SIGBUS. */
    close_all();
    ck_assert_int_eq(open_tiny(1), 0);
    add_items(0, 10);
    ck_assert_int_eq(wm_grow(ctx.wm), 0);
    ck_assert_int_eq(wm_grow(ctx.wm), 0);
    long grown = model_file_bytes();
    ck_assert_int_ge(grown, 4 * (64 << 10));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close_all();
        if (have_resp)
            write_response_free(&resp);
        have_resp = 0;
        int rc = open_tiny(0); /* 64 KiB configured, less than the file */
        close_all();
        _exit(rc);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_ge(model_file_bytes(), grown);
    /* The parent fills its grown map (no growth needed up to it): stores past the old size
     * of the file, which a cut file would kill. */
    add_items(10, 400);
    ck_assert_uint_eq(log_head(ctx.log), 400);
}
END_TEST

/* --- concurrency ----------------------------------------------------------------------- */

#define PROCS 4
#define PER_PROC 50

/* A child: its own log and model handles (opened after fork), 50 orders of 1. Exits with
 * the number of successes; 255 on anything unexpected. */
static void order_child(void)
{
    close_all(); /* the parent's handles are not ours to use */
    if (have_resp)
        write_response_free(&resp);
    have_resp = 0;
    open_all();
    int ok = 0;
    for (int i = 0; i < PER_PROC; i++) {
        int st = run("/api/orders", "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"race\",\"quantity\":1}]}");
        if (st == 201)
            ok++;
        else if (st != 409 || !code_is("insufficient_stock"))
            _exit(255);
    }
    write_response_free(&resp);
    close_all();
    _exit(ok);
}

/* Runs child in PROCS forked processes at once; each exits with its number of successful
 * orders (255: something unexpected). Returns the sum. */
static int race(void (*child)(void))
{
    pid_t pids[PROCS];
    for (int i = 0; i < PROCS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0)
            child();
    }
    int total = 0;
    for (int i = 0; i < PROCS; i++) {
        int status;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status));
        ck_assert_int_ne(WEXITSTATUS(status), 255);
        total += WEXITSTATUS(status);
    }
    return total;
}

START_TEST(test_concurrent_orders)
{
    seed();
    ck_assert_int_eq(run("/api/items", "{\"item_id\":\"race\",\"name\":\"R\",\"category\":\"c\",\"price_cents\":1}"), 201);
    ck_assert_int_eq(run("/api/items/race/restock", "{\"quantity\":50}"), 200);
    uint64_t before = log_head(ctx.log);
    int total = race(order_child);
    ck_assert_int_eq(total, 50);
    ck_assert_uint_eq(log_head(ctx.log), before + 50);
    /* The log holds exactly 50 OrderCreated after the setup. */
    struct log_reader *rd;
    struct log_record rec;
    int created = 0;
    ck_assert_int_eq(log_reader_open(ctx.log, before + 1, &rd), 0);
    while (log_reader_next(rd, log_head(ctx.log), &rec) == 1)
        created += rec.type_len == 12 && memcmp(rec.type, "OrderCreated", 12) == 0;
    log_reader_close(rd);
    ck_assert_int_eq(created, 50);
    /* And this process's model, caught up, agrees: nothing left. */
    ASSERT_FAILS(run("/api/orders", "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"race\",\"quantity\":1}]}"), 409, "insufficient_stock");
}
END_TEST

/* ---- batches (write_execute_batch: what a worker's queued commands run as) ---- */

#define MAXB 400

static struct write_request breqs[MAXB];
static struct write_response bresps[MAXB];
static size_t nb;

static void bq(const char *path, const char *body, const char *key)
{
    ck_assert_uint_lt(nb, MAXB);
    breqs[nb++] = (struct write_request){
        .method = "POST", .path = path, .content_type = "application/json", .body = body,
        .body_len = strlen(body), .idempotency_key = key,
    };
}

static void brun(void)
{
    write_execute_batch(&ctx, breqs, bresps, nb);
}

static void bfree(void)
{
    for (size_t i = 0; i < nb; i++)
        write_response_free(&bresps[i]);
    nb = 0;
}

static int bstatus(size_t i) { return bresps[i].status; }

static int bcode_is(size_t i, const char *code)
{
    char want[64];
    snprintf(want, sizeof want, "\"code\":\"%s\"", code);
    return bresps[i].body.data && strstr(bresps[i].body.data, want) != NULL;
}

/* One batch: each command is decided on a model holding the ones before it (the second
 * order finds the stock the first took, the order after the restock finds it again), a
 * refusal or a request that does not parse leaves the others alone, and a key used twice
 * in the batch answers the first answer once more or 422. */
START_TEST(test_batch_decides_in_order)
{
    seed();
    bq("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"a\",\"items\":[{\"item_id\":\"i2\",\"quantity\":3}]}", NULL);
    bq("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"b\",\"items\":[{\"item_id\":\"i2\",\"quantity\":3}]}", NULL);
    bq("/api/users/u1/deposits", "{\"amount_cents\":", NULL);
    bq("/api/items/i2/restock", "{\"quantity\":10}", NULL);
    bq("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"b\",\"items\":[{\"item_id\":\"i2\",\"quantity\":3}]}", NULL);
    bq("/api/users/u1/deposits", "{\"amount_cents\":5}", "k");
    bq("/api/users/u1/deposits", "{\"amount_cents\":5}", "k");
    bq("/api/users/u1/deposits", "{\"amount_cents\":6}", "k");
    bq("/api/orders/a/pay", "{}", NULL);
    brun();
    ck_assert_int_eq(bstatus(0), 201);
    ck_assert_str_eq(bresps[0].headers, "Log-Position: 7\r\nETag: \"1\"\r\n");
    ck_assert_int_eq(bstatus(1), 409);
    ck_assert(bcode_is(1, "insufficient_stock"));
    ck_assert_int_eq(bstatus(2), 400);
    ck_assert(bcode_is(2, "invalid_json"));
    ck_assert_int_eq(bstatus(3), 200);
    ck_assert_str_eq(bresps[3].headers, "Log-Position: 8\r\nETag: \"3\"\r\n");
    ck_assert_int_eq(bstatus(4), 201);
    ck_assert_str_eq(bresps[4].headers, "Log-Position: 9\r\nETag: \"1\"\r\n");
    ck_assert_int_eq(bstatus(5), 200);
    ck_assert_str_eq(bresps[5].body.data, bresps[6].body.data);
    ck_assert_str_eq(bresps[5].headers, bresps[6].headers);
    ck_assert_str_eq(bresps[5].headers, "Log-Position: 10\r\nETag: \"3\"\r\n");
    ck_assert_int_eq(bstatus(7), 422);
    ck_assert(bcode_is(7, "idempotency_key_reused"));
    ck_assert_int_eq(bstatus(8), 200);
    ck_assert_str_eq(bresps[8].headers, "Log-Position: 11\r\nETag: \"2\"\r\n");
    ck_assert_uint_eq(log_head(ctx.log), 11);
    ck_assert_uint_eq(log_durable(ctx.log), 11);
    bfree();
    /* The model holds exactly that: 10 - 3 - 3 + 10 pens... cups left, and it equals a
     * rebuild from the log. */
    ASSERT_FAILS(run("/api/orders", "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"i2\",\"quantity\":10}]}"), 409, "insufficient_stock");
    ck_assert_int_eq(run("/api/orders", "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"i2\",\"quantity\":9}]}"), 201);
    assert_model_equals_rebuild();
}
END_TEST

static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static _Atomic int pwrites_left; /* pwrites that succeed before the one that fails */

static ssize_t enospc_later_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (atomic_fetch_sub(&pwrites_left, 1) == 0) {
        errno = ENOSPC;
        return -1;
    }
    return real_pwrite(fd, buf, n, off);
}

/* An append that fails in the middle of a batch: that command gets 503 and nothing of it
 * stays; the commands before it stand (appended, answered), and those after it are decided
 * on a model caught up with them. */
START_TEST(test_batch_append_fails_midway)
{
    seed();
    real_pwrite = log_io.pwrite;
    atomic_store(&pwrites_left, 2);
    log_io.pwrite = enospc_later_pwrite;
    for (int i = 1; i <= 5; i++) {
        static char bodies[5][64];
        snprintf(bodies[i - 1], sizeof bodies[i - 1], "{\"amount_cents\":%d}", i);
        bq("/api/users/u1/deposits", bodies[i - 1], NULL);
    }
    brun();
    log_io_reset();
    int st[5] = { 200, 200, 503, 200, 200 };
    for (size_t i = 0; i < 5; i++)
        ck_assert_msg(bstatus(i) == st[i], "command %zu: %d %s", i, bstatus(i), bresps[i].body.data);
    ck_assert(bcode_is(2, "log_unavailable"));
    ck_assert_str_eq(bresps[4].body.data, "{\"user_id\":\"u1\",\"balance_cents\":10012,\"version\":6,\"position\":10}");
    bfree();
    ck_assert_uint_eq(log_head(ctx.log), 10);
    assert_model_equals_rebuild();
}
END_TEST

/* A failed fdatasync fails every command of the batch whose record it leaves beyond the
 * durable position (they stand in the log, unacknowledged). */
START_TEST(test_batch_sync_fails)
{
    seed();
    log_io.fdatasync = eio_fdatasync;
    bq("/api/users/u1/deposits", "{\"amount_cents\":1}", NULL);
    bq("/api/users/u1/deposits", "{\"amount_cents\":x}", NULL);
    bq("/api/users/u1/deposits", "{\"amount_cents\":2}", NULL);
    brun();
    ck_assert_int_eq(bstatus(0), 503);
    ck_assert(bcode_is(0, "log_unavailable"));
    ck_assert_int_eq(bstatus(1), 400);
    ck_assert_int_eq(bstatus(2), 503);
    bfree();
    ck_assert_uint_eq(log_head(ctx.log), 8);
    ck_assert_uint_eq(log_durable(ctx.log), 6);
}
END_TEST

/* A batch that fills the write model's map (64 KiB) again and again: each time the map is
 * doubled and the batch goes on; every command appends exactly one event. */
START_TEST(test_batch_map_full)
{
    close_all();
    ck_assert_int_eq(open_tiny(1), 0);
    static char bodies[MAXB][400];
    char name[257];
    memset(name, 'n', 256);
    name[256] = '\0';
    for (int i = 0; i < MAXB; i++) {
        snprintf(bodies[i], sizeof bodies[i], "{\"item_id\":\"i%d\",\"name\":\"%s\",\"category\":\"c\",\"price_cents\":1}", i, name);
        bq("/api/items", bodies[i], NULL);
    }
    brun();
    for (size_t i = 0; i < MAXB; i++)
        ck_assert_msg(bstatus(i) == 201, "item %zu: %d %s", i, bstatus(i), bresps[i].body.data);
    bfree();
    ck_assert_uint_eq(log_head(ctx.log), MAXB);
    ck_assert_int_gt(model_file_bytes(), 4 * (64 << 10));
    assert_model_equals_rebuild();
}
END_TEST

/* Threads of one worker share its write_ctx, log and model handles (command_threads). */
#define THREADS_PER_PROC 4
#define PER_THREAD 20

static void *order_thread(void *arg)
{
    int *ok = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        struct write_request q = {
            .method = "POST", .path = "/api/orders", .content_type = "application/json",
            .body = "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"race\",\"quantity\":1}]}",
        };
        q.body_len = strlen(q.body);
        struct write_response r;
        write_execute(&ctx, &q, &r);
        if (r.status == 201)
            (*ok)++;
        else if (r.status != 409 || !strstr(r.body.data, "\"code\":\"insufficient_stock\""))
            *ok = -1000;
        write_response_free(&r);
    }
    return NULL;
}

/* A child: its own handles, THREADS_PER_PROC threads ordering 1 each PER_THREAD times.
 * Exits with the number of successes; 255 on anything unexpected. */
static void order_child_threads(void)
{
    close_all();
    if (have_resp)
        write_response_free(&resp);
    have_resp = 0;
    open_all();
    pthread_t t[THREADS_PER_PROC];
    int ok[THREADS_PER_PROC] = { 0 }, total = 0;
    for (int i = 0; i < THREADS_PER_PROC; i++)
        if (pthread_create(&t[i], NULL, order_thread, &ok[i]) != 0)
            _exit(255);
    for (int i = 0; i < THREADS_PER_PROC; i++) {
        pthread_join(t[i], NULL);
        if (ok[i] < 0)
            _exit(255);
        total += ok[i];
    }
    close_all();
    _exit(total);
}

START_TEST(test_concurrent_orders_threads)
{
    /* PROCS processes x THREADS_PER_PROC threads race for 100 units: exactly 100 orders
     * succeed, each appended once. */
    seed();
    ck_assert_int_eq(run("/api/items", "{\"item_id\":\"race\",\"name\":\"R\",\"category\":\"c\",\"price_cents\":1}"), 201);
    ck_assert_int_eq(run("/api/items/race/restock", "{\"quantity\":100}"), 200);
    ck_assert_int_eq(run("/api/users/u1/deposits", "{\"amount_cents\":1}"), 200);
    uint64_t before = log_head(ctx.log);
    int total = race(order_child_threads);
    ck_assert_int_eq(total, 100);
    ck_assert_uint_eq(log_head(ctx.log), before + 100);
    ASSERT_FAILS(run("/api/orders", "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"race\",\"quantity\":1}]}"), 409, "insufficient_stock");
}
END_TEST

/* Threads of one handle, half of them not waiting for their answers
 * (write_finish_async, as the command handler does), half waiting (write_finish): every
 * command is answered exactly once, and exactly the stock is sold. */
#define ASYNC_THREADS 8
#define ASYNC_PER_THREAD 30

struct async_slot {
    _Atomic int calls;
    int status;
};
static struct async_slot slots[ASYNC_THREADS * ASYNC_PER_THREAD];

static void async_done(void *arg, const struct write_response *r)
{
    struct async_slot *sl = arg;
    sl->status = r->status;
    if (r->status != 201 && !(r->status == 409 && strstr(r->body.data, "\"code\":\"insufficient_stock\"")))
        sl->status = -r->status;
    atomic_fetch_add(&sl->calls, 1);
}

static void *async_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < ASYNC_PER_THREAD; i++) {
        struct async_slot *sl = &slots[t * ASYNC_PER_THREAD + i];
        char body[128]; /* gone before the command runs: write_prepare keeps nothing of it */
        snprintf(body, sizeof body, "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"race\",\"quantity\":1}]}");
        struct write_request q = {
            .method = "POST", .path = "/api/orders", .content_type = "application/json",
            .body = body, .body_len = strlen(body),
        };
        struct write_response r;
        struct write_exec *x = write_prepare(&ctx, &q, &r);
        if (!x) {
            async_done(sl, &r);
            write_response_free(&r);
        } else if (t % 2 == 0) {
            write_finish_async(x, async_done, sl);
        } else {
            write_finish(x, &r);
            async_done(sl, &r);
            write_response_free(&r);
        }
        memset(body, 'x', sizeof body - 1);
    }
    return NULL;
}

static int (*real_fdatasync)(int);

static int slow_fdatasync(int fd)
{
    nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
    return real_fdatasync(fd);
}

/* _i = 1: every fdatasync takes 20 ms, so that more commands queue up than a handle takes
 * (WRITE_QUEUE_MAX) and threads wait for their answers after all. */
START_TEST(test_async_threads)
{
    seed();
    if (_i == 1) {
        real_fdatasync = log_io.fdatasync;
        log_io.fdatasync = slow_fdatasync;
    }
    ck_assert_int_eq(run("/api/items", "{\"item_id\":\"race\",\"name\":\"R\",\"category\":\"c\",\"price_cents\":1}"), 201);
    ck_assert_int_eq(run("/api/items/race/restock", "{\"quantity\":100}"), 200);
    uint64_t before = log_head(ctx.log);
    memset(slots, 0, sizeof slots);
    pthread_t t[ASYNC_THREADS];
    for (int i = 0; i < ASYNC_THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, async_thread, (void *)(intptr_t)i), 0);
    for (int i = 0; i < ASYNC_THREADS; i++)
        pthread_join(t[i], NULL);
    /* Every thread has returned: no command is left queued (a thread that runs batches
     * goes on while any is), so every answer has been given. */
    int sold = 0;
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
        ck_assert_msg(atomic_load(&slots[i].calls) == 1, "command %zu answered %d times", i,
                      atomic_load(&slots[i].calls));
        ck_assert_msg(slots[i].status > 0, "command %zu: unexpected status %d", i, -slots[i].status);
        sold += slots[i].status == 201;
    }
    ck_assert_int_eq(sold, 100);
    ck_assert_uint_eq(log_head(ctx.log), before + 100);
    ck_assert_uint_eq(log_durable(ctx.log), before + 100);
    assert_model_equals_rebuild();
}
END_TEST

/* A child sending the same keyed request 5 times; writes each answer's body to fd. */
static void same_key_child(int fd)
{
    close_all();
    if (have_resp)
        write_response_free(&resp);
    have_resp = 0;
    open_all();
    for (int i = 0; i < 5; i++) {
        int st = run5("/api/orders", "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"i1\",\"quantity\":1}]}",
                      NULL, "same-key", "application/json");
        char line[512];
        int n = snprintf(line, sizeof line, "%d %s\n", st, resp.body.data);
        if (n <= 0 || (size_t)n >= sizeof line || write(fd, line, (size_t)n) != n)
            _exit(2);
    }
    write_response_free(&resp);
    close_all();
    _exit(0);
}

START_TEST(test_concurrent_same_key)
{
    seed();
    uint64_t before = log_head(ctx.log);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pids[PROCS];
    for (int i = 0; i < PROCS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(fds[0]);
            same_key_child(fds[1]);
        }
    }
    close(fds[1]);
    for (int i = 0; i < PROCS; i++) {
        int status;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    char buf[8192];
    size_t got = 0;
    ssize_t n;
    while ((n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    close(fds[0]);
    buf[got] = '\0';
    /* 20 identical lines: one order, the same answer for everyone. */
    char *first = strtok(buf, "\n"), *line;
    int lines = 1;
    ck_assert_ptr_nonnull(first);
    ck_assert(strncmp(first, "201 {\"order_id\":", strlen("201 {\"order_id\":")) == 0);
    while ((line = strtok(NULL, "\n")) != NULL) {
        ck_assert_str_eq(line, first);
        lines++;
    }
    ck_assert_int_eq(lines, PROCS * 5);
    ck_assert_uint_eq(log_head(ctx.log), before + 1);
}
END_TEST

static Suite *write_suite(void)
{
    Suite *s = suite_create("write");
    TCase *tc = tcase_create("commands");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_success_paths);
    tcase_add_test(tc, test_errors_append_nothing);
    tcase_add_test(tc, test_deposit_total_bounded);
    tcase_add_test(tc, test_idempotency);
    tcase_add_test(tc, test_idempotency_ttl);
    tcase_add_test(tc, test_if_match);
    tcase_add_test(tc, test_transition_matrix);
    tcase_add_test(tc, test_stock_and_refund_accounting);
    tcase_add_test(tc, test_catch_up);
    tcase_add_test(tc, test_rebuild_equals_live);
    tcase_add_test(tc, test_model_ahead_of_log_is_rebuilt);
    tcase_add_test(tc, test_model_ahead_at_run_time_restores_a_snapshot);
    tcase_add_test(tc, test_unreadable_model_is_recreated);
    tcase_add_test(tc, test_other_boot_is_rebuilt);
    tcase_add_test(tc, test_preflight);
    tcase_add_test(tc, test_model_refuses_broken_state);
    tcase_add_test(tc, test_enospc);
    tcase_add_test(tc, test_fdatasync_failure);
    tcase_add_test(tc, test_map_full);
    tcase_add_test(tc, test_map_grown_by_another_process);
    tcase_add_test(tc, test_open_does_not_cut_a_grown_map);
    tcase_add_test(tc, test_rebuild_grows_map);
    tcase_add_test(tc, test_batch_decides_in_order);
    tcase_add_test(tc, test_batch_append_fails_midway);
    tcase_add_test(tc, test_batch_sync_fails);
    tcase_add_test(tc, test_batch_map_full);
    tcase_add_test(tc, test_concurrent_orders);
    tcase_add_test(tc, test_concurrent_orders_threads);
    tcase_add_loop_test(tc, test_async_threads, 0, 2);
    tcase_add_test(tc, test_concurrent_same_key);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(write_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
