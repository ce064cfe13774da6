/* Unit tests of the shared vocabulary (domain/vocab.h) and of the two sides agreeing on it.
 *
 * The vocabulary: the id grammar against its own pattern compiled by regcomp(3), status
 * and type names in both directions.
 *
 * The round trip: every event type, with plain and edge values (INT64_MAX, 100 lines, the
 * longest ids and strings, UTF-8, every kind of escape), is encoded by the command side
 * (event_encode_data, the bytes that go into the log) and then
 *  - parsed by the read side's fast path alone and by its yajl fallback alone
 *    (rmodel_ev_parse_with), and by rmodel_ev_parse as the fold calls it: each result is
 *    compared field by field with the event that was encoded, so the three agree; the fast
 *    path must take exactly the documented subset (ASCII without escapes, integers of at
 *    most 18 digits) and give up on anything else;
 *  - decoded by the command side (event_decode): the same event, re-encoded to the same bytes.
 * OrderCreated is also checked at schema 1, the version the read side upcasts.
 */
#include <config.h>

#include <check.h>
#include <regex.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/event.h"
#include "domain/vocab.h"
#include "readmodel/rmodel_event.h"
#include "util/sbuf.h"

/* --- the vocabulary ---------------------------------------------------------------- */

static int regex_id(const regex_t *re, const char *s, size_t n)
{
    char buf[VOCAB_ID_MAX + 8];
    ck_assert_uint_lt(n, sizeof buf);
    memcpy(buf, s, n);
    buf[n] = '\0';
    return regexec(re, buf, 0, NULL, 0) == 0;
}

START_TEST(test_id_grammar)
{
    regex_t re;
    ck_assert_int_eq(regcomp(&re, VOCAB_ID_PATTERN, REG_EXTENDED | REG_NOSUB), 0);
    /* Every byte as the first and as a later character. */
    for (int c = 1; c < 256; c++) {
        char first[1] = { (char)c }, later[3] = { 'a', (char)c, 'z' };
        ck_assert_int_eq(vocab_valid_id(first, 1), regex_id(&re, first, 1));
        ck_assert_int_eq(vocab_valid_id(later, 3), regex_id(&re, later, 3));
    }
    ck_assert(vocab_valid_id("a", 1));
    ck_assert(vocab_valid_id("A0_.:-z", 7));
    ck_assert(!vocab_valid_id("_a", 2));
    ck_assert(!vocab_valid_id("a/b", 3));
    ck_assert(!vocab_valid_id("a%20", 4));
    ck_assert(!vocab_valid_id("", 0));
    ck_assert(!vocab_valid_id("a\0b", 3)); /* regexec cannot see past a NUL */
    ck_assert(!vocab_valid_id("\0", 1));
    char id[VOCAB_ID_MAX + 2];
    memset(id, 'x', sizeof id);
    ck_assert(vocab_valid_id(id, VOCAB_ID_MAX));
    ck_assert(regex_id(&re, id, VOCAB_ID_MAX));
    ck_assert(!vocab_valid_id(id, VOCAB_ID_MAX + 1));
    ck_assert(!regex_id(&re, id, VOCAB_ID_MAX + 1));
    regfree(&re);
}
END_TEST

START_TEST(test_statuses)
{
    static const char *const want[] = { NULL, "created", "paid", "shipped", "delivered", "cancelled" };
    for (int st = ORDER_STATUS_MIN; st <= ORDER_STATUS_MAX; st++) {
        ck_assert_str_eq(vocab_status_name(st), want[st]);
        ck_assert_int_eq(vocab_status_find(want[st]), st);
        enum order_status parsed;
        ck_assert_int_eq(order_status_parse(want[st], &parsed), 0);
        ck_assert_int_eq(parsed, st);
        ck_assert_str_eq(order_status_name(st), want[st]);
    }
    ck_assert_int_eq(ORDER_CREATED, 1); /* stored in both models: never renumbered */
    ck_assert_int_eq(ORDER_CANCELLED, 5);
    ck_assert_ptr_null(vocab_status_name(0));
    ck_assert_ptr_null(vocab_status_name(ORDER_STATUS_MAX + 1));
    ck_assert_ptr_null(vocab_status_name(-1));
    ck_assert_str_eq(order_status_name(0), "unknown");
    ck_assert_int_eq(vocab_status_find("unknown"), 0);
    ck_assert_int_eq(vocab_status_find("Created"), 0);
    ck_assert_int_eq(vocab_status_find(""), 0);
}
END_TEST

START_TEST(test_event_names)
{
    for (int t = 0; t < EV_TYPE_COUNT; t++) {
        const char *name = vocab_event_name((enum ev_type)t);
        ck_assert_int_eq(vocab_event_find(name, strlen(name)), t);
        ck_assert_int_eq(vocab_event_find(name, strlen(name) - 1), -1);
        ck_assert_uint_ge(vocab_event_schema((enum ev_type)t), VOCAB_SCHEMA_MIN);
        for (int u = 0; u < t; u++)
            ck_assert_str_ne(vocab_event_name((enum ev_type)u), name);
    }
    ck_assert_str_eq(vocab_event_name(EV_ORDER_CREATED), "OrderCreated");
    ck_assert_uint_eq(vocab_event_schema(EV_ORDER_CREATED), 2);
    ck_assert_int_eq(vocab_event_find("OrderCreatedX", 13), -1);
    ck_assert_int_eq(vocab_event_find("OrderPaid", 9), -1);
    ck_assert_int_eq(vocab_event_find("", 0), -1);
}
END_TEST

/* --- events with plain and edge values ----------------------------------------------- */

enum flavour {
    PLAIN,   /* what a shop writes every day */
    MAXINT,  /* INT64_MAX in every integer: 19 digits, past the fast path */
    LONGEST, /* 64-byte ids, 256-byte strings, 100 lines: ASCII, the fast path's */
    UNICODE, /* multi-byte UTF-8 in every free-text string */
    ESCAPES, /* quote, backslash, control characters, DEL in every free-text string */
    ZERO,    /* 0 in every integer where the domain allows it, empty optional strings */
    FLAVOUR_COUNT
};

/* 256 bytes of UTF-8 (2-, 3- and 4-byte sequences), the longest string a command takes. */
static void fill_unicode(char *dst)
{
    static const char *const pieces[] = { "Gr\xc3\xbc\xc3\x9f" "e ", "\xe6\x97\xa5\xe6\x9c\xac ",
                                          "\xf0\x9f\x98\x80 ", "\xc3\xa9t\xc3\xa9 " };
    size_t n = 0;
    for (int i = 0;; i++) {
        const char *p = pieces[i % 4];
        if (n + strlen(p) > CMD_STR_MAX)
            break;
        memcpy(dst + n, p, strlen(p));
        n += strlen(p);
    }
    while (n < CMD_STR_MAX)
        dst[n++] = '.';
    dst[n] = '\0';
}

static void fill_text(char *dst, enum flavour f, const char *plain)
{
    switch (f) {
    case LONGEST:
        memset(dst, 'x', CMD_STR_MAX);
        memcpy(dst, plain, strlen(plain));
        dst[CMD_STR_MAX] = '\0';
        break;
    case UNICODE:
        fill_unicode(dst);
        break;
    case ESCAPES:
        strcpy(dst, "q\" b\\ / \n\r\t\b\f \x01\x1f \x7f end");
        break;
    default:
        strcpy(dst, plain);
    }
}

/* An id: plain, or VOCAB_ID_MAX bytes using every kind of character the grammar allows. */
static void fill_id(char *dst, enum flavour f, const char *plain, int salt)
{
    if (f != LONGEST) {
        snprintf(dst, CMD_ID_MAX + 1, "%s%d", plain, salt);
        return;
    }
    static const char chars[] = "AZaz09_.:-";
    dst[0] = plain[0];
    for (int i = 1; i < CMD_ID_MAX; i++)
        dst[i] = chars[(i + salt) % 10];
    dst[CMD_ID_MAX] = '\0';
    ck_assert(vocab_valid_id(dst, CMD_ID_MAX));
}

static int64_t amount(enum flavour f, int64_t plain)
{
    return f == MAXINT ? INT64_MAX : f == ZERO ? 0 : plain;
}

static void make_lines(struct event *ev, enum flavour f)
{
    ev->nlines = f == LONGEST ? STATE_LINES_MAX : 2;
    for (size_t i = 0; i < ev->nlines; i++) {
        struct ev_line *l = &ev->lines[i];
        fill_id(l->item_id, f, "i", (int)i);
        fill_text(l->name, f, "Book");
        fill_text(l->category, f, "books");
        l->quantity = f == MAXINT ? INT64_MAX : (int64_t)i + 1; /* the read side needs > 0 */
        l->price = amount(f, 1200 + (int64_t)i);
    }
}

/* The meta of a command with an Idempotency-Key (every other flavour). */
static void make_meta(struct event *ev, enum flavour f)
{
    ev->has_idem = f % 2 == 1;
    if (!ev->has_idem)
        return;
    if (f == LONGEST)
        memset(ev->idem_key, 'k', EV_IDEM_KEY_MAX);
    else
        strcpy(ev->idem_key, f == UNICODE ? "cl\xc3\xa9-\xe6\x97\xa5" : f == ESCAPES ? "k\"\\\n1" : "key-1");
    for (int i = 0; i < EV_FINGERPRINT_LEN; i++)
        ev->fingerprint[i] = (unsigned char)(i * 17 + 3);
}

/* An event of type with the values of flavour in the fields its type has, and the rest
 * zero, as the command side makes them (shop.c). */
static void make_event(struct event *ev, enum ev_type type, enum flavour f)
{
    event_clear(ev);
    ev->type = type;
    ev->schema = vocab_event_schema(type);
    ev->position = f == MAXINT ? INT64_MAX : 42;
    ev->version = f == MAXINT ? INT64_MAX : 3;
    ev->at_ms = 1767261600000LL;
    fill_id(ev->id, f, type <= EV_FUNDS_DEPOSITED ? "u" : type <= EV_ITEM_RESTOCKED ? "i" : "o", 1);
    switch (type) {
    case EV_USER_REGISTERED:
        fill_text(ev->name, f, "Ann");
        ev->has_email = f != ZERO;
        if (ev->has_email)
            fill_text(ev->email, f, "ann@example.com");
        break;
    case EV_FUNDS_DEPOSITED:
        ev->amount = amount(f, 2400);
        ev->balance = amount(f, 7600);
        break;
    case EV_ITEM_ADDED:
        fill_text(ev->name, f, "Book");
        fill_text(ev->category, f, "books");
        ev->price = amount(f, 1200);
        break;
    case EV_ITEM_RESTOCKED:
        ev->quantity = f == MAXINT ? INT64_MAX : 10;
        ev->available = amount(f, 15);
        break;
    case EV_ORDER_CREATED:
        fill_id(ev->user_id, f, "u", 2);
        make_lines(ev, f);
        ev->amount = amount(f, 3601);
        break;
    case EV_PAYMENT_PROCESSED:
        fill_id(ev->user_id, f, "u", 2);
        ev->amount = amount(f, 3601);
        ev->balance = amount(f, 6399);
        break;
    case EV_ORDER_SHIPPED:
    case EV_ORDER_DELIVERED:
        break;
    case EV_ORDER_CANCELLED:
        fill_id(ev->user_id, f, "u", 2);
        ev->has_reason = f != ZERO && f != PLAIN;
        if (ev->has_reason)
            fill_text(ev->reason, f, "changed my mind");
        ev->refunded = amount(f, 3601);
        ev->previous_status = f == PLAIN || f == ZERO ? ORDER_CREATED : ORDER_PAID;
        break;
    case EV_TYPE_COUNT:
        ck_abort();
    }
    make_meta(ev, f);
}

/* The data of an OrderCreated at schema 1 (doc/events.md): lines carry only item_id and
 * quantity. No build writes it any more, so it is written here, with the same JSON helpers
 * as the command side's encoder. */
static void encode_order_v1(const struct event *ev, struct sbuf *o)
{
    sbuf_putc(o, '{');
    sbuf_json_key(o, "order_id");
    sbuf_json_cstr(o, ev->id);
    sbuf_json_key(o, "user_id");
    sbuf_json_cstr(o, ev->user_id);
    sbuf_json_key(o, "lines");
    sbuf_putc(o, '[');
    for (size_t i = 0; i < ev->nlines; i++) {
        sbuf_puts(o, i ? ",{" : "{");
        sbuf_json_key(o, "item_id");
        sbuf_json_cstr(o, ev->lines[i].item_id);
        sbuf_json_key(o, "quantity");
        sbuf_json_i64(o, ev->lines[i].quantity);
        sbuf_putc(o, '}');
    }
    sbuf_putc(o, ']');
    sbuf_json_key(o, "amount_cents");
    sbuf_json_i64(o, ev->amount);
    sbuf_putc(o, '}');
}

/* Whether data lies in the fast path's documented subset: every string byte in 0x20..0x7e
 * and no backslash, every integer at most 18 digits. An independent scan of the JSON. */
static int in_fast_subset(const char *data, size_t n)
{
    int in_str = 0;
    size_t digits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)data[i];
        if (in_str) {
            if (c == '"')
                in_str = 0;
            else if (c < 0x20 || c > 0x7e || c == '\\')
                return 0;
            continue;
        }
        digits = c >= '0' && c <= '9' ? digits + 1 : 0;
        if (digits > 18)
            return 0;
        in_str = c == '"';
    }
    return 1;
}

/* --- comparing what each side made of it ------------------------------------------- */

static void expect_str(struct rmodel_str got, const char *want, const char *what)
{
    size_t n = strlen(want);
    ck_assert_msg(got.n == n && (n == 0 || memcmp(got.p, want, n) == 0),
                  "%s: got %zu bytes '%.*s', want %zu bytes '%s'", what, got.n, (int)got.n,
                  got.p ? got.p : "", n, want);
}

/* The read side's view of ev at schema, field by field: what the data carries, and zeros
 * and empty strings for what it does not. */
static void expect_read(const struct rmodel_ev *r, const struct event *ev, int schema,
                        const char *parser)
{
    ck_assert_msg(r->type == ev->type, "%s: type", parser);
    ck_assert_int_eq(r->schema, schema);
    ck_assert_ptr_nonnull(r->projection);
    const char *order_id = "", *user_id = "", *item_id = "", *name = "", *category = "";
    int64_t amount = 0, balance = 0, price = 0, quantity = 0, available = 0, refunded = 0;
    size_t nlines = 0;
    switch (ev->type) {
    case EV_USER_REGISTERED:
        user_id = ev->id, name = ev->name;
        break;
    case EV_FUNDS_DEPOSITED:
        user_id = ev->id, amount = ev->amount, balance = ev->balance;
        break;
    case EV_ITEM_ADDED:
        item_id = ev->id, name = ev->name, category = ev->category, price = ev->price;
        break;
    case EV_ITEM_RESTOCKED:
        item_id = ev->id, quantity = ev->quantity, available = ev->available;
        break;
    case EV_ORDER_CREATED:
        order_id = ev->id, user_id = ev->user_id, nlines = ev->nlines, amount = ev->amount;
        break;
    case EV_PAYMENT_PROCESSED:
        order_id = ev->id, user_id = ev->user_id, amount = ev->amount, balance = ev->balance;
        break;
    case EV_ORDER_SHIPPED:
    case EV_ORDER_DELIVERED:
        order_id = ev->id;
        break;
    case EV_ORDER_CANCELLED:
        order_id = ev->id, user_id = ev->user_id, refunded = ev->refunded;
        break;
    case EV_TYPE_COUNT:
        ck_abort();
    }
    expect_str(r->order_id, order_id, "order_id");
    expect_str(r->user_id, user_id, "user_id");
    expect_str(r->item_id, item_id, "item_id");
    expect_str(r->name, name, "name");
    expect_str(r->category, category, "category");
    ck_assert_msg(r->amount == amount && r->balance == balance && r->price == price &&
                      r->quantity == quantity && r->available == available &&
                      r->refunded == refunded,
                  "%s: an integer field differs", parser);
    int upcast = ev->type == EV_ORDER_CREATED && schema == 1;
    ck_assert_int_eq(r->upcast, upcast);
    ck_assert_uint_eq(r->nlines, nlines);
    for (size_t i = 0; i < nlines; i++) {
        const struct rmodel_line *l = &r->lines[i];
        const struct ev_line *w = &ev->lines[i];
        expect_str(l->item, w->item_id, "line item_id");
        ck_assert_int_eq(l->quantity, w->quantity);
        expect_str(l->name, (upcast ? "" : w->name), "line name");
        expect_str(l->category, (upcast ? "" : w->category), "line category");
        ck_assert_int_eq(l->price, (upcast ? 0 : w->price));
    }
}

/* The command side's decoding of rec gives back ev (at schema 1: lines without name,
 * category and price, which the applier upcasts), and re-encodes to the same data. */
static void expect_decoded(const struct log_record *rec, const struct event *ev, int schema)
{
    static struct event back;
    char err[256] = "";
    ck_assert_msg(event_decode(rec, &back, err, sizeof err) == 0, "event_decode: %s", err);
    ck_assert_msg(memcmp(&back, ev, offsetof(struct event, lines)) == 0,
                  "event_decode gives another event than was encoded");
    for (size_t i = 0; i < ev->nlines; i++) {
        const struct ev_line *b = &back.lines[i], *w = &ev->lines[i];
        ck_assert_str_eq(b->item_id, w->item_id);
        ck_assert_int_eq(b->quantity, w->quantity);
        ck_assert_str_eq(b->name, (schema == 1 ? "" : w->name));
        ck_assert_str_eq(b->category, (schema == 1 ? "" : w->category));
        ck_assert_int_eq(b->price, (schema == 1 ? -1 : w->price));
    }
    if (schema == vocab_event_schema(ev->type)) {
        struct sbuf again = SBUF_INIT;
        event_encode_data(&back, &again);
        ck_assert_uint_eq(again.len, rec->data_len);
        ck_assert(memcmp(again.data, rec->data, rec->data_len) == 0);
        sbuf_free(&again);
    }
}

/* Parses data of ev's type at schema with each parser and checks every result. */
static void round_trip(const struct event *ev, int schema, const struct sbuf *data,
                       const struct sbuf *meta)
{
    struct log_record rec;
    memset(&rec, 0, sizeof rec);
    char stream[EV_STREAM_MAX];
    event_stream(ev, stream, sizeof stream);
    rec.position = ev->position;
    rec.stream = stream;
    rec.stream_len = strlen(stream);
    rec.stream_version = ev->version;
    rec.timestamp_ms = ev->at_ms;
    rec.type = vocab_event_name(ev->type);
    rec.type_len = strlen(rec.type);
    rec.schema_version = (uint16_t)schema;
    rec.data = data->data;
    rec.data_len = data->len;
    rec.meta = meta->data;
    rec.meta_len = meta->len;

    struct rmodel_ev fast = { 0 }, slow = { 0 }, fold = { 0 };
    struct sbuf reason = SBUF_INIT;
    int rc = rmodel_ev_parse_with(&fast, &rec, &reason, RMODEL_EV_PARSE_FAST);
    if (in_fast_subset(data->data, data->len)) {
        ck_assert_msg(rc == 0, "fast path: %d %s", rc, sbuf_str(&reason));
        expect_read(&fast, ev, schema, "fast path");
    } else {
        ck_assert_msg(rc == RMODEL_EV_GAVE_UP, "the fast path took JSON outside its subset");
    }
    rc = rmodel_ev_parse_with(&slow, &rec, &reason, RMODEL_EV_PARSE_YAJL);
    ck_assert_msg(rc == 0, "yajl: %s", sbuf_str(&reason));
    expect_read(&slow, ev, schema, "yajl");
    rc = rmodel_ev_parse(&fold, &rec, &reason);
    ck_assert_msg(rc == 0, "rmodel_ev_parse: %s", sbuf_str(&reason));
    expect_read(&fold, ev, schema, "rmodel_ev_parse");
    expect_decoded(&rec, ev, schema);
    rmodel_ev_free(&fast);
    rmodel_ev_free(&slow);
    rmodel_ev_free(&fold);
    sbuf_free(&reason);
}

/* _i: one event type, in every flavour; OrderCreated also at schema 1. */
START_TEST(test_round_trip)
{
    static struct event ev;
    enum ev_type type = (enum ev_type)_i;
    for (int f = 0; f < FLAVOUR_COUNT; f++) {
        make_event(&ev, type, (enum flavour)f);
        struct sbuf data = SBUF_INIT, meta = SBUF_INIT;
        event_encode_data(&ev, &data);
        event_encode_meta(&ev, &meta);
        round_trip(&ev, ev.schema, &data, &meta);
        if (type == EV_ORDER_CREATED) {
            /* The version the read side upcasts, as an old build wrote it... */
            ev.schema = 1;
            sbuf_reset(&data);
            encode_order_v1(&ev, &data);
            round_trip(&ev, 1, &data, &meta);
            /* ...and today's data under the old number: the line fields it did not have
             * are ignored by both sides, not taken. */
            sbuf_reset(&data);
            event_encode_data(&ev, &data);
            round_trip(&ev, 1, &data, &meta);
        }
        sbuf_free(&data);
        sbuf_free(&meta);
    }
}
END_TEST

/* A schema 1 OrderCreated decoded into an event that held a schema 2 one: the line names
 * and categories of the earlier event must not survive (event.h: "" from schema 1). */
START_TEST(test_decode_v1_after_v2)
{
    static struct event ev, back;
    make_event(&ev, EV_ORDER_CREATED, PLAIN);
    struct sbuf data = SBUF_INIT;
    event_encode_data(&ev, &data);
    struct log_record rec = { .position = 1, .stream_version = 1, .type = "OrderCreated",
                              .type_len = 12, .schema_version = 2, .data = data.data,
                              .data_len = data.len };
    char err[128];
    ck_assert_int_eq(event_decode(&rec, &back, err, sizeof err), 0);
    ck_assert_str_eq(back.lines[0].name, "Book");
    sbuf_reset(&data);
    encode_order_v1(&ev, &data);
    rec.schema_version = 1;
    rec.data = data.data;
    rec.data_len = data.len;
    ck_assert_int_eq(event_decode(&rec, &back, err, sizeof err), 0);
    ck_assert_uint_eq(back.nlines, 2);
    for (size_t i = 0; i < back.nlines; i++) {
        ck_assert_str_eq(back.lines[i].name, "");
        ck_assert_str_eq(back.lines[i].category, "");
        ck_assert_int_eq(back.lines[i].price, -1);
    }
    sbuf_free(&data);
}
END_TEST

/* The documented subset, both ways: the plain events are the fast path's, edge values not. */
START_TEST(test_fast_path_subset)
{
    ck_assert(in_fast_subset("{\"a\":\"x y\",\"n\":123456789012345678}", 35));
    ck_assert(!in_fast_subset("{\"n\":1234567890123456789}", 25));
    ck_assert(!in_fast_subset("{\"a\":\"\\n\"}", 10));
    ck_assert(!in_fast_subset("{\"a\":\"\xc3\xa9\"}", 10));
    ck_assert(in_fast_subset("{\"a\":\"1234567890123456789\"}", 27));
    static struct event ev;
    for (int t = 0; t < EV_TYPE_COUNT; t++) {
        make_event(&ev, (enum ev_type)t, PLAIN);
        struct sbuf data = SBUF_INIT;
        event_encode_data(&ev, &data);
        ck_assert_msg(in_fast_subset(data.data, data.len), "%s", vocab_event_name(ev.type));
        sbuf_free(&data);
    }
}
END_TEST

static Suite *vocab_suite(void)
{
    Suite *s = suite_create("vocab");
    TCase *tc = tcase_create("vocabulary");
    tcase_add_test(tc, test_id_grammar);
    tcase_add_test(tc, test_statuses);
    tcase_add_test(tc, test_event_names);
    suite_add_tcase(s, tc);
    tc = tcase_create("round_trip");
    tcase_add_test(tc, test_fast_path_subset);
    tcase_add_test(tc, test_decode_v1_after_v2);
    tcase_add_loop_test(tc, test_round_trip, 0, EV_TYPE_COUNT);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(vocab_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
