/* Unit tests of readmodel/rmodel_cache: the row cache's hash is keyed per process. */
#include <config.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "readmodel/rmodel_internal.h"
#include "util/eflog.h"

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

static Suite *readmodel_cache_suite(void)
{
    Suite *s = suite_create("readmodel_cache");
    TCase *tc = tcase_create("readmodel_cache");
    tcase_set_timeout(tc, 20);
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
    eflog_init("check_readmodel_cache", EF_ERROR);
    SRunner *sr = srunner_create(readmodel_cache_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
