/* Unit tests of util/falloc: ef_allocate gives a file real, zero-filled blocks up to the
 * length (no holes), keeps what the file held, never shrinks it, and reports failures as
 * -errno: a descriptor not open for writing, a file size limit (-EFBIG, in a child), and a
 * full tmpfs (-ENOSPC, as root). */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testdir.h"
#include "util/falloc.h"

static int open_file(const char *dir, const char *name, int flags)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, flags | O_CREAT | O_CLOEXEC, 0644);
    ck_assert_int_ge(fd, 0);
    return fd;
}

static void assert_allocated(int fd, off_t size)
{
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert_int_eq(st.st_size, size);
    ck_assert_msg((off_t)st.st_blocks * 512 >= size, "holes: %lld bytes, %lld allocated",
                  (long long)size, (long long)st.st_blocks * 512);
}

START_TEST(test_allocates_without_holes)
{
    int fd = open_file(td_dir, "f", O_RDWR);
    ck_assert_int_eq(pwrite(fd, "head", 4, 0), 4);
    ck_assert_int_eq(ef_allocate(fd, 1 << 20), 0);
    assert_allocated(fd, 1 << 20);
    char buf[4096];
    ck_assert_int_eq(pread(fd, buf, 4, 0), 4);
    ck_assert_int_eq(memcmp(buf, "head", 4), 0);
    ck_assert_int_eq(pread(fd, buf, sizeof buf, 500000), (ssize_t)sizeof buf);
    for (size_t i = 0; i < sizeof buf; i++)
        ck_assert_int_eq(buf[i], 0);
    /* A shorter length neither shrinks the file nor fails. */
    ck_assert_int_eq(ef_allocate(fd, 4096), 0);
    assert_allocated(fd, 1 << 20);
    /* A sparse file gets its holes filled. */
    int sparse = open_file(td_dir, "sparse", O_RDWR);
    ck_assert_int_eq(ftruncate(sparse, 256 * 1024), 0);
    ck_assert_int_eq(ef_allocate(sparse, 256 * 1024), 0);
    assert_allocated(sparse, 256 * 1024);
    close(sparse);
    close(fd);
}
END_TEST

static void allocate_limited(void *arg)
{
    (void)arg;
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = { 64 * 1024, 64 * 1024 };
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
        _exit(200);
    int fd = open_file(td_dir, "limited", O_RDWR);
    int rc = ef_allocate(fd, 1 << 20);
    _exit(rc > 0 ? 201 : -rc);
}

START_TEST(test_errors)
{
    int ro = open_file(td_dir, "ro", O_RDONLY);
    ck_assert_int_eq(ef_allocate(ro, 4096), -EBADF);
    close(ro);
    ck_assert_int_eq(ef_allocate(-1, 4096), -EBADF);
    int fd = open_file(td_dir, "neg", O_RDWR);
    ck_assert_int_eq(ef_allocate(fd, -1), -EINVAL);
    close(fd);
    int st = td_in_child(allocate_limited, NULL);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(-WEXITSTATUS(st), -EFBIG);
}
END_TEST

START_TEST(test_full_tmpfs)
{
    char mnt[256];
    snprintf(mnt, sizeof mnt, "%s/small", td_dir);
    if (td_mount_tmpfs(mnt, 256 * 1024) != 0)
        return;
    int fd = open_file(mnt, "f", O_RDWR);
    ck_assert_int_eq(ef_allocate(fd, 1 << 20), -ENOSPC);
    /* What fits is allocated. */
    ck_assert_int_eq(ef_allocate(fd, 64 * 1024), 0);
    assert_allocated(fd, 64 * 1024);
    close(fd);
}
END_TEST

static Suite *falloc_suite(void)
{
    Suite *s = suite_create("falloc");
    TCase *tc = tcase_create("falloc");
    tcase_add_unchecked_fixture(tc, td_case_setup, td_case_teardown);
    tcase_add_checked_fixture(tc, td_setup, td_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_allocates_without_holes);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_full_tmpfs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(falloc_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
