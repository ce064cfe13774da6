/* Unit tests of util/sbuf: growth (doubling from 256, memory kept by reset, reserve
 * honoured), the NUL kept after len, printf past the small stack buffer, the JSON writers
 * (escapes, null, 64-bit limits, keys and commas, times), and the guard against sizes that
 * would wrap: the process aborts instead of writing past the buffer. */
#include <config.h>

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testdir.h"
#include "util/sbuf.h"

START_TEST(test_empty)
{
    struct sbuf sb = SBUF_INIT;
    ck_assert_ptr_null(sb.data);
    ck_assert_str_eq(sbuf_str(&sb), "");
    sbuf_reset(&sb); /* on a buffer that never had memory */
    ck_assert_ptr_null(sb.data);
    sbuf_append(&sb, NULL, 0);
    ck_assert_ptr_nonnull(sb.data);
    ck_assert_uint_eq(sb.len, 0);
    ck_assert_str_eq(sbuf_str(&sb), "");
    sbuf_free(&sb);
    ck_assert_ptr_null(sb.data);
    ck_assert_uint_eq(sb.cap, 0);
    sbuf_free(&sb); /* twice: a zeroed sbuf */
}
END_TEST

START_TEST(test_growth)
{
    struct sbuf sb;
    sbuf_init(&sb);
    sbuf_putc(&sb, 'a');
    ck_assert_uint_eq(sb.cap, 256);
    char chunk[100];
    memset(chunk, 'x', sizeof chunk);
    size_t want = 1;
    for (int i = 0; i < 50; i++) {
        sbuf_append(&sb, chunk, sizeof chunk);
        want += sizeof chunk;
        ck_assert_uint_eq(sb.len, want);
        ck_assert_uint_gt(sb.cap, sb.len); /* room for the NUL */
        ck_assert_int_eq(sb.data[sb.len], '\0');
        /* Capacity doubles from 256: always 256 times a power of two. */
        size_t c = sb.cap / 256;
        ck_assert_uint_eq(sb.cap % 256, 0);
        ck_assert_uint_eq(c & (c - 1), 0);
    }
    ck_assert_uint_eq(sb.cap, 8192);
    ck_assert_int_eq(sb.data[0], 'a');
    for (size_t i = 1; i < sb.len; i++)
        ck_assert_int_eq(sb.data[i], 'x');
    ck_assert_uint_eq(strlen(sbuf_str(&sb)), want);

    /* reset keeps the memory; reserve makes the next appends allocation-free. */
    char *mem = sb.data;
    size_t cap = sb.cap;
    sbuf_reset(&sb);
    ck_assert_ptr_eq(sb.data, mem);
    ck_assert_uint_eq(sb.cap, cap);
    ck_assert_str_eq(sbuf_str(&sb), "");
    sbuf_reserve(&sb, 20000);
    ck_assert_uint_ge(sb.cap, 20001);
    ck_assert_uint_eq(sb.len, 0);
    mem = sb.data;
    for (int i = 0; i < 200; i++)
        sbuf_append(&sb, chunk, sizeof chunk);
    ck_assert_ptr_eq(sb.data, mem);
    sbuf_free(&sb);
}
END_TEST

START_TEST(test_printf)
{
    struct sbuf sb = SBUF_INIT;
    sbuf_puts(&sb, "n=");
    sbuf_printf(&sb, "%d,%s", 42, "ok");
    ck_assert_str_eq(sbuf_str(&sb), "n=42,ok");
    /* Longer than the 256-byte stack buffer: formatted straight into the buffer. */
    char big[1001];
    memset(big, 'q', 1000);
    big[1000] = '\0';
    sbuf_printf(&sb, "[%s]%d", big, 7);
    ck_assert_uint_eq(sb.len, 7 + 1 + 1000 + 1 + 1);
    ck_assert_int_eq(sb.data[7], '[');
    ck_assert_int_eq(sb.data[1008], ']');
    ck_assert_str_eq(sb.data + 1009, "7");
    ck_assert_int_eq(sb.data[sb.len], '\0');
    sbuf_free(&sb);
}
END_TEST

static const char *json_str(struct sbuf *sb, const char *s, size_t n)
{
    sbuf_reset(sb);
    sbuf_json_str(sb, s, n);
    return sbuf_str(sb);
}

START_TEST(test_json_strings)
{
    struct sbuf sb = SBUF_INIT;
    ck_assert_str_eq(json_str(&sb, "", 0), "\"\"");
    ck_assert_str_eq(json_str(&sb, "plain/text", 10), "\"plain/text\"");
    ck_assert_str_eq(json_str(&sb, "a\"b\\c", 5), "\"a\\\"b\\\\c\"");
    ck_assert_str_eq(json_str(&sb, "\n\r\t\b\f", 5), "\"\\n\\r\\t\\b\\f\"");
    ck_assert_str_eq(json_str(&sb, "\x01\x1f\x7f", 3), "\"\\u0001\\u001f\x7f\"");
    /* A NUL inside the given length is escaped, not a terminator. */
    ck_assert_str_eq(json_str(&sb, "a\0b", 3), "\"a\\u0000b\"");
    /* UTF-8 is copied as it is. */
    ck_assert_str_eq(json_str(&sb, "\xc3\xa9t\xc3\xa9", 5), "\"\xc3\xa9t\xc3\xa9\"");
    /* A long string of escapes grows the buffer correctly (6 bytes out per byte in). */
    char ctl[2000];
    memset(ctl, 2, sizeof ctl);
    json_str(&sb, ctl, sizeof ctl);
    ck_assert_uint_eq(sb.len, 2 + 6 * sizeof ctl);
    ck_assert_int_eq(memcmp(sb.data + 1 + 6 * 1999, "\\u0002\"", 7), 0);
    sbuf_reset(&sb);
    sbuf_json_cstr(&sb, NULL);
    sbuf_putc(&sb, ' ');
    sbuf_json_cstr(&sb, "x");
    ck_assert_str_eq(sbuf_str(&sb), "null \"x\"");
    sbuf_free(&sb);
}
END_TEST

START_TEST(test_json_numbers_keys_time)
{
    struct sbuf sb = SBUF_INIT;
    sbuf_putc(&sb, '{');
    sbuf_json_key(&sb, "min");
    sbuf_json_i64(&sb, INT64_MIN);
    sbuf_json_key(&sb, "max");
    sbuf_json_u64(&sb, UINT64_MAX);
    sbuf_json_key(&sb, "list");
    sbuf_putc(&sb, '[');
    sbuf_putc(&sb, '{');
    sbuf_json_key(&sb, "at");
    sbuf_json_time(&sb, 1765000000123);
    sbuf_puts(&sb, "}]}");
    ck_assert_str_eq(sbuf_str(&sb), "{\"min\":-9223372036854775808,\"max\":18446744073709551615,"
                                    "\"list\":[{\"at\":\"2025-12-06T05:46:40.123Z\"}]}");
    /* No comma as the first thing in a buffer either. */
    sbuf_reset(&sb);
    sbuf_json_key(&sb, "k");
    ck_assert_str_eq(sbuf_str(&sb), "\"k\":");
    sbuf_free(&sb);
}
END_TEST

struct reserve_arg {
    size_t before; /* bytes appended first */
    size_t n;      /* then reserved */
};

static void reserve_huge(void *p)
{
    struct reserve_arg *a = p;
    struct sbuf sb = SBUF_INIT;
    /* The abort's message (or a sanitizer's report of the huge allocation) is expected:
     * kept out of the test's log. */
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0)
        dup2(null, 2);
    for (size_t i = 0; i < a->before; i++)
        sbuf_putc(&sb, 'z');
    sbuf_reserve(&sb, a->n);
    /* Reached only if the guard let the size through: prove it by writing there. */
    memset(sb.data + sb.len, 0, 4096);
}

/* The child must not return from sbuf_reserve: abort() (SIGABRT), or under a sanitizer or
 * valgrind its own failing exit; never exit 0. */
static void expect_no_return(size_t before, size_t n)
{
    struct reserve_arg a = { before, n };
    int st = td_in_child(reserve_huge, &a);
    ck_assert_msg(!(WIFEXITED(st) && WEXITSTATUS(st) == 0),
                  "sbuf_reserve(len %zu, %zu) returned instead of aborting", before, n);
    if (WIFSIGNALED(st))
        ck_assert_int_eq(WTERMSIG(st), SIGABRT);
}

START_TEST(test_reserve_guard)
{
    /* len + n + 1 wraps to a small number: without the guard it passes the capacity check
     * and the next write goes past the buffer. */
    expect_no_return(0, SIZE_MAX);
    expect_no_return(10, SIZE_MAX - 10);
    expect_no_return(300, SIZE_MAX - 300);
    /* Representable but not allocatable: the doubling must not overflow to 0 and spin. */
    expect_no_return(1, SIZE_MAX / 2 + 2);
}
END_TEST

static Suite *sbuf_suite(void)
{
    Suite *s = suite_create("sbuf");
    TCase *tc = tcase_create("sbuf");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_growth);
    tcase_add_test(tc, test_printf);
    tcase_add_test(tc, test_json_strings);
    tcase_add_test(tc, test_json_numbers_keys_time);
    tcase_add_test(tc, test_reserve_guard);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sbuf_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
