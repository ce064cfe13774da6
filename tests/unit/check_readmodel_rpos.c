/* Unit tests of readmodel/rpos, the shared read position: a wait times out after about its
 * timeout when nothing is published, and is woken across processes (futex) by a publish
 * well before it; the generation counter; a wait for a position already passed returns at
 * once. */
#include <config.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "readmodel/rpos.h"
#include "testdir.h"
#include "util/clock.h"
#include "util/eflog.h"

START_TEST(test_rpos_wakes_other_process)
{
    char path[128];
    snprintf(path, sizeof path, "%s/position", td_dir);
    struct rpos *rp;
    ck_assert_int_eq(rpos_open(path, &rp), 0);
    ck_assert_uint_eq(rpos_position(rp), 0);
    /* Nothing published: the wait times out after about its timeout, not much sooner. */
    uint64_t t0 = ef_mono_ns();
    ck_assert_int_eq(rpos_wait(rp, 0, 100), 0);
    ck_assert_uint_ge(ef_mono_ns() - t0, 90000000u);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rpos *w;
        if (rpos_open(path, &w) != 0)
            _exit(1);
        usleep(100000);
        rpos_publish(w, 42);
        rpos_bump_generation(w);
        rpos_close(w);
        _exit(0);
    }
    /* Woken by the other process's publish well before the (long) timeout. */
    t0 = ef_mono_ns();
    while (rpos_position(rp) < 42 && ef_mono_ns() - t0 < 5000000000u)
        rpos_wait(rp, rpos_position(rp), 5000);
    ck_assert_uint_eq(rpos_position(rp), 42);
    ck_assert_uint_lt(ef_mono_ns() - t0, 4000000000u);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_uint_eq(rpos_generation(rp), 1);
    ck_assert_int_eq(rpos_wait(rp, 41, 10), 1); /* already past: returns at once */
    rpos_close(rp);
}
END_TEST

static Suite *readmodel_rpos_suite(void)
{
    Suite *s = suite_create("readmodel_rpos");
    TCase *tc = tcase_create("readmodel_rpos");
    tcase_add_unchecked_fixture(tc, td_case_setup, td_case_teardown);
    tcase_add_checked_fixture(tc, td_setup, td_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_rpos_wakes_other_process);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    eflog_init("check_readmodel_rpos", EF_ERROR);
    SRunner *sr = srunner_create(readmodel_rpos_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
