/* Unit tests of the mirror's message check (mcheck: a relayed message back into the exact
 * record, or a refusal naming the position) and of the replica marker and progress file
 * (util/replica). No NATS: messages are built here the way the relay builds them. */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/record.h"
#include "mirror/mcheck.h"
#include "readmodel/rmodel_render.h"
#include "testdir.h"
#include "util/replica.h"
#include "util/sbuf.h"

/* A relayed message of ev at position, as src/relay renders it: body and header values. */
struct relayed {
    struct sbuf body;
    char vals[MH_COUNT][256];
    struct mirror_msg msg;
};

static const char DATA[] = "{\"user_id\":\"ada\",\"amount_cents\":250,\"balance_cents\":750}";
static const char META[] = "{\"idempotency_key\":\"k1\",\"request\":\"ab\"}";

static struct log_event sample_event(void)
{
    struct log_event ev = {
        .stream = "user-ada", .stream_len = 8, .type = "FundsDeposited", .type_len = 14,
        .schema_version = 1, .stream_version = 3, .timestamp_ms = 1764979200123,
        .meta = META, .meta_len = sizeof META - 1, .data = DATA, .data_len = sizeof DATA - 1,
    };
    return ev;
}

static uint32_t crc_of(const struct log_event *ev, uint64_t position)
{
    size_t n = record_encoded_size(ev);
    unsigned char *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    record_encode(ev, position, buf);
    uint32_t crc = log_crc32c(0, buf + 12, LOG_HEADER_SIZE - 12 + ev->stream_len + ev->type_len +
                                               ev->meta_len + ev->data_len);
    free(buf);
    return crc;
}

static void relay_render(struct relayed *r, const struct log_event *ev, uint64_t position)
{
    memset(r, 0, sizeof *r);
    struct log_record rec = {
        .position = position, .stream_version = ev->stream_version, .timestamp_ms = ev->timestamp_ms,
        .schema_version = ev->schema_version, .stream = ev->stream, .stream_len = ev->stream_len,
        .type = ev->type, .type_len = ev->type_len, .meta = ev->meta, .meta_len = ev->meta_len,
        .data = ev->data, .data_len = ev->data_len,
    };
    rmodel_render_event(&rec, &r->body);
    snprintf(r->vals[MH_POSITION], 256, "%" PRIu64, position);
    snprintf(r->vals[MH_STREAM], 256, "%.*s", (int)ev->stream_len, ev->stream);
    snprintf(r->vals[MH_TYPE], 256, "%.*s", (int)ev->type_len, ev->type);
    snprintf(r->vals[MH_SCHEMA], 256, "%u", (unsigned)ev->schema_version);
    snprintf(r->vals[MH_STREAM_VERSION], 256, "%" PRIu64, ev->stream_version);
    snprintf(r->vals[MH_TIMESTAMP], 256, "%" PRId64, ev->timestamp_ms);
    snprintf(r->vals[MH_META], 256, "%.*s", (int)ev->meta_len, ev->meta);
    snprintf(r->vals[MH_CRC], 256, "%08" PRIx32, crc_of(ev, position));
    r->msg.seq = position;
    for (int i = 0; i < MH_COUNT; i++)
        r->msg.hdr[i] = r->vals[i];
    r->msg.body = r->body.data;
    r->msg.body_len = r->body.len;
}

static int rebuild(struct relayed *r, uint64_t expect, struct log_event *out, char *err, size_t errlen)
{
    struct mcheck c = { 0 };
    int rc = mcheck_rebuild(&c, &r->msg, expect, out, err, errlen);
    if (rc == 0)
        ck_assert_uint_eq(c.crc, strtoul(r->vals[MH_CRC], NULL, 16));
    mcheck_free(&c);
    return rc;
}

START_TEST(test_rebuilds_the_exact_record)
{
    struct log_event ev = sample_event(), got;
    struct relayed r;
    relay_render(&r, &ev, 42);
    char err[256] = "";
    ck_assert_int_eq(rebuild(&r, 42, &got, err, sizeof err), 0);
    ck_assert_mem_eq(got.stream, ev.stream, ev.stream_len);
    ck_assert_uint_eq(got.stream_len, ev.stream_len);
    ck_assert_mem_eq(got.type, ev.type, ev.type_len);
    ck_assert_uint_eq(got.schema_version, 1);
    ck_assert_uint_eq(got.stream_version, 3);
    ck_assert_int_eq(got.timestamp_ms, ev.timestamp_ms);
    ck_assert_uint_eq(got.meta_len, ev.meta_len);
    ck_assert_mem_eq(got.meta, META, ev.meta_len);
    ck_assert_uint_eq(got.data_len, ev.data_len);
    ck_assert_mem_eq(got.data, DATA, ev.data_len);
    ck_assert_uint_eq(crc_of(&got, 42), crc_of(&ev, 42));
    sbuf_free(&r.body);
}
END_TEST

START_TEST(test_gap_names_the_missing_position)
{
    struct log_event ev = sample_event(), got;
    struct relayed r;
    relay_render(&r, &ev, 45);
    char err[256] = "";
    ck_assert_int_eq(rebuild(&r, 42, &got, err, sizeof err), MIRROR_EGAP);
    ck_assert_ptr_nonnull(strstr(err, "position 42 is missing"));
    sbuf_free(&r.body);
}
END_TEST

/* Each way a message can lie: the mirror refuses it and names the position. */
START_TEST(test_disagreements)
{
    struct log_event ev = sample_event(), got;
    char err[256];
    for (int tamper = 0; tamper < 9; tamper++) {
        struct relayed r;
        relay_render(&r, &ev, 7);
        switch (tamper) {
        case 0: strcpy(r.vals[MH_CRC], "00000000"); break;           /* wrong CRC */
        case 1: strcpy(r.vals[MH_POSITION], "8"); break;             /* wrong position */
        case 2: r.body.data[r.body.len - 3] ^= 1; break;             /* data changed */
        case 3: strcpy(r.vals[MH_TIMESTAMP], "1764979200124"); break; /* prefix/header mismatch */
        case 4: r.msg.hdr[MH_TYPE] = NULL; break;                    /* header missing */
        case 5: r.msg.body_len--; break;                             /* no final '}' */
        case 6: strcpy(r.vals[MH_META], "{}"); break;                /* meta changed */
        case 7: strcpy(r.vals[MH_SCHEMA], "x1"); break;              /* not a number */
        case 8: r.msg.seq = 6; break;                                /* behind the position */
        }
        err[0] = '\0';
        int rc = rebuild(&r, 7, &got, err, sizeof err);
        ck_assert_msg(rc == MIRROR_EDISAGREE, "tamper %d: rc %d (%s)", tamper, rc, err);
        ck_assert_msg(strstr(err, "position 7") != NULL, "tamper %d: %s", tamper, err);
        sbuf_free(&r.body);
    }
}
END_TEST

static char tmpdir[TD_PATH_MAX];

static void setup(void)
{
    td_setup();
    strcpy(tmpdir, td_dir);
}

START_TEST(test_replica_marker_and_state)
{
    char stream[REPLICA_STREAM_MAX];
    ck_assert_int_eq(replica_marker_read(tmpdir, stream, sizeof stream), 0);
    ck_assert_int_eq(replica_marker_write(tmpdir, "EVENTFOLD"), 0);
    ck_assert_int_eq(replica_marker_read(tmpdir, stream, sizeof stream), 1);
    ck_assert_str_eq(stream, "EVENTFOLD");

    struct replica_state st = { .position = 12, .stream_last = 20, .pid = 99, .time_ms = 5 }, back;
    strcpy(st.stream, "EVENTFOLD");
    ck_assert_int_eq(replica_state_read(tmpdir, &back), -ENOENT);
    ck_assert_int_eq(replica_state_write(tmpdir, &st), 0);
    ck_assert_int_eq(replica_state_read(tmpdir, &back), 0);
    ck_assert_str_eq(back.stream, "EVENTFOLD");
    ck_assert_uint_eq(back.position, 12);
    ck_assert_uint_eq(back.stream_last, 20);
    ck_assert_int_eq(back.pid, 99);

    char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, REPLICA_STATE);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("stream=X\nposition=abc\n", f);
    fclose(f);
    ck_assert_int_eq(replica_state_read(tmpdir, &back), -EINVAL);
}
END_TEST

static Suite *mirror_suite(void)
{
    Suite *s = suite_create("mirror");
    TCase *tc = tcase_create("mcheck");
    tcase_add_test(tc, test_rebuilds_the_exact_record);
    tcase_add_test(tc, test_gap_names_the_missing_position);
    tcase_add_test(tc, test_disagreements);
    suite_add_tcase(s, tc);
    tc = tcase_create("replica");
    tcase_add_unchecked_fixture(tc, td_case_setup, td_case_teardown);
    tcase_add_checked_fixture(tc, setup, td_teardown);
    tcase_add_test(tc, test_replica_marker_and_state);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mirror_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
