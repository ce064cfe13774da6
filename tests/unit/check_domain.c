/* Unit tests of the domain: the strict request parser (routes, bodies, limits) and the
 * event codec. The shop rules are exercised end to end in check_write.c. */
#include <config.h>

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/command.h"
#include "domain/event.h"
#include "util/sbuf.h"
#include "util/xalloc.h"

/* Parses method/path/body; returns the problem status (0 on success). */
static struct problem prob;
static struct command *cmd;

static int parse3(const char *method, const char *path, const char *body, size_t len)
{
    struct cmd_route r;
    problem_init(&prob);
    if (!cmd)
        cmd = xcalloc(1, sizeof *cmd);
    if (cmd_route_match(method, path, &r, &prob) < 0)
        return prob.status;
    if (cmd_parse_body(&r, body, len, cmd, &prob) < 0)
        return prob.status;
    return 0;
}

static int parse(const char *path, const char *body)
{
    return parse3("POST", path, body, strlen(body));
}

/* 1 if some error names field and its message contains text. */
static int has_error(const char *field, const char *text)
{
    for (size_t i = 0; i < prob.nerrors; i++)
        if (strcmp(prob.errors[i].field, field) == 0 && strstr(prob.errors[i].message, text))
            return 1;
    return 0;
}

#define ASSERT_PROBLEM(st, c)                                                   \
    do {                                                                        \
        ck_assert_int_eq(prob.status, (st));                                    \
        ck_assert_str_eq(prob.code, (c));                                       \
    } while (0)

static void teardown(void)
{
    free(cmd);
    cmd = NULL;
}

/* --- valid bodies ---------------------------------------------------------------------- */

START_TEST(test_valid_register)
{
    ck_assert_int_eq(parse("/api/users", "{\"user_id\":\"u-1\",\"name\":\"Ann\",\"email\":\"a@x\"}"), 0);
    ck_assert_int_eq(cmd->kind, CMD_REGISTER_USER);
    ck_assert_str_eq(cmd->id, "u-1");
    ck_assert_str_eq(cmd->name, "Ann");
    ck_assert_int_eq(cmd->has_email, 1);
    ck_assert_str_eq(cmd->email, "a@x");
    ck_assert_int_eq(parse("/api/users", " {\"name\":\"B\",\"user_id\":\"u2\",\"email\":null} "), 0);
    ck_assert_int_eq(cmd->has_email, 0);
    ck_assert_int_eq(parse("/api/users", "{\"user_id\":\"u3\",\"name\":\"C\"}"), 0);
    ck_assert_int_eq(cmd->has_email, 0);
}
END_TEST

START_TEST(test_valid_others)
{
    ck_assert_int_eq(parse("/api/users/u.1/deposits", "{\"amount_cents\":9223372036854775807}"), 0);
    ck_assert_int_eq(cmd->kind, CMD_DEPOSIT);
    ck_assert_str_eq(cmd->id, "u.1");
    ck_assert(cmd->amount == INT64_MAX);
    ck_assert_int_eq(parse("/api/items", "{\"item_id\":\"i:1\",\"name\":\"Pen\",\"category\":\"office\",\"price_cents\":150}"), 0);
    ck_assert_int_eq(cmd->kind, CMD_ADD_ITEM);
    ck_assert_str_eq(cmd->category, "office");
    ck_assert_int_eq(cmd->amount, 150);
    ck_assert_int_eq(parse("/api/items/i:1/restock", "{\"quantity\":1000000}"), 0);
    ck_assert_int_eq(cmd->kind, CMD_RESTOCK);
    ck_assert_int_eq(cmd->amount, 1000000);
    ck_assert_int_eq(parse("/api/orders", "{\"user_id\":\"u1\",\"items\":[{\"item_id\":\"a\",\"quantity\":1},{\"quantity\":1000,\"item_id\":\"b\"}]}"), 0);
    ck_assert_int_eq(cmd->kind, CMD_CREATE_ORDER);
    ck_assert_str_eq(cmd->id, "");
    ck_assert_int_eq(cmd->nlines, 2);
    ck_assert_str_eq(cmd->lines[1].item_id, "b");
    ck_assert_int_eq(cmd->lines[1].quantity, 1000);
    ck_assert_int_eq(parse("/api/orders", "{\"user_id\":\"u1\",\"order_id\":\"o-7\",\"items\":[{\"item_id\":\"a\",\"quantity\":2}]}"), 0);
    ck_assert_str_eq(cmd->id, "o-7");
    static const char *const actions[] = { "pay", "ship", "deliver", "cancel" };
    static const enum cmd_kind kinds[] = { CMD_PAY, CMD_SHIP, CMD_DELIVER, CMD_CANCEL };
    for (int i = 0; i < 4; i++) {
        char path[64];
        snprintf(path, sizeof path, "/api/orders/o-7/%s", actions[i]);
        ck_assert_int_eq(parse(path, "{}"), 0);
        ck_assert_int_eq(cmd->kind, kinds[i]);
        ck_assert_str_eq(cmd->id, "o-7");
        ck_assert_int_eq(parse(path, ""), 400); /* an empty body is not {} */
        ASSERT_PROBLEM(400, "invalid_json");
    }
    ck_assert_int_eq(parse("/api/orders/o-7/cancel", "{\"reason\":\"changed my mind\"}"), 0);
    ck_assert_int_eq(cmd->has_reason, 1);
    ck_assert_str_eq(cmd->reason, "changed my mind");
}
END_TEST

/* --- routes ---------------------------------------------------------------------------- */

START_TEST(test_routes)
{
    ck_assert_int_eq(parse("/api/nope", "{}"), 404);
    ASSERT_PROBLEM(404, "not_found");
    ck_assert_int_eq(parse("/api/users/", "{}"), 404);
    ck_assert_int_eq(parse("/api/orders/o1/refund", "{}"), 404);
    ck_assert_int_eq(parse3("GET", "/api/users", "", 0), 405);
    ASSERT_PROBLEM(405, "method_not_allowed");
    ck_assert_int_eq(parse3("PUT", "/api/orders/o1/pay", "", 0), 405);
    ck_assert_int_eq(parse3("GET", "/api/orders/o1", "", 0), 405); /* a query on the command side */
    ck_assert_int_eq(parse3("GET", "/elsewhere", "", 0), 404);
    ck_assert_int_eq(parse("/api/users/-bad/deposits", "{\"amount_cents\":1}"), 400);
    ASSERT_PROBLEM(400, "validation_failed");
    ck_assert(has_error("path", "must match"));
    ck_assert_int_eq(parse("/api/orders/a%20b/pay", "{}"), 400);
    ck_assert(has_error("path", "must match"));
}
END_TEST

/* --- not JSON -------------------------------------------------------------------------- */

START_TEST(test_invalid_json)
{
    static const char *const bad[] = {
        "", "{", "nope", "{\"user_id\":\"u\",}", "{} {}", "{}x", "{'a':1}", "{\"a\":01}",
        "  ", "{\"user_id\":\"u\" \"name\":\"n\"}", "/* c */ {}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(parse("/api/users", bad[i]) == 400, "body %s", bad[i]);
        ASSERT_PROBLEM(400, "invalid_json");
        ck_assert_int_eq(prob.nerrors, 0);
    }
}
END_TEST

START_TEST(test_invalid_utf8_and_nul)
{
    const char bad_utf8[] = "{\"user_id\":\"u1\",\"name\":\"\xc3\x28\"}";
    ck_assert_int_eq(parse("/api/users", bad_utf8), 400);
    ASSERT_PROBLEM(400, "invalid_json");
    const char overlong[] = "{\"user_id\":\"u1\",\"name\":\"\xc0\xaf\"}";
    ck_assert_int_eq(parse("/api/users", overlong), 400);
    ASSERT_PROBLEM(400, "invalid_json");
    const char surrogate[] = "{\"user_id\":\"u1\",\"name\":\"\xed\xa0\x80\"}";
    ck_assert_int_eq(parse("/api/users", surrogate), 400);
    ASSERT_PROBLEM(400, "invalid_json");
    const char too_big[] = "{\"user_id\":\"u1\",\"name\":\"\xf4\x90\x80\x80\"}";
    ck_assert_int_eq(parse("/api/users", too_big), 400);
    ASSERT_PROBLEM(400, "invalid_json");
    const char truncated[] = "{\"user_id\":\"u1\",\"name\":\"\xe2\x82\"}";
    ck_assert_int_eq(parse("/api/users", truncated), 400);
    ASSERT_PROBLEM(400, "invalid_json");
    const char nul[] = "{\"user_id\":\"u1\",\"name\":\"a\0b\"}";
    ck_assert_int_eq(parse3("POST", "/api/users", nul, sizeof nul - 1), 400);
    ASSERT_PROBLEM(400, "invalid_json");
    ck_assert(strstr(prob.detail, "NUL"));
    /* An escaped NUL is well-formed JSON but not an acceptable string. */
    ck_assert_int_eq(parse("/api/users", "{\"user_id\":\"u1\",\"name\":\"a\\u0000b\"}"), 400);
    ASSERT_PROBLEM(400, "validation_failed");
    ck_assert(has_error("name", "NUL"));
    /* Valid multi-byte UTF-8 is fine. */
    ck_assert_int_eq(parse("/api/users", "{\"user_id\":\"u1\",\"name\":\"Zo\xc3\xab \xe2\x82\xac\"}"), 0);
    /* Escapes: a surrogate pair is one character; an unpaired surrogate escape would decode
     * to invalid UTF-8 and is refused (fuzz regression command/unpaired-surrogate-escape). */
    ck_assert_int_eq(parse("/api/users", "{\"user_id\":\"u1\",\"name\":\"\\ud83d\\ude00\"}"), 0);
    ck_assert_int_eq(parse("/api/users", "{\"user_id\":\"u1\",\"name\":\"a\\udddd\"}"), 400);
    ASSERT_PROBLEM(400, "validation_failed");
    ck_assert(has_error("name", "Unicode"));
    ck_assert_int_eq(parse("/api/users", "{\"user_id\":\"u1\",\"name\":\"n\",\"\\udc00\":1}"), 400);
    ASSERT_PROBLEM(400, "validation_failed");
    ck_assert(has_error("(a key that is not valid Unicode)", "unknown"));
}
END_TEST

/* nested(n): {"reason": [[[...]]]} with n levels in total (the object counts as one). */
static char *nested(int levels)
{
    struct sbuf sb = SBUF_INIT;
    sbuf_puts(&sb, "{\"reason\":");
    for (int i = 1; i < levels; i++)
        sbuf_putc(&sb, '[');
    for (int i = 1; i < levels; i++)
        sbuf_putc(&sb, ']');
    sbuf_putc(&sb, '}');
    return sb.data;
}

START_TEST(test_nesting)
{
    char *ok = nested(32);
    ck_assert_int_eq(parse("/api/orders/o1/cancel", ok), 400);
    ASSERT_PROBLEM(400, "validation_failed");
    ck_assert(has_error("reason", "must be a string or null")); /* depth fine, type wrong */
    free(ok);
    char *deep = nested(33);
    ck_assert_int_eq(parse("/api/orders/o1/cancel", deep), 400);
    ASSERT_PROBLEM(400, "validation_failed");
    ck_assert(strstr(prob.detail, "deeper than 32"));
    free(deep);
    char *deeper = nested(10000);
    ck_assert_int_eq(parse("/api/orders/o1/cancel", deeper), 400);
    ASSERT_PROBLEM(400, "validation_failed");
    ck_assert(strstr(prob.detail, "deeper than 32"));
    free(deeper);
    /* Deep and unterminated: still refused, still 400. */
    struct sbuf sb = SBUF_INIT;
    for (int i = 0; i < 10000; i++)
        sbuf_putc(&sb, '[');
    ck_assert_int_eq(parse("/api/users", sb.data), 400);
    sbuf_free(&sb);
}
END_TEST

/* --- numbers --------------------------------------------------------------------------- */

START_TEST(test_numbers)
{
    static const struct {
        const char *v;
        const char *msg;
    } cases[] = {
        { "9223372036854775808", "out of range" },
        { "-9223372036854775809", "out of range" },
        { "18446744073709551616", "out of range" },
        { "99999999999999999999999999", "out of range" },
        { "1e3", "must be an integer" },
        { "1E3", "must be an integer" },
        { "1.5", "must be an integer" },
        { "1.0", "must be an integer" },
        { "0", "out of range" },
        { "-5", "out of range" },
        { "-9223372036854775808", "out of range" },
        { "\"5\"", "must be an integer" },
        { "true", "must be an integer" },
        { "null", "must be an integer" },
        { "[1]", "must be an integer" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"amount_cents\":%s}", cases[i].v);
        ck_assert_msg(parse("/api/users/u1/deposits", body) == 400, "%s", body);
        ASSERT_PROBLEM(400, "validation_failed");
        ck_assert_msg(has_error("amount_cents", cases[i].msg), "%s: %s", body,
                      prob.nerrors ? prob.errors[0].message : "(none)");
    }
    ck_assert_int_eq(parse("/api/items/i1/restock", "{\"quantity\":1000001}"), 400);
    ck_assert(has_error("quantity", "out of range"));
    ck_assert_int_eq(parse("/api/orders", "{\"user_id\":\"u\",\"items\":[{\"item_id\":\"a\",\"quantity\":1001}]}"), 400);
    ck_assert(has_error("items[0].quantity", "out of range"));
}
END_TEST

/* --- field errors ---------------------------------------------------------------------- */

START_TEST(test_duplicate_unknown_missing_type)
{
    ck_assert_int_eq(parse("/api/users", "{\"user_id\":\"a\",\"name\":\"n\",\"user_id\":\"b\"}"), 400);
    ASSERT_PROBLEM(400, "validation_failed");
    ck_assert(has_error("user_id", "duplicate key"));
    ck_assert_int_eq(parse("/api/users", "{\"user_id\":\"a\",\"name\":\"n\",\"admin\":true}"), 400);
    ck_assert(has_error("admin", "unknown field"));
    ck_assert_int_eq(parse("/api/users", "{\"user_id\":\"a\"}"), 400);
    ck_assert(has_error("name", "is required"));
    ck_assert_int_eq(parse("/api/users", "{\"user_id\":5,\"name\":[\"n\"]}"), 400);
    ck_assert(has_error("user_id", "must be a string"));
    ck_assert(has_error("name", "must be a string"));
    ck_assert_int_eq(prob.nerrors, 2);
    ck_assert_int_eq(parse("/api/users", "[]"), 400);
    ASSERT_PROBLEM(400, "validation_failed");
    ck_assert_int_eq(parse("/api/users", "\"x\""), 400);
    ASSERT_PROBLEM(400, "validation_failed");
    ck_assert_int_eq(parse("/api/orders/o1/pay", "{\"x\":1}"), 400);
    ck_assert(has_error("x", "unknown field"));
    /* Every problem is reported at once. */
    ck_assert_int_eq(parse("/api/items", "{\"item_id\":\"-\",\"name\":\"\",\"price_cents\":1.5,\"x\":{}}"), 400);
    ck_assert(has_error("item_id", "must match"));
    ck_assert(has_error("name", "must not be empty"));
    ck_assert(has_error("price_cents", "must be an integer"));
    ck_assert(has_error("x", "unknown field"));
    ck_assert(has_error("category", "is required"));
    ck_assert_int_eq(prob.nerrors, 5);
    /* The rendered problem carries the list. */
    struct sbuf sb = SBUF_INIT;
    problem_render(&prob, &sb);
    ck_assert(strstr(sb.data, "\"type\":\"/problems/validation_failed\""));
    ck_assert(strstr(sb.data, "\"code\":\"validation_failed\""));
    ck_assert(strstr(sb.data, "\"status\":400"));
    ck_assert(strstr(sb.data, "{\"field\":\"category\",\"message\":\"is required\"}"));
    sbuf_free(&sb);
}
END_TEST

START_TEST(test_strings_and_ids)
{
    char body[1024], s[300];
    memset(s, 'x', 256);
    s[256] = '\0';
    snprintf(body, sizeof body, "{\"user_id\":\"u\",\"name\":\"%s\"}", s);
    ck_assert_int_eq(parse("/api/users", body), 0);
    s[256] = 'x';
    s[257] = '\0';
    snprintf(body, sizeof body, "{\"user_id\":\"u\",\"name\":\"%s\"}", s);
    ck_assert_int_eq(parse("/api/users", body), 400);
    ck_assert(has_error("name", "longer than 256"));
    static const char *const bad_ids[] = { "", "-a", "_a", ".a", "a b", "a/b", "a\\u00e9",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 65 */ };
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"name\":\"n\"}", bad_ids[i]);
        ck_assert_msg(parse("/api/users", body) == 400, "%s", body);
        ck_assert(has_error("user_id", "must match"));
    }
    static const char *const good_ids[] = { "a", "0", "A_b.c:d-e",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 64 */ };
    for (size_t i = 0; i < sizeof good_ids / sizeof good_ids[0]; i++) {
        snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"name\":\"n\"}", good_ids[i]);
        ck_assert_msg(parse("/api/users", body) == 0, "%s", body);
    }
}
END_TEST

static char *order_with_lines(int n, int duplicate)
{
    struct sbuf sb = SBUF_INIT;
    sbuf_puts(&sb, "{\"user_id\":\"u\",\"items\":[");
    for (int i = 0; i < n; i++)
        sbuf_printf(&sb, "%s{\"item_id\":\"i%d\",\"quantity\":1}", i ? "," : "",
                    duplicate && i == n - 1 ? 0 : i);
    sbuf_puts(&sb, "]}");
    return sb.data;
}

START_TEST(test_order_lines)
{
    char *b = order_with_lines(100, 0);
    ck_assert_int_eq(parse("/api/orders", b), 0);
    ck_assert_int_eq(cmd->nlines, 100);
    free(b);
    b = order_with_lines(101, 0);
    ck_assert_int_eq(parse("/api/orders", b), 400);
    ck_assert(has_error("items", "at most 100"));
    free(b);
    b = order_with_lines(3, 1);
    ck_assert_int_eq(parse("/api/orders", b), 400);
    ck_assert(has_error("items[2].item_id", "duplicate item_id"));
    free(b);
    ck_assert_int_eq(parse("/api/orders", "{\"user_id\":\"u\",\"items\":[]}"), 400);
    ck_assert(has_error("items", "at least one"));
    ck_assert_int_eq(parse("/api/orders", "{\"user_id\":\"u\",\"items\":[{\"item_id\":\"a\"},5,{\"item_id\":\"b\",\"quantity\":1,\"q\":1}]}"), 400);
    ck_assert(has_error("items[0].quantity", "is required"));
    ck_assert(has_error("items[1]", "must be an object"));
    ck_assert(has_error("items[2].q", "unknown field"));
    ck_assert_int_eq(parse("/api/orders", "{\"user_id\":\"u\",\"items\":{}}"), 400);
    ck_assert(has_error("items", "must be an array"));
}
END_TEST

START_TEST(test_messages_stay_utf8)
{
    /* A long unknown key is cut in the field path, never inside a UTF-8 sequence. */
    char body[256];
    snprintf(body, sizeof body, "{\"%s\xc3\xa9\xc3\xa9\xc3\xa9\":1}",
             "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk" /* 47 */);
    ck_assert_int_eq(parse("/api/users", body), 400);
    ck_assert(has_error("kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", "unknown field"));
    /* A method of arbitrary bytes is not echoed into the detail. */
    ck_assert_int_eq(parse3("G\xed\x47", "/api/users", "", 0), 405);
    ck_assert(strchr(prob.detail, '\xed') == NULL);
}
END_TEST

START_TEST(test_body_limit)
{
    size_t n = CMD_BODY_MAX + 1;
    char *big = xmalloc(n + 1);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    ck_assert_int_eq(parse3("POST", "/api/users", big, n), 413);
    ASSERT_PROBLEM(413, "payload_too_large");
    free(big);
}
END_TEST

START_TEST(test_many_errors_are_capped)
{
    struct sbuf sb = SBUF_INIT;
    sbuf_putc(&sb, '{');
    for (int i = 0; i < 500; i++)
        sbuf_printf(&sb, "%s\"k%d\":1", i ? "," : "", i);
    sbuf_putc(&sb, '}');
    ck_assert_int_eq(parse("/api/users", sb.data), 400);
    ck_assert_int_eq(prob.nerrors, PROBLEM_ERRORS_MAX);
    ck_assert(prob.dropped > 0);
    sbuf_free(&sb);
}
END_TEST

/* --- event codec ----------------------------------------------------------------------- */

START_TEST(test_event_roundtrip)
{
    struct event *ev = xcalloc(1, sizeof *ev), *back = xcalloc(1, sizeof *back);
    ev->type = EV_ORDER_CREATED;
    ev->schema = 2;
    ev->version = 1;
    strcpy(ev->id, "o1");
    strcpy(ev->user_id, "u1");
    ev->nlines = 2;
    strcpy(ev->lines[0].item_id, "a");
    strcpy(ev->lines[0].name, "A \"quoted\"");
    strcpy(ev->lines[0].category, "c");
    ev->lines[0].quantity = 2;
    ev->lines[0].price = 150;
    strcpy(ev->lines[1].item_id, "b");
    strcpy(ev->lines[1].name, "B");
    strcpy(ev->lines[1].category, "d");
    ev->lines[1].quantity = 1;
    ev->lines[1].price = 5;
    ev->amount = 305;
    ev->has_idem = 1;
    strcpy(ev->idem_key, "key-1");
    for (int i = 0; i < 16; i++)
        ev->fingerprint[i] = (unsigned char)(i * 17);
    struct sbuf data = SBUF_INIT, meta = SBUF_INIT;
    event_encode_data(ev, &data);
    event_encode_meta(ev, &meta);
    ck_assert_str_eq(data.data, "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"lines\":["
                     "{\"item_id\":\"a\",\"name\":\"A \\\"quoted\\\"\",\"category\":\"c\",\"quantity\":2,\"price_cents\":150},"
                     "{\"item_id\":\"b\",\"name\":\"B\",\"category\":\"d\",\"quantity\":1,\"price_cents\":5}],"
                     "\"amount_cents\":305}");
    ck_assert_str_eq(meta.data, "{\"idempotency_key\":\"key-1\",\"request\":\"00112233445566778899aabbccddeeff\"}");
    struct log_record rec = {
        .position = 9, .stream_version = 1, .timestamp_ms = 1000, .schema_version = 2,
        .stream = "order-o1", .stream_len = 8, .type = "OrderCreated", .type_len = 12,
        .meta = meta.data, .meta_len = meta.len, .data = data.data, .data_len = data.len,
    };
    char err[256];
    ck_assert_int_eq(event_decode(&rec, back, err, sizeof err), 0);
    ck_assert_int_eq(back->nlines, 2);
    ck_assert_str_eq(back->lines[0].name, "A \"quoted\"");
    ck_assert_int_eq(back->amount, 305);
    ck_assert_int_eq(back->has_idem, 1);
    ck_assert_mem_eq(back->fingerprint, ev->fingerprint, 16);
    ck_assert_int_eq(back->position, 9);
    struct sbuf body = SBUF_INIT;
    int status;
    event_response(back, &status, &body);
    ck_assert_int_eq(status, 201);
    ck_assert_str_eq(body.data, "{\"order_id\":\"o1\",\"status\":\"created\",\"amount_cents\":305,\"version\":1,\"position\":9}");
    /* An unknown type and a newer schema are refused with a reason. */
    rec.type = "OrderTeleported";
    rec.type_len = 15;
    ck_assert_int_eq(event_decode(&rec, back, err, sizeof err), EVENT_UNKNOWN_TYPE);
    ck_assert(strstr(err, "unknown event type"));
    rec.type = "OrderCreated";
    rec.type_len = 12;
    rec.schema_version = 3;
    ck_assert_int_eq(event_decode(&rec, back, err, sizeof err), -1);
    ck_assert(strstr(err, "schema"));
    /* Schema 1 lines have no price: decoded as -1 for the applier to upcast. */
    rec.schema_version = 1;
    rec.data = "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"lines\":[{\"item_id\":\"a\",\"quantity\":2}],\"amount_cents\":300}";
    rec.data_len = strlen(rec.data);
    ck_assert_int_eq(event_decode(&rec, back, err, sizeof err), 0);
    ck_assert_int_eq(back->lines[0].price, -1);
    sbuf_free(&data);
    sbuf_free(&meta);
    sbuf_free(&body);
    free(ev);
    free(back);
}
END_TEST

static Suite *domain_suite(void)
{
    Suite *s = suite_create("domain");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_valid_register);
    tcase_add_test(tc, test_valid_others);
    tcase_add_test(tc, test_routes);
    tcase_add_test(tc, test_invalid_json);
    tcase_add_test(tc, test_invalid_utf8_and_nul);
    tcase_add_test(tc, test_nesting);
    tcase_add_test(tc, test_numbers);
    tcase_add_test(tc, test_duplicate_unknown_missing_type);
    tcase_add_test(tc, test_strings_and_ids);
    tcase_add_test(tc, test_order_lines);
    tcase_add_test(tc, test_body_limit);
    tcase_add_test(tc, test_messages_stay_utf8);
    tcase_add_test(tc, test_many_errors_are_capped);
    suite_add_tcase(s, tc);
    TCase *ev = tcase_create("event");
    tcase_add_test(ev, test_event_roundtrip);
    suite_add_tcase(s, ev);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(domain_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
