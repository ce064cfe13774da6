/* Unit tests of util/randbytes: bytes are never handed out twice, not within a thread, not
 * across threads, not across a fork (the child must not reuse the parent's block). */
#include <config.h>

#include "util/randbytes.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct id16 {
    unsigned char b[16];
};

static int cmp_id(const void *a, const void *b) { return memcmp(a, b, sizeof(struct id16)); }

/* 1 when ids[0..n) are pairwise distinct. */
static int all_distinct(struct id16 *ids, size_t n)
{
    qsort(ids, n, sizeof *ids, cmp_id);
    for (size_t i = 1; i < n; i++)
        if (memcmp(&ids[i - 1], &ids[i], sizeof *ids) == 0)
            return 0;
    return 1;
}

START_TEST(test_distinct_in_one_thread)
{
    enum { N = 10000 };
    struct id16 *ids = calloc(N, sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(ef_randbytes(ids[i].b, sizeof ids[i].b), 0);
    ck_assert_msg(all_distinct(ids, N), "a 16-byte draw came out twice");
    free(ids);
}
END_TEST

enum { THREADS = 4, PER_THREAD = 3000 };
static struct id16 shared_ids[THREADS * PER_THREAD];

static void *draw_many(void *arg)
{
    struct id16 *mine = &shared_ids[(size_t)(intptr_t)arg * PER_THREAD];
    for (size_t i = 0; i < PER_THREAD; i++)
        if (ef_randbytes(mine[i].b, sizeof mine[i].b) != 0)
            return (void *)1;
    return NULL;
}

START_TEST(test_distinct_across_threads)
{
    pthread_t th[THREADS];
    for (intptr_t i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, draw_many, (void *)i), 0);
    for (int i = 0; i < THREADS; i++) {
        void *r;
        ck_assert_int_eq(pthread_join(th[i], &r), 0);
        ck_assert_ptr_null(r);
    }
    ck_assert_msg(all_distinct(shared_ids, THREADS * PER_THREAD), "two threads handed out the same bytes");
}
END_TEST

/* The parent has a block half used when it forks: the child's next draw must not be the
 * parent's next draw. */
START_TEST(test_fork_child_draws_its_own)
{
    struct id16 before, parent, child;
    ck_assert_int_eq(ef_randbytes(before.b, sizeof before.b), 0);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct id16 c;
        int ok = ef_randbytes(c.b, sizeof c.b) == 0 && write(fds[1], c.b, sizeof c.b) == (ssize_t)sizeof c.b;
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    ck_assert_int_eq(ef_randbytes(parent.b, sizeof parent.b), 0);
    ck_assert_int_eq(read(fds[0], child.b, sizeof child.b), (ssize_t)sizeof child.b);
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(memcmp(parent.b, child.b, sizeof parent.b) != 0, "parent and child drew the same bytes");
}
END_TEST

START_TEST(test_too_many_bytes)
{
    unsigned char big[EF_RANDBYTES_MAX + 1];
    ck_assert_int_eq(ef_randbytes(big, sizeof big), -EINVAL);
    ck_assert_int_eq(ef_randbytes(big, EF_RANDBYTES_MAX), 0);
}
END_TEST

static Suite *randbytes_suite(void)
{
    Suite *s = suite_create("randbytes");
    TCase *tc = tcase_create("randbytes");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_distinct_in_one_thread);
    tcase_add_test(tc, test_distinct_across_threads);
    tcase_add_test(tc, test_fork_child_draws_its_own);
    tcase_add_test(tc, test_too_many_bytes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(randbytes_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
