/* Unit tests of util/clock: the fixed clock tests rely on, the real one between two
 * readings of the system clock, the monotonic clock, RFC 3339 and day formatting (before
 * 1970 too) and the strict day parser (calendar checks, leap years, round trips). */
#include <config.h>

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(test_fixed_and_real_clock)
{
    ef_clock_set_fixed(1765000000123);
    ck_assert_int_eq(ef_now_ms(), 1765000000123);
    ck_assert_int_eq(ef_now_ms(), 1765000000123);
    ef_clock_set_fixed(0); /* the epoch is a valid fixed time, not "unset" */
    ck_assert_int_eq(ef_now_ms(), 0);
    ef_clock_set_fixed(-1);
    int64_t before = realtime_ms();
    int64_t now = ef_now_ms();
    int64_t after = realtime_ms();
    ck_assert_int_le(before, now);
    ck_assert_int_le(now, after);
}
END_TEST

START_TEST(test_monotonic)
{
    uint64_t prev = ef_mono_ns();
    ck_assert_uint_gt(prev, 0);
    int backwards = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t t = ef_mono_ns();
        backwards += t < prev;
        prev = t;
    }
    ck_assert_int_eq(backwards, 0);
    /* Not the wall clock: fixing that does not move it. */
    ef_clock_set_fixed(5);
    ck_assert_uint_ge(ef_mono_ns(), prev);
    ef_clock_set_fixed(-1);
}
END_TEST

static const char *fmt_time(int64_t ms)
{
    static char out[EF_TIME_RFC3339_LEN];
    memset(out, '#', sizeof out);
    ef_format_time(ms, out);
    ck_assert_uint_eq(strlen(out), EF_TIME_RFC3339_LEN - 1);
    return out;
}

static const char *fmt_day(int64_t ms)
{
    static char out[11];
    memset(out, '#', sizeof out);
    ef_format_day(ms, out);
    ck_assert_uint_eq(strlen(out), 10);
    return out;
}

START_TEST(test_format)
{
    ck_assert_str_eq(fmt_time(0), "1970-01-01T00:00:00.000Z");
    ck_assert_str_eq(fmt_time(1765000000123), "2025-12-06T05:46:40.123Z");
    ck_assert_str_eq(fmt_time(951782400999), "2000-02-29T00:00:00.999Z");
    /* Before the epoch the milliseconds still count forward within their second. */
    ck_assert_str_eq(fmt_time(-1), "1969-12-31T23:59:59.999Z");
    ck_assert_str_eq(fmt_time(-1001), "1969-12-31T23:59:58.999Z");
    ck_assert_str_eq(fmt_day(0), "1970-01-01");
    ck_assert_str_eq(fmt_day(-1), "1969-12-31");
    ck_assert_str_eq(fmt_day(1765000000123), "2025-12-06");
    ck_assert_str_eq(fmt_day(1765065599999), "2025-12-06"); /* the day's last millisecond */
    ck_assert_str_eq(fmt_day(1765065600000), "2025-12-07");
}
END_TEST

START_TEST(test_parse_day)
{
    int64_t ms = 12345;
    ck_assert_int_eq(ef_parse_day("1970-01-01", &ms), 0);
    ck_assert_int_eq(ms, 0);
    ck_assert_int_eq(ef_parse_day("2025-12-06", &ms), 0);
    ck_assert_int_eq(ms, 1764979200000);
    ck_assert_int_eq(ef_parse_day("2024-02-29", &ms), 0); /* leap year */
    ck_assert_int_eq(ms, 1709164800000);
    ck_assert_int_eq(ef_parse_day("2000-02-29", &ms), 0); /* divisible by 400 */
    static const char *const bad[] = {
        "2026-02-29", "1900-02-29", "2026-02-30", "2026-04-31", "2026-13-01", "2026-00-10",
        "2026-01-00", "2026-01-32", "2026-1-01",  "2026-01-1",  "2026-01-011", "2026/01/01",
        "2026-01-0a", "20x6-01-01", " 026-01-01", "",          "2026-01-01T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ms = 777;
        ck_assert_msg(ef_parse_day(bad[i], &ms) == -1, "accepted %s", bad[i]);
        ck_assert_int_eq(ms, 777); /* untouched on failure */
    }
    /* Every day of a leap year round-trips through format and parse. */
    int64_t day = 1704067200000; /* 2024-01-01 */
    for (int i = 0; i < 366; i++, day += 86400000) {
        char s[11];
        ef_format_day(day + 43200000, s); /* noon: the same day */
        ck_assert_int_eq(ef_parse_day(s, &ms), 0);
        ck_assert_int_eq(ms, day);
    }
    char s[11];
    ef_format_day(day, s);
    ck_assert_str_eq(s, "2025-01-01");
}
END_TEST

static Suite *clock_suite(void)
{
    Suite *s = suite_create("clock");
    TCase *tc = tcase_create("clock");
    tcase_add_test(tc, test_fixed_and_real_clock);
    tcase_add_test(tc, test_monotonic);
    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_parse_day);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(clock_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
