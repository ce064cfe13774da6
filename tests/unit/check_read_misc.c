/* Unit tests of the small read-side modules: the shared read position (futex wake across
 * processes, timeout), the model directory switch, and query parameter parsing. */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "query/query_int.h"
#include "readmodel/rdir.h"
#include "readmodel/rmodel_internal.h"
#include "readmodel/rpos.h"
#include "util/clock.h"
#include "util/durable.h"
#include "util/eflog.h"

static char tmpdir[64];

static void setup(void)
{
    strcpy(tmpdir, "/tmp/check_rmisc_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir); /* our mkdtemp dir only */
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_rpos_wakes_other_process)
{
    char path[128];
    snprintf(path, sizeof path, "%s/position", tmpdir);
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

START_TEST(test_rdir_switch)
{
    ck_assert_int_eq(rdir_prepare(tmpdir), 0);
    ck_assert_int_eq(rdir_prepare(tmpdir), 0); /* idempotent */
    char link[512], target[64], name[64], old[128];
    snprintf(link, sizeof link, "%s/read/current", tmpdir);
    ssize_t n = readlink(link, target, sizeof target - 1);
    ck_assert_int_gt(n, 0);
    target[n] = '\0';
    ck_assert_str_eq(target, "model-0000000001");
    ck_assert_int_eq(rdir_new_model(tmpdir, name, sizeof name), 0);
    ck_assert_str_eq(name, "model-0000000002");
    ck_assert_int_eq(rdir_switch(tmpdir, name, old, sizeof old), 0);
    ck_assert_str_eq(old, "model-0000000001");
    n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    ck_assert_str_eq(target, "model-0000000002");
    ck_assert_int_eq(rdir_remove_model(tmpdir, old), 0);
    snprintf(link, sizeof link, "%s/read/%s", tmpdir, old);
    ck_assert_int_ne(access(link, F_OK), 0);
}
END_TEST

/* The markers (the read model's "unsynced", the log's "sync-failed") are read by other
 * processes while they are rewritten: a rewrite replaces the file whole (a new inode renamed
 * over) instead of truncating it in place, where a reader could see it empty. The old
 * inode, still open, keeps the old content. */
START_TEST(test_marker_replaced_whole)
{
    char buf[64];
    ck_assert_int_eq(ef_read_small(tmpdir, "marker", buf, sizeof buf), -ENOENT);
    ck_assert_int_eq(ef_write_durably(tmpdir, "marker", "first boot", 10), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/marker", tmpdir);
    int old = open(path, O_RDONLY);
    ck_assert_int_ge(old, 0);
    ck_assert_int_eq(ef_write_durably(tmpdir, "marker", "second", 6), 0);
    ck_assert_int_eq((int)pread(old, buf, sizeof buf - 1, 0), 10);
    close(old);
    ck_assert_int_eq(ef_read_small(tmpdir, "marker", buf, sizeof buf), 6);
    ck_assert_str_eq(buf, "second");
    ck_assert_int_eq(ef_read_small(tmpdir, "marker", buf, 4), 3); /* cut to fit, NUL-ended */
    ck_assert_str_eq(buf, "sec");
    snprintf(path, sizeof path, "%s/.marker.tmp", tmpdir);
    ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

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

/* The row cache's hash is keyed per process: the same id hashes the same within one
 * process, and differently in another (a fresh process draws its own seed: this binary run
 * again with EF_PRINT_CACHE_HASH set prints its hash of the key), so a client cannot
 * precompute colliding ids. */
static const char *self_path; /* argv[0] */

static uint64_t hash_in_new_process(void)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "EF_PRINT_CACHE_HASH=1 '%s'", self_path);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    unsigned long long h = 0;
    ck_assert_int_eq(fscanf(p, "%llx", &h), 1);
    ck_assert_int_eq(pclose(p), 0);
    return h;
}

START_TEST(test_cache_hash_seeded)
{
    uint64_t mine = rmodel_cache_hash(RMODEL_DB_USERS, "user-1", 6);
    ck_assert_uint_eq(rmodel_cache_hash(RMODEL_DB_USERS, "user-1", 6), mine);
    ck_assert_uint_ne(rmodel_cache_hash(RMODEL_DB_ITEMS, "user-1", 6), mine);
    uint64_t a = hash_in_new_process(), b = hash_in_new_process();
    ck_assert_msg(a != b && a != mine, "processes share the hash seed");
}
END_TEST

static Suite *misc_suite(void)
{
    Suite *s = suite_create("read_misc");
    TCase *tc = tcase_create("misc");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_rpos_wakes_other_process);
    tcase_add_test(tc, test_rdir_switch);
    tcase_add_test(tc, test_params);
    tcase_add_test(tc, test_marker_replaced_whole);
    tcase_add_test(tc, test_cache_hash_seeded);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    (void)argc;
    self_path = argv[0];
    if (getenv("EF_PRINT_CACHE_HASH")) { /* test_cache_hash_seeded's other process */
        printf("%llx\n", (unsigned long long)rmodel_cache_hash(RMODEL_DB_USERS, "user-1", 6));
        return 0;
    }
    eflog_init("check_read_misc", EF_ERROR);
    SRunner *sr = srunner_create(misc_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
