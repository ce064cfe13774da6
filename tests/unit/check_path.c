/* Unit tests of util/path: ef_path_join joins with one slash, fills a buffer exactly, and
 * refuses (-ENAMETOOLONG) a path one byte too long instead of truncating it;
 * ef_path_join_alloc holds any length. */
#include <config.h>

#include "util/path.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_join)
{
    char out[64];
    ck_assert_int_eq(ef_path_join(out, sizeof out, "/var/lib/eventfold", "log"), 0);
    ck_assert_str_eq(out, "/var/lib/eventfold/log");
    ck_assert_int_eq(ef_path_join(out, sizeof out, "dir", "write/snapshots"), 0);
    ck_assert_str_eq(out, "dir/write/snapshots");
}
END_TEST

START_TEST(test_exact_fit_and_one_byte_over)
{
    char out[8];
    /* "abc/def" is 7 bytes and its NUL the 8th. */
    ck_assert_int_eq(ef_path_join(out, sizeof out, "abc", "def"), 0);
    ck_assert_str_eq(out, "abc/def");
    ck_assert_int_eq(ef_path_join(out, sizeof out, "abc", "defg"), -ENAMETOOLONG);
    ck_assert_int_eq(ef_path_join(out, sizeof out, "abcdefgh", ""), -ENAMETOOLONG);
    ck_assert_int_eq(ef_path_join(out, 0, "a", "b"), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_long_data_directory)
{
    /* A data directory of the longest length the config accepts still gets an answer, and
     * a joined path longer than the buffer is refused. */
    static char dir[4096], out[4096];
    memset(dir, 'd', sizeof dir - 1);
    dir[0] = '/';
    ck_assert_int_eq(ef_path_join(out, sizeof out, dir, "log"), -ENAMETOOLONG);
    char big[4096 + 16];
    ck_assert_int_eq(ef_path_join(big, sizeof big, dir, "log"), 0);
    ck_assert_uint_eq(strlen(big), sizeof dir - 1 + 4);
    ck_assert_str_eq(big + sizeof dir - 1, "/log");
}
END_TEST

START_TEST(test_join_alloc)
{
    /* The allocating join holds any length, the longest data directory included. */
    char *p = ef_path_join_alloc("/var/lib/eventfold/log", "control");
    ck_assert_str_eq(p, "/var/lib/eventfold/log/control");
    free(p);
    static char dir[8192];
    memset(dir, 'd', sizeof dir - 1);
    p = ef_path_join_alloc(dir, "x");
    ck_assert_uint_eq(strlen(p), sizeof dir - 1 + 2);
    ck_assert_str_eq(p + sizeof dir - 1, "/x");
    free(p);
}
END_TEST

static Suite *path_suite(void)
{
    Suite *s = suite_create("path");
    TCase *tc = tcase_create("join");
    tcase_add_test(tc, test_join);
    tcase_add_test(tc, test_exact_fit_and_one_byte_over);
    tcase_add_test(tc, test_long_data_directory);
    tcase_add_test(tc, test_join_alloc);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(path_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
