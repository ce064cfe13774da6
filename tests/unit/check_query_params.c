/* Unit tests of query/query_params: unsigned 64-bit parameters (limits, no sign, no
 * blanks, no trailing junk). The id grammar is domain/vocab.h's, tested with it. */
#include <config.h>

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "query/query_int.h"
#include "util/eflog.h"

START_TEST(test_params)
{
    uint64_t v;
    ck_assert_int_eq(query_parse_u64("0", &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(query_parse_u64("18446744073709551615", &v), 0);
    ck_assert_uint_eq(v, UINT64_MAX);
    ck_assert_int_eq(query_parse_u64("18446744073709551616", &v), -1);
    ck_assert_int_eq(query_parse_u64("", &v), -1);
    ck_assert_int_eq(query_parse_u64("-1", &v), -1);
    ck_assert_int_eq(query_parse_u64("12a", &v), -1);
    ck_assert_int_eq(query_parse_u64(" 1", &v), -1);
}
END_TEST

static Suite *query_params_suite(void)
{
    Suite *s = suite_create("query_params");
    TCase *tc = tcase_create("query_params");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_params);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    eflog_init("check_query_params", EF_ERROR);
    SRunner *sr = srunner_create(query_params_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
