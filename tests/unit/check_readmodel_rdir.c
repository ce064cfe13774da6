/* Unit tests of readmodel/rdir, the read model's directory: prepare (idempotent) makes the
 * first model current, a new model gets the next name, the switch moves the current link
 * and names the old model, which can then be removed. */
#include <config.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "readmodel/rdir.h"
#include "testdir.h"
#include "util/eflog.h"

START_TEST(test_rdir_switch)
{
    ck_assert_int_eq(rdir_prepare(td_dir), 0);
    ck_assert_int_eq(rdir_prepare(td_dir), 0); /* idempotent */
    char link[512], target[64], name[64], old[128];
    snprintf(link, sizeof link, "%s/read/current", td_dir);
    ssize_t n = readlink(link, target, sizeof target - 1);
    ck_assert_int_gt(n, 0);
    target[n] = '\0';
    ck_assert_str_eq(target, "model-0000000001");
    ck_assert_int_eq(rdir_new_model(td_dir, name, sizeof name), 0);
    ck_assert_str_eq(name, "model-0000000002");
    ck_assert_int_eq(rdir_switch(td_dir, name, old, sizeof old), 0);
    ck_assert_str_eq(old, "model-0000000001");
    n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    ck_assert_str_eq(target, "model-0000000002");
    ck_assert_int_eq(rdir_remove_model(td_dir, old), 0);
    snprintf(link, sizeof link, "%s/read/%s", td_dir, old);
    ck_assert_int_ne(access(link, F_OK), 0);
}
END_TEST

static Suite *readmodel_rdir_suite(void)
{
    Suite *s = suite_create("readmodel_rdir");
    TCase *tc = tcase_create("readmodel_rdir");
    tcase_add_unchecked_fixture(tc, td_case_setup, td_case_teardown);
    tcase_add_checked_fixture(tc, td_setup, td_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_rdir_switch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    eflog_init("check_readmodel_rdir", EF_ERROR);
    SRunner *sr = srunner_create(readmodel_rdir_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
