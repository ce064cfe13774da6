/* Unit tests of util/uuid7: the layout of RFC 9562 (version, variant, time, the fraction
 * of the millisecond), order by time whatever the random part, and generated ids that are
 * well-formed, distinct and of now. */
#include <config.h>

#include "util/uuid7.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#define MS 1000000ull /* nanoseconds */

/* RFC 9562, appendix A.6: unix_ts_ms 0x017F22E279B0, rand_a 0xCC3, rand_b
 * 0x18C4DC0C0C07398F. Here rand_a is the fraction of the millisecond: 797 608 ns is
 * 0xCC3 / 4096 of it. The first random byte's top bits are set to show that the variant
 * replaces them. */
START_TEST(test_rfc_vector)
{
    static const unsigned char rnd[8] = { 0xd8, 0xc4, 0xdc, 0x0c, 0x0c, 0x07, 0x39, 0x8f };
    unsigned char u[16];
    char s[EF_UUID_TEXT_LEN + 1];
    ef_uuid7_bytes(u, 0x017F22E279B0ull * MS + 797608, rnd);
    uuid_unparse_lower(u, s);
    ck_assert_str_eq(s, "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
}
END_TEST

START_TEST(test_fraction_bounds)
{
    static const unsigned char rnd[8] = { 0 };
    unsigned char u[16];
    ef_uuid7_bytes(u, 5 * MS, rnd);
    ck_assert_int_eq(u[5], 5);
    ck_assert_int_eq(u[6], 0x70);
    ck_assert_int_eq(u[7], 0x00);
    ck_assert_int_eq(u[8], 0x80);
    ef_uuid7_bytes(u, 5 * MS + 999999, rnd); /* the last nanosecond of the millisecond */
    ck_assert_int_eq(u[5], 5);
    ck_assert_int_eq(u[6], 0x7f);
    ck_assert_int_eq(u[7], 0xff);
}
END_TEST

/* A later time sorts after an earlier one (as text, as the models' keys compare), even with
 * the largest random part before and the smallest after: across milliseconds, and within
 * one across ticks of 1/4096 ms. */
START_TEST(test_orders_by_time)
{
    static const unsigned char hi[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const unsigned char lo[8] = { 0 };
    static const uint64_t t[] = { 0, 245, 1 * MS - 1, 1 * MS, 1 * MS + 245, 0xfffffffull * MS,
                                  0x017F22E279B0ull * MS + 999999, 0xffffffffffffull * MS };
    char prev[EF_UUID_TEXT_LEN + 1], cur[EF_UUID_TEXT_LEN + 1];
    unsigned char u[16];
    ef_uuid7_bytes(u, t[0], hi);
    uuid_unparse_lower(u, prev);
    for (size_t i = 1; i < sizeof t / sizeof t[0]; i++) {
        ef_uuid7_bytes(u, t[i], lo);
        uuid_unparse_lower(u, cur);
        ck_assert_msg(strcmp(prev, cur) < 0, "%s (t=%llu) does not sort after %s", cur,
                      (unsigned long long)t[i], prev);
        ef_uuid7_bytes(u, t[i], hi);
        uuid_unparse_lower(u, prev);
    }
}
END_TEST

static uint64_t realtime_ms(void)
{
    struct timespec ts;
    ck_assert_int_eq(clock_gettime(CLOCK_REALTIME, &ts), 0);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

START_TEST(test_generated)
{
    enum { N = 10000 };
    char(*ids)[EF_UUID_TEXT_LEN + 1] = calloc(N, sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    uint64_t before = realtime_ms();
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(ef_uuid7(ids[i]), 0);
    uint64_t after = realtime_ms();
    for (size_t i = 0; i < N; i++) {
        const char *s = ids[i];
        ck_assert_uint_eq(strlen(s), EF_UUID_TEXT_LEN);
        for (int k = 0; k < EF_UUID_TEXT_LEN; k++) {
            if (k == 8 || k == 13 || k == 18 || k == 23)
                ck_assert_int_eq(s[k], '-');
            else
                ck_assert_msg(strchr("0123456789abcdef", s[k]) && s[k], "%s: not lower-case hex", s);
        }
        ck_assert_int_eq(s[14], '7');
        ck_assert_ptr_nonnull(strchr("89ab", s[19]));
        char ts[13];
        memcpy(ts, s, 8);
        memcpy(ts + 8, s + 9, 4);
        ts[12] = '\0';
        uint64_t ms = strtoull(ts, NULL, 16);
        ck_assert_msg(ms >= before && ms <= after, "%s: time %llu outside [%llu, %llu]", s,
                      (unsigned long long)ms, (unsigned long long)before, (unsigned long long)after);
    }
    qsort(ids, N, sizeof *ids, cmp_id);
    for (size_t i = 1; i < N; i++)
        ck_assert_msg(strcmp(ids[i - 1], ids[i]) != 0, "%s came out twice", ids[i]);
    free(ids);
}
END_TEST

static Suite *uuid7_suite(void)
{
    Suite *s = suite_create("uuid7");
    TCase *tc = tcase_create("uuid7");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_rfc_vector);
    tcase_add_test(tc, test_fraction_bounds);
    tcase_add_test(tc, test_orders_by_time);
    tcase_add_test(tc, test_generated);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(uuid7_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
