/* Unit tests of util/lockfile: a held lock refuses a second holder at once (nonblock) or
 * makes it wait (blocking) until released, also across processes; a failed attempt holds
 * nothing; a lock file another user made read-only can still be locked. */
#include <config.h>

#include "testdir.h"

#include "util/lockfile.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void setup(void) { td_setup(); }

static void teardown(void) { td_teardown(); }

static const char *lock_path(void)
{
    static char path[TD_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/x.lock", td_dir);
    return path;
}

START_TEST(test_nonblocking_refused_while_held)
{
    int a = -1, b = 7;
    ck_assert_int_eq(ef_lock_file(lock_path(), 1, &a), 0);
    ck_assert_int_ge(a, 0);
    ck_assert_int_eq(access(lock_path(), F_OK), 0);
    /* flock belongs to the open file description: a second open in this process is
     * another holder and is refused. */
    ck_assert_int_eq(ef_lock_file(lock_path(), 1, &b), -EWOULDBLOCK);
    ck_assert_int_eq(b, -1);
    ef_unlock_file(a);
    ck_assert_int_eq(ef_lock_file(lock_path(), 1, &b), 0);
    ef_unlock_file(b);
    ef_unlock_file(-1);
}
END_TEST

START_TEST(test_blocking_waits_for_release)
{
    int held = -1;
    ck_assert_int_eq(ef_lock_file(lock_path(), 1, &held), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        /* The inherited descriptor shares the parent's lock (lockfile.h): drop it, or the
         * child would wait for itself. */
        close(held);
        int fd = -1;
        int rc = ef_lock_file(lock_path(), 0, &fd);
        _exit(rc == 0 && fd >= 0 ? 0 : 1);
    }
    /* The child cannot get the lock while it is held here, so it must still be waiting
     * (however slow the machine: this cannot fail spuriously). */
    usleep(100000);
    int status;
    ck_assert_int_eq(waitpid(child, &status, WNOHANG), 0);
    ef_unlock_file(held);
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

START_TEST(test_failure_holds_nothing)
{
    char path[TD_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/missing/x.lock", td_dir);
    int fd = 7;
    ck_assert_int_eq(ef_lock_file(path, 1, &fd), -ENOENT);
    ck_assert_int_eq(fd, -1);
}
END_TEST

START_TEST(test_read_only_lock_file)
{
    int fd = -1;
    ck_assert_int_eq(ef_lock_file(lock_path(), 1, &fd), 0);
    ef_unlock_file(fd);
    ck_assert_int_eq(chmod(lock_path(), 0444), 0);
    fd = -1;
    ck_assert_int_eq(ef_lock_file(lock_path(), 1, &fd), 0);
    ef_unlock_file(fd);
}
END_TEST

static Suite *lockfile_suite(void)
{
    Suite *s = suite_create("lockfile");
    TCase *tc = tcase_create("lockfile");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_unchecked_fixture(tc, td_case_setup, td_case_teardown);
    tcase_add_test(tc, test_nonblocking_refused_while_held);
    tcase_add_test(tc, test_blocking_waits_for_release);
    tcase_add_test(tc, test_failure_holds_nothing);
    tcase_add_test(tc, test_read_only_lock_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lockfile_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
