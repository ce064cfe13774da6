/* Unit tests of the relay framework's engine-neutral parts: how a record becomes a
 * relay_event (body, headers, category, CRC), reading a durable position back for a
 * sink's resume check, and the progress files (lock, state, status and metrics). */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "readmodel/rmodel_render.h"
#include "relay/relay.h"
#include "relay/relay_state.h"
#include "testdir.h"
#include "util/eflog.h"
#include "util/sbuf.h"

/* Encodes ev at position and decodes it back into *rec (pointers into buf). */
static void make_record(const struct log_event *ev, uint64_t position, struct sbuf *buf, struct log_record *rec)
{
    size_t n = record_encoded_size(ev);
    ck_assert_uint_gt(n, 0);
    sbuf_reset(buf);
    sbuf_reserve(buf, n);
    record_encode(ev, position, buf->data);
    ck_assert_int_eq(record_decode(buf->data, n, rec), RECORD_OK);
}

static struct log_event event(const char *stream, const char *type, const char *meta, const char *data)
{
    struct log_event e = {
        .stream = stream, .stream_len = strlen(stream), .type = type, .type_len = strlen(type),
        .schema_version = 2, .stream_version = 5, .timestamp_ms = 1765000000123,
        .meta = meta, .meta_len = meta ? strlen(meta) : 0, .data = data, .data_len = strlen(data),
    };
    return e;
}

START_TEST(test_render_headers_body_crc)
{
    struct sbuf buf = SBUF_INIT, want = SBUF_INIT;
    struct log_record rec;
    struct log_event e = event("order-o1", "OrderCreated", "{\"idempotency_key\":\"k1\"}", "{\"a\":1}");
    make_record(&e, 7, &buf, &rec);
    struct relay_render r = { 0 };
    struct relay_event ev;
    char err[256];
    ck_assert_int_eq(relay_render_event(&rec, &r, &ev, err, sizeof err), 0);
    ck_assert_uint_eq(ev.position, 7);
    rmodel_render_event(&rec, &want);
    ck_assert_uint_eq(ev.body_len, want.len);
    ck_assert(memcmp(ev.body, want.data, want.len) == 0);
    /* "data" is the last member, written verbatim: the body ends with the data and '}'. */
    ck_assert_str_eq(ev.body + ev.body_len - 8, "{\"a\":1}}");
    ck_assert_uint_eq(ev.category_len, 5);
    ck_assert(memcmp(ev.category, "order", 5) == 0);
    uint32_t crc;
    memcpy(&crc, buf.data + 8, 4); /* little-endian host, as the record format */
    ck_assert_uint_eq(ev.record_crc, crc);
    char crc_hex[16];
    snprintf(crc_hex, sizeof crc_hex, "%08x", crc);
    static const char *const names[RELAY_HEADERS] = {
        "Eventfold-Position", "Eventfold-Stream", "Eventfold-Type", "Eventfold-Schema-Version",
        "Eventfold-Stream-Version", "Eventfold-Timestamp-Ms", "Eventfold-Meta", "Eventfold-Crc32c",
    };
    const char *const values[RELAY_HEADERS] = {
        "7", "order-o1", "OrderCreated", "2", "5", "1765000000123", "{\"idempotency_key\":\"k1\"}", crc_hex,
    };
    for (int i = 0; i < RELAY_HEADERS; i++) {
        ck_assert_str_eq(ev.headers[i].name, names[i]);
        ck_assert_str_eq(ev.headers[i].value, values[i]);
        ck_assert_str_eq(relay_event_header(&ev, names[i]), values[i]);
    }
    ck_assert_ptr_null(relay_event_header(&ev, "Nope"));
    relay_render_free(&r);
    sbuf_free(&buf);
    sbuf_free(&want);
}
END_TEST

START_TEST(test_render_category_and_empty_meta)
{
    struct sbuf buf = SBUF_INIT;
    struct log_record rec;
    struct log_event e = event("plain", "Thing", NULL, "{}");
    make_record(&e, 1, &buf, &rec);
    struct relay_render r = { 0 };
    struct relay_event ev;
    char err[256];
    ck_assert_int_eq(relay_render_event(&rec, &r, &ev, err, sizeof err), 0);
    ck_assert_uint_eq(ev.category_len, 5); /* no '-': the whole stream */
    ck_assert_str_eq(relay_event_header(&ev, "Eventfold-Meta"), "");
    /* The same buffers serve the next event. */
    struct log_event e2 = event("user-u-2", "UserRegistered", "{}", "{\"x\":[1,2]}");
    make_record(&e2, 2, &buf, &rec);
    ck_assert_int_eq(relay_render_event(&rec, &r, &ev, err, sizeof err), 0);
    ck_assert_uint_eq(ev.category_len, 4);
    ck_assert_str_eq(relay_event_header(&ev, "Eventfold-Stream"), "user-u-2");
    ck_assert_str_eq(relay_event_header(&ev, "Eventfold-Position"), "2");
    relay_render_free(&r);
    sbuf_free(&buf);
}
END_TEST

START_TEST(test_render_refuses_header_bytes)
{
    struct sbuf buf = SBUF_INIT;
    struct log_record rec;
    struct log_event e = event("user-u1", "UserRegistered", "{\"k\":\"a\r\nX: y\"}", "{}");
    make_record(&e, 42, &buf, &rec);
    struct relay_render r = { 0 };
    struct relay_event ev;
    char err[256] = "";
    ck_assert_int_eq(relay_render_event(&rec, &r, &ev, err, sizeof err), RELAY_EFATAL);
    ck_assert_ptr_nonnull(strstr(err, "position 42"));
    relay_render_free(&r);
    sbuf_free(&buf);
}
END_TEST

START_TEST(test_render_position_from_log)
{
    char path[256];
    snprintf(path, sizeof path, "%s/log", td_dir);
    struct log *lg = NULL;
    ck_assert_int_eq(log_open(path, NULL, &lg), 0);
    for (int i = 1; i <= 3; i++) {
        char stream[32];
        snprintf(stream, sizeof stream, "item-i%d", i);
        struct log_event e = event(stream, "ItemAdded", NULL, "{\"n\":1}");
        uint64_t pos;
        ck_assert_int_eq(log_append(lg, &e, &pos), 0);
        ck_assert_uint_eq(pos, (uint64_t)i);
    }
    struct relay_render r = { 0 };
    struct relay_event ev;
    char err[256];
    ck_assert_int_eq(relay_render_position(lg, 2, &r, &ev, err, sizeof err), 0);
    ck_assert_str_eq(relay_event_header(&ev, "Eventfold-Position"), "2");
    ck_assert_str_eq(relay_event_header(&ev, "Eventfold-Stream"), "item-i2");
    ck_assert(memcmp(ev.category, "item", 4) == 0 && ev.category_len == 4);
    ck_assert_int_eq(relay_render_position(lg, 4, &r, &ev, err, sizeof err), RELAY_EFATAL);
    ck_assert_ptr_nonnull(strstr(err, "position 4 is beyond"));
    ck_assert_int_eq(relay_render_position(lg, 0, &r, &ev, err, sizeof err), RELAY_EFATAL);
    relay_render_free(&r);
    log_close(lg);
}
END_TEST

START_TEST(test_state_files)
{
    struct relay_state list[4];
    ck_assert_int_eq(relay_state_running(td_dir, "nats"), 0);
    int fd = -1, fd2 = -1;
    ck_assert_int_eq(relay_state_lock(td_dir, "nats", &fd), 0);
    /* OFD locks conflict between open file descriptions, also within one process. */
    ck_assert_int_eq(relay_state_lock(td_dir, "nats", &fd2), -EBUSY);
    ck_assert_int_eq(relay_state_running(td_dir, "nats"), 1);
    ck_assert_uint_eq(relay_state_list(td_dir, list, 4), 0); /* no state file yet */
    struct relay_state st = { .sink = "nats", .position = 1234, .pid = 99, .updated_ms = 5 };
    ck_assert_int_eq(relay_state_write(td_dir, &st), 0);
    struct relay_state got;
    ck_assert_int_eq(relay_state_read(td_dir, "nats", &got), 0);
    ck_assert_str_eq(got.sink, "nats");
    ck_assert_uint_eq(got.position, 1234);
    ck_assert_int_eq(got.pid, 99);
    ck_assert_int_eq(got.updated_ms, 5);
    ck_assert_int_eq(relay_state_read(td_dir, "kafka", &got), -ENOENT);
    ck_assert_uint_eq(relay_state_list(td_dir, list, 4), 1);

    struct sbuf out = SBUF_INIT;
    sbuf_putc(&out, '{');
    relay_state_render_status(td_dir, 1300, &out);
    sbuf_putc(&out, '}');
    ck_assert_str_eq(sbuf_str(&out), "{\"relays\":[{\"sink\":\"nats\",\"position\":1234,\"lag_events\":66}]}");
    sbuf_reset(&out);
    relay_state_render_metrics(td_dir, 1300, &out);
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "\neventfold_relay_position{sink=\"nats\"} 1234\n"));
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "\neventfold_relay_lag_events{sink=\"nats\"} 66\n"));

    /* A relay that is gone (its lock released) is not listed, whatever its state says. */
    close(fd);
    ck_assert_int_eq(relay_state_running(td_dir, "nats"), 0);
    sbuf_reset(&out);
    sbuf_putc(&out, '{');
    relay_state_render_status(td_dir, 1300, &out);
    sbuf_putc(&out, '}');
    ck_assert_str_eq(sbuf_str(&out), "{\"relays\":[]}");
    sbuf_free(&out);
}
END_TEST

START_TEST(test_state_malformed)
{
    char path[256];
    snprintf(path, sizeof path, "%s/relay-nats.state", td_dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("sink=nats\nposition=12x\n", f);
    fclose(f);
    struct relay_state got;
    ck_assert_int_eq(relay_state_read(td_dir, "nats", &got), -EINVAL);
    f = fopen(path, "w");
    fputs("sink=kafka\nposition=12\n", f); /* another sink's content */
    fclose(f);
    ck_assert_int_eq(relay_state_read(td_dir, "nats", &got), -EINVAL);
}
END_TEST

static Suite *relay_suite(void)
{
    Suite *s = suite_create("relay");
    TCase *tc = tcase_create("relay");
    tcase_add_unchecked_fixture(tc, td_case_setup, td_case_teardown);
    tcase_add_checked_fixture(tc, td_setup, td_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_render_headers_body_crc);
    tcase_add_test(tc, test_render_category_and_empty_meta);
    tcase_add_test(tc, test_render_refuses_header_bytes);
    tcase_add_test(tc, test_render_position_from_log);
    tcase_add_test(tc, test_state_files);
    tcase_add_test(tc, test_state_malformed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    eflog_init("check_relay", EF_ERROR);
    SRunner *sr = srunner_create(relay_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
