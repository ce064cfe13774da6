/* Unit tests of util/lmdb_map, LMDB environments written through a writable map whose
 * blocks are reserved: a writable map has data.mdb and lock.mdb without holes; growing a
 * full map (ef_mdb_set_mapsize) keeps that invariant and the data; no map is ever set below
 * the data file's size (a reopen or a resize with a smaller size maps the file's size, 0
 * adopts it); on a disk too small for the map (a tmpfs, as root) the env falls back to
 * write(2), says why (-ENOSPC) and still works, and a writable map that cannot grow there
 * stays as it was, usable, with -ENOSPC;
 * errors of the open (missing directory, a failing setup) come back as LMDB codes with no
 * env left open; and the small code helpers. Where the test directory's filesystem has no
 * fallocate (and no tmpfs can be mounted), the writable-map checks are skipped, saying so. */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testdir.h"
#include "util/lmdb_map.h"

#define KIB ((size_t)1024)
#define MIB (1024 * KIB)

static char base[TD_PATH_MAX + 16]; /* a tmpfs as root (fallocate works there), else td_dir */

static void map_setup(void)
{
    td_setup();
    snprintf(base, sizeof base, "%s/fs", td_dir);
    if (td_mount_tmpfs(base, 64 * MIB) != 0)
        snprintf(base, sizeof base, "%s", td_dir);
}

static int setup_dbs(MDB_env *env, void *arg)
{
    (void)arg;
    return mdb_env_set_maxdbs(env, 2);
}

static int setup_fails(MDB_env *env, void *arg)
{
    (void)env, (void)arg;
    return MDB_INCOMPATIBLE;
}

static void env_dir(char *out, size_t cap, const char *root, const char *name)
{
    snprintf(out, cap, "%s/%s", root, name);
    ck_assert_int_eq(mkdir(out, 0755), 0);
}

/* Fails unless path's blocks cover at least `bytes` (and its size, when size_too). */
static void assert_no_holes(const char *dir, const char *file, size_t bytes)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_msg((size_t)st.st_blocks * 512 >= bytes && st.st_blocks * 512 >= st.st_size,
                  "%s has holes: size %lld, %lld bytes allocated, %zu wanted", p,
                  (long long)st.st_size, (long long)st.st_blocks * 512, bytes);
}

static int put(MDB_env *env, unsigned i, size_t len)
{
    static char val[4 * KIB];
    memset(val, 'a' + i % 26, sizeof val);
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc)
        return rc;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    MDB_val k = { sizeof i, &i }, v = { len, val };
    if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

/* 1 if key i is there with the content put() gave it. */
static int has(MDB_env *env, unsigned i, size_t len)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    MDB_val k = { sizeof i, &i }, v;
    int ok = mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == len &&
             ((const char *)v.mv_data)[len - 1] == 'a' + (int)(i % 26);
    mdb_txn_abort(txn);
    return ok;
}

static int writable_map(MDB_env *env)
{
    unsigned flags;
    ck_assert_int_eq(mdb_env_get_flags(env, &flags), 0);
    return (flags & MDB_WRITEMAP) != 0;
}

START_TEST(test_open_writemap)
{
    char dir[256];
    env_dir(dir, sizeof dir, base, "env");
    size_t map = MIB;
    MDB_env *env = NULL;
    int wm = -1, why = 1;
    ck_assert_int_eq(ef_mdb_open(dir, 0, 0644, map, setup_dbs, NULL, &env, &wm, &why), 0);
    ck_assert_ptr_nonnull(env);
    ck_assert_int_eq(wm, writable_map(env));
    if (!wm) {
        ck_assert_int_eq(why, -EOPNOTSUPP); /* the only reason with room on the disk */
        fprintf(stderr, "%s: no fallocate here, writable-map checks skipped\n", base);
    } else {
        ck_assert_int_eq(why, 0);
        ck_assert_uint_eq(ef_mdb_mapsize(env), map);
        assert_no_holes(dir, "data.mdb", map);
        assert_no_holes(dir, "lock.mdb", 0);
    }
    ck_assert_int_eq(put(env, 1, 100), 0);
    ef_mdb_close(env);
    /* A read-only reopen without the writable map sees the data. */
    env = NULL;
    ck_assert_int_eq(ef_mdb_open_plain(dir, MDB_RDONLY, 0644, map, setup_dbs, NULL, &env), 0);
    ck_assert(!writable_map(env));
    ck_assert(has(env, 1, 100));
    ef_mdb_close(env);
}
END_TEST

START_TEST(test_grow_full_map)
{
    char dir[256];
    env_dir(dir, sizeof dir, base, "grow");
    size_t map = 256 * KIB;
    MDB_env *env;
    int wm, why;
    ck_assert_int_eq(ef_mdb_open(dir, 0, 0644, map, setup_dbs, NULL, &env, &wm, &why), 0);
    unsigned n = 0;
    int rc;
    while ((rc = put(env, n, 3 * KIB)) == 0)
        n++;
    ck_assert_int_eq(rc, MDB_MAP_FULL);
    ck_assert_uint_gt(n, 10);
    /* The growth: the blocks are reserved first, then LMDB maps them. */
    size_t bigger = 4 * map;
    ck_assert_int_eq(ef_mdb_set_mapsize(env, bigger, wm), 0);
    ck_assert_uint_eq(ef_mdb_mapsize(env), bigger);
    if (wm)
        assert_no_holes(dir, "data.mdb", bigger);
    ck_assert_int_eq(put(env, n, 3 * KIB), 0); /* the put that did not fit */
    for (unsigned i = 0; i <= n; i++)
        ck_assert_msg(has(env, i, 3 * KIB), "key %u lost by the growth", i);
    /* Never below the file: a smaller size, or 0, maps the file's size. */
    ck_assert_int_eq(ef_mdb_set_mapsize(env, map, wm), 0);
    ck_assert_uint_eq(ef_mdb_mapsize(env), bigger);
    ck_assert_int_eq(ef_mdb_set_mapsize(env, 0, wm), 0);
    ck_assert_uint_eq(ef_mdb_mapsize(env), bigger);
    ef_mdb_close(env);
    /* Reopened with the small size configured: the file's size is mapped, and with a
     * writable map it is still whole (LMDB did not cut it to the configured size). */
    ck_assert_int_eq(ef_mdb_open(dir, 0, 0644, map, setup_dbs, NULL, &env, &wm, &why), 0);
    ck_assert_uint_eq(ef_mdb_mapsize(env), bigger);
    if (wm)
        assert_no_holes(dir, "data.mdb", bigger);
    for (unsigned i = 0; i <= n; i++)
        ck_assert(has(env, i, 3 * KIB));
    ck_assert_int_eq(put(env, n + 1, 3 * KIB), 0);
    ef_mdb_close(env);
}
END_TEST

START_TEST(test_disk_too_small)
{
    char small[256], dir[256];
    snprintf(small, sizeof small, "%s/small", td_dir);
    if (td_mount_tmpfs(small, MIB) != 0)
        return;
    env_dir(dir, sizeof dir, small, "env");
    size_t map = 4 * MIB;
    MDB_env *env = NULL;
    int wm = -1, why = 0;
    ck_assert_int_eq(ef_mdb_open(dir, 0, 0644, map, setup_dbs, NULL, &env, &wm, &why), 0);
    ck_assert_int_eq(wm, 0);
    ck_assert_int_eq(why, -ENOSPC);
    ck_assert(!writable_map(env));
    ck_assert_str_eq(ef_mdb_reserve_strerror(why), strerror(ENOSPC));
    /* Without the writable map, the env works within the space there is. */
    ck_assert_int_eq(put(env, 7, 1000), 0);
    ck_assert(has(env, 7, 1000));
    /* A full disk is a code from the reservation, never a SIGBUS later. */
    ck_assert_int_eq(ef_mdb_reserve(env, 8 * MIB), -ENOSPC);
    /* lock.mdb's blocks were allocated before LMDB stored into it. */
    assert_no_holes(dir, "lock.mdb", 0);
    ef_mdb_close(env);

    /* A map that fits is writable; growing it past the disk fails before LMDB maps the
     * new size, and the env goes on as it was. */
    env_dir(dir, sizeof dir, small, "grows");
    map = 256 * KIB;
    ck_assert_int_eq(ef_mdb_open(dir, 0, 0644, map, setup_dbs, NULL, &env, &wm, &why), 0);
    ck_assert_int_eq(wm, 1);
    ck_assert_int_eq(put(env, 1, 3 * KIB), 0);
    ck_assert_int_eq(ef_mdb_set_mapsize(env, 4 * MIB, wm), -ENOSPC);
    ck_assert_uint_eq(ef_mdb_mapsize(env), map);
    assert_no_holes(dir, "data.mdb", map);
    ck_assert_int_eq(put(env, 2, 3 * KIB), 0);
    ck_assert(has(env, 1, 3 * KIB) && has(env, 2, 3 * KIB));
    ef_mdb_close(env);
}
END_TEST

START_TEST(test_open_errors)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/missing", base);
    size_t map = MIB;
    MDB_env *env = NULL;
    int wm = -1, why = -1;
    ck_assert_int_eq(ef_mdb_open(dir, 0, 0644, map, setup_dbs, NULL, &env, &wm, &why), ENOENT);
    ck_assert_ptr_null(env);
    ck_assert_int_eq(ef_mdb_open_plain(dir, 0, 0644, map, setup_dbs, NULL, &env), ENOENT);
    ck_assert_ptr_null(env);
    env_dir(dir, sizeof dir, base, "setup");
    ck_assert_int_eq(ef_mdb_open(dir, 0, 0644, MIB, setup_fails, NULL, &env, &wm, &why), MDB_INCOMPATIBLE);
    ck_assert_ptr_null(env);
    char lock[300];
    snprintf(lock, sizeof lock, "%s/lock.mdb", dir);
    ck_assert_int_ne(access(lock, F_OK), 0); /* nothing created when setup refused */
    ef_mdb_close(NULL);
}
END_TEST

START_TEST(test_codes)
{
    ck_assert_int_eq(ef_mdb_rc(0), 0);
    ck_assert_int_eq(ef_mdb_rc(ENOSPC), -ENOSPC);
    ck_assert_int_eq(ef_mdb_rc(MDB_MAP_FULL), MDB_MAP_FULL);
    ck_assert_int_eq(ef_mdb_rc(MDB_NOTFOUND), MDB_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(ef_mdb_reserve_strerror(-EOPNOTSUPP), "copies on write"));
    ck_assert_ptr_nonnull(strstr(ef_mdb_reserve_strerror(-EOPNOTSUPP), "fallocate"));
    ck_assert_str_eq(ef_mdb_reserve_strerror(-EDQUOT), strerror(EDQUOT));
}
END_TEST

static Suite *lmdb_map_suite(void)
{
    Suite *s = suite_create("lmdb_map");
    TCase *tc = tcase_create("lmdb_map");
    tcase_add_unchecked_fixture(tc, td_case_setup, td_case_teardown);
    tcase_add_checked_fixture(tc, map_setup, td_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_open_writemap);
    tcase_add_test(tc, test_grow_full_map);
    tcase_add_test(tc, test_disk_too_small);
    tcase_add_test(tc, test_open_errors);
    tcase_add_test(tc, test_codes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lmdb_map_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
