/* Unit tests of util/snapdir, the on-disk protocol of snapshot directories: build (begin,
 * seal with size, CRC32C and the fixed clock's time, publish under snap-POSITION), listing
 * (newest first, the newest `max` whatever readdir's order, bad manifests and other entries
 * skipped, a missing directory empty), verify (damage, truncation, loss), publish over an
 * existing snapshot (kept, or swapped), pruning (keep < 1, more than one list's worth),
 * temporary directories, the lock, path length errors, and the data's stream (summed on its
 * way, written once; a producer or a file that fails). */
#include <config.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testdir.h"
#include "util/clock.h"
#include "util/crc32c.h"
#include "util/eflog.h"
#include "util/path.h"
#include "util/snapdir.h"

static char snaps[TD_PATH_MAX + 16];

static void snaps_setup(void)
{
    td_setup();
    snprintf(snaps, sizeof snaps, "%s/snapshots", td_dir);
}

static void write_file(const char *dir, const char *name, const char *content)
{
    char p[SNAPDIR_PATH_MAX];
    ck_assert_int_eq(ef_path_join(p, SNAPDIR_PATH_MAX, dir, name), 0);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* Writes all of n bytes into fd: 0 or -errno. */
static int write_all(int fd, const void *p, size_t n)
{
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, (const char *)p + done, n - done);
        if (w < 0)
            return -errno;
        done += (size_t)w;
    }
    return 0;
}

/* A snapdir_producer of the string arg. */
static int produce_string(void *arg, int fd) { return write_all(fd, arg, strlen(arg)); }

/* A snapshot at position with data.mdb holding content, through the real protocol. */
static int make_snap(uint64_t position, const char *content, int replace, struct snapshot_info *s)
{
    char tmp[SNAPDIR_PATH_MAX];
    ck_assert_int_eq(snapdir_begin(snaps, tmp), 0);
    memset(s, 0, sizeof *s);
    ck_assert_int_eq(snapdir_write_data(tmp, produce_string, (void *)content, s), 0);
    s->position = position;
    ck_assert_int_eq(snapdir_seal(tmp, s), 0);
    int rc = snapdir_publish(snaps, tmp, s, replace);
    struct stat st;
    ck_assert_int_ne(stat(tmp, &st), 0); /* tmp is gone whatever publish decided */
    return rc;
}

static size_t count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

START_TEST(test_build_list_verify)
{
    ef_clock_set_fixed(1765000000123);
    struct snapshot_info s;
    ck_assert_int_eq(make_snap(42, "pretend LMDB copy", 0, &s), 0);
    ef_clock_set_fixed(-1);
    ck_assert_str_eq(s.name, "snap-00000000000000000042");
    ck_assert_uint_eq(s.bytes, 17);
    ck_assert_uint_eq(s.crc, ef_crc32c(0, "pretend LMDB copy", 17));
    ck_assert_int_eq(s.taken_at, 1765000000123);

    struct snapshot_info list[4];
    size_t n = 99;
    ck_assert_int_eq(snapdir_list(snaps, list, 4, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(list[0].name, s.name);
    ck_assert_uint_eq(list[0].position, 42);
    ck_assert_uint_eq(list[0].bytes, 17);
    ck_assert_uint_eq(list[0].crc, s.crc);
    ck_assert_int_eq(list[0].taken_at, 1765000000123);
    ck_assert_int_eq(snapdir_verify(snaps, &list[0]), 0);

    /* One byte changed, then a byte lost, then the file gone. */
    char dir[SNAPDIR_PATH_MAX], data[SNAPDIR_PATH_MAX];
    ck_assert_int_eq(ef_path_join(dir, SNAPDIR_PATH_MAX, snaps, s.name), 0);
    ck_assert_int_eq(ef_path_join(data, SNAPDIR_PATH_MAX, dir, "data.mdb"), 0);
    write_file(dir, "data.mdb", "pretend LMDB cop!");
    ck_assert_int_eq(snapdir_verify(snaps, &list[0]), -EBADMSG);
    ck_assert_int_eq(truncate(data, 16), 0);
    ck_assert_int_eq(snapdir_verify(snaps, &list[0]), -EBADMSG);
    ck_assert_int_eq(unlink(data), 0);
    ck_assert_int_eq(snapdir_verify(snaps, &list[0]), -ENOENT);

    /* A missing directory is an empty list. */
    char none[SNAPDIR_PATH_MAX];
    ck_assert_int_eq(ef_path_join(none, SNAPDIR_PATH_MAX, td_dir, "none"), 0);
    ck_assert_int_eq(snapdir_list(none, list, 4, &n), 0);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_list_order_and_skips)
{
    static const uint64_t positions[] = { 5, 1, 900, 3, 77, 12 };
    struct snapshot_info s;
    for (size_t i = 0; i < sizeof positions / sizeof positions[0]; i++)
        ck_assert_int_eq(make_snap(positions[i], "x", 0, &s), 0);
    /* Not snapshots, or not valid ones: skipped. */
    char bad[SNAPDIR_PATH_MAX];
    ck_assert_int_eq(ef_path_join(bad, SNAPDIR_PATH_MAX, snaps, "snap-00000000000000099999"), 0);
    ck_assert_int_eq(mkdir(bad, 0755), 0);
    write_file(bad, "manifest", "eventfold-snapshot 2\nposition 99999\n");
    ck_assert_int_eq(ef_path_join(bad, SNAPDIR_PATH_MAX, snaps, "snap-00000000000000088888"), 0);
    ck_assert_int_eq(mkdir(bad, 0755), 0); /* no manifest at all */
    write_file(snaps, "notes", "not a snapshot");

    struct snapshot_info list[SNAPDIR_LIST_MAX];
    size_t n;
    ck_assert_int_eq(snapdir_list(snaps, list, SNAPDIR_LIST_MAX, &n), 0);
    ck_assert_uint_eq(n, 6);
    static const uint64_t newest_first[] = { 900, 77, 12, 5, 3, 1 };
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(list[i].position, newest_first[i]);
    /* At most max: the newest ones, whatever order readdir gave. */
    for (size_t max = 1; max <= 6; max++) {
        ck_assert_int_eq(snapdir_list(snaps, list, max, &n), 0);
        ck_assert_uint_eq(n, max);
        for (size_t i = 0; i < n; i++)
            ck_assert_uint_eq(list[i].position, newest_first[i]);
    }
}
END_TEST

START_TEST(test_publish_existing)
{
    struct snapshot_info s, list[2];
    size_t n;
    ck_assert_int_eq(make_snap(7, "old", 0, &s), 0);
    uint32_t old_crc = s.crc;
    /* Not replacing: the existing one stays, 1 says so. */
    ck_assert_int_eq(make_snap(7, "newer", 0, &s), 1);
    ck_assert_int_eq(snapdir_list(snaps, list, 2, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(list[0].crc, old_crc);
    ck_assert_int_eq(snapdir_verify(snaps, &list[0]), 0);
    /* Replacing: swapped in one step, the old one removed. */
    ck_assert_int_eq(make_snap(7, "newer", 1, &s), 0);
    ck_assert_int_eq(snapdir_list(snaps, list, 2, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(list[0].crc, ef_crc32c(0, "newer", 5));
    ck_assert_uint_eq(list[0].bytes, 5);
    ck_assert_int_eq(snapdir_verify(snaps, &list[0]), 0);
    ck_assert_uint_eq(count_entries(snaps, "tmp-"), 0);
    /* Replacing where there is nothing yet is a plain publish. */
    ck_assert_int_eq(make_snap(8, "fresh", 1, &s), 0);
    ck_assert_int_eq(snapdir_list(snaps, list, 2, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(list[0].position, 8);
}
END_TEST

START_TEST(test_prune)
{
    struct snapshot_info s, list[SNAPDIR_LIST_MAX];
    size_t n;
    for (uint64_t p = 1; p <= 5; p++)
        ck_assert_int_eq(make_snap(p * 10, "d", 0, &s), 0);
    snapdir_prune(snaps, 2);
    ck_assert_int_eq(snapdir_list(snaps, list, SNAPDIR_LIST_MAX, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(list[0].position, 50);
    ck_assert_uint_eq(list[1].position, 40);
    snapdir_prune(snaps, 0); /* keep < 1 counts as 1: never prunes everything */
    ck_assert_int_eq(snapdir_list(snaps, list, SNAPDIR_LIST_MAX, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(list[0].position, 50);
    ck_assert_uint_eq(count_entries(snaps, "snap-"), 1);
}
END_TEST

/* A valid snapshot made by hand, without the fsyncs of the protocol (for numbers). */
static void quick_snap(uint64_t position)
{
    char name[64], dir[SNAPDIR_PATH_MAX], manifest[256];
    snprintf(name, sizeof name, "snap-%020" PRIu64, position);
    ck_assert_int_eq(ef_path_join(dir, SNAPDIR_PATH_MAX, snaps, name), 0);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    write_file(dir, "data.mdb", "q");
    snprintf(manifest, sizeof manifest,
             "eventfold-snapshot 1\nposition %" PRIu64 "\ntaken_at 1\nbytes 1\ncrc32c %08" PRIx32 "\n",
             position, ef_crc32c(0, "q", 1));
    write_file(dir, "manifest", manifest);
}

START_TEST(test_prune_beyond_one_list)
{
    ck_assert_int_eq(mkdir(snaps, 0755), 0);
    for (uint64_t p = 1; p <= SNAPDIR_LIST_MAX + 20; p++)
        quick_snap(p);
    snapdir_prune(snaps, 3);
    ck_assert_uint_eq(count_entries(snaps, "snap-"), 3);
    struct snapshot_info list[4];
    size_t n;
    ck_assert_int_eq(snapdir_list(snaps, list, 4, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(list[0].position, SNAPDIR_LIST_MAX + 20);
    ck_assert_uint_eq(list[2].position, SNAPDIR_LIST_MAX + 18);
    ck_assert_int_eq(snapdir_verify(snaps, &list[2]), 0);
}
END_TEST

START_TEST(test_tmp_lock_and_paths)
{
    char tmp[SNAPDIR_PATH_MAX], other[SNAPDIR_PATH_MAX];
    ck_assert_int_eq(snapdir_begin(snaps, tmp), 0);
    write_file(tmp, "data.mdb", "half done");
    /* begin again (a crash of the same pid number): the leftover is emptied. */
    ck_assert_int_eq(snapdir_begin(snaps, other), 0);
    ck_assert_str_eq(other, tmp);
    char data[SNAPDIR_PATH_MAX];
    ck_assert_int_eq(ef_path_join(data, SNAPDIR_PATH_MAX, tmp, "data.mdb"), 0);
    ck_assert_int_ne(access(data, F_OK), 0);
    ck_assert_int_eq(ef_path_join(other, SNAPDIR_PATH_MAX, snaps, "tmp-1"), 0);
    ck_assert_int_eq(mkdir(other, 0755), 0);
    write_file(other, "manifest", "partial");
    struct snapshot_info s;
    ck_assert_int_eq(make_snap(3, "kept", 0, &s), 0);
    snapdir_remove_tmp(snaps);
    ck_assert_uint_eq(count_entries(snaps, "tmp-"), 0);
    ck_assert_uint_eq(count_entries(snaps, "snap-"), 1);

    /* A directory with an unknown file cannot be removed: the error is returned. */
    ck_assert_int_eq(ef_path_join(other, SNAPDIR_PATH_MAX, snaps, "odd"), 0);
    ck_assert_int_eq(mkdir(other, 0755), 0);
    write_file(other, "stray", "x");
    ck_assert_int_eq(snapdir_remove(other), -ENOTEMPTY);
    ck_assert_int_eq(snapdir_remove(tmp), 0); /* already gone: fine */

    int fd1, fd2;
    ck_assert_int_eq(snapdir_lock(snaps, 1, &fd1), 0);
    ck_assert_int_ge(fd1, 0);
    ck_assert_int_eq(snapdir_lock(snaps, 1, &fd2), -EWOULDBLOCK);
    ck_assert_int_eq(fd2, -1);
    snapdir_unlock(fd1);
    ck_assert_int_eq(snapdir_lock(snaps, 1, &fd2), 0);
    snapdir_unlock(fd2);
    snapdir_unlock(-1);

    char longdir[SNAPDIR_PATH_MAX + 10];
    memset(longdir, 'd', sizeof longdir - 1);
    longdir[sizeof longdir - 1] = '\0';
    longdir[0] = '/';
    ck_assert_int_eq(ef_path_join(other, SNAPDIR_PATH_MAX, longdir, "x"), -ENAMETOOLONG);
    ck_assert_int_eq(ef_path_join(other, SNAPDIR_PATH_MAX, longdir + 12, "x"), 0);
    ck_assert_int_eq(ef_path_join(other, SNAPDIR_PATH_MAX, longdir + 11, "x"), -ENAMETOOLONG);
    uint32_t crc;
    uint64_t bytes;
    ck_assert_int_eq(ef_path_join(other, SNAPDIR_PATH_MAX, snaps, "absent"), 0);
    ck_assert_int_eq(snapdir_file_crc(other, &crc, &bytes), -ENOENT);
}
END_TEST

/* A producer of n bytes of a fixed sequence (stream_byte), in pieces of an odd size, then
 * of rc; write_rc: the error its writes met. */
struct stream {
    size_t n;
    int rc, write_rc;
};

static unsigned char stream_byte(size_t i) { return (unsigned char)((i * 2654435761u) >> 13); }

static int produce_stream(void *arg, int fd)
{
    struct stream *st = arg;
    unsigned char buf[7919];
    for (size_t done = 0; done < st->n;) {
        size_t k = st->n - done < sizeof buf ? st->n - done : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = stream_byte(done + i);
        if ((st->write_rc = write_all(fd, buf, k)) != 0)
            return st->write_rc;
        done += k;
    }
    return st->rc;
}

/* Streams n bytes into dir/data.mdb (dir made here), checks what snapdir_write_data
 * reported against the file and the sequence, and returns its code. */
static int stream_into(const char *dir, size_t n, int producer_rc, struct stream *st)
{
    struct snapshot_info s;
    memset(&s, 0, sizeof s);
    *st = (struct stream){ n, producer_rc, 0 };
    if (mkdir(dir, 0755) < 0)
        ck_assert_int_eq(errno, EEXIST);
    int rc = snapdir_write_data(dir, produce_stream, st, &s);
    if (rc)
        return rc;
    uint32_t want = 0, crc;
    uint64_t bytes;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = stream_byte(i);
        want = ef_crc32c(want, &b, 1);
    }
    char data[SNAPDIR_PATH_MAX];
    ck_assert_int_eq(ef_path_join(data, sizeof data, dir, "data.mdb"), 0);
    ck_assert_int_eq(snapdir_file_crc(data, &crc, &bytes), 0);
    ck_assert_uint_eq(s.bytes, n);
    ck_assert_uint_eq(bytes, n);
    ck_assert_uint_eq(s.crc, want);
    ck_assert_uint_eq(crc, want);
    return 0;
}

/* A snapshot's data comes through a pipe, summed on its way to the file: sizes that are
 * and are not multiples of the blocks (the file is written with O_DIRECT here, ext4 or
 * the like, but the tail), an empty one, a producer that fails, a file that exists. */
START_TEST(test_write_data)
{
    char dir[SNAPDIR_PATH_MAX];
    struct stream st;
    ck_assert_int_eq(ef_path_join(dir, sizeof dir, td_dir, "a"), 0);
    ck_assert_int_eq(stream_into(dir, (5u << 20) + 123, 0, &st), 0);
    ck_assert_int_eq(stream_into(dir, 1, 0, &st), -EEXIST); /* data.mdb is there */
    ck_assert_int_eq(ef_path_join(dir, sizeof dir, td_dir, "b"), 0);
    ck_assert_int_eq(stream_into(dir, 2u << 20, 0, &st), 0);
    ck_assert_int_eq(ef_path_join(dir, sizeof dir, td_dir, "c"), 0);
    ck_assert_int_eq(stream_into(dir, 0, 0, &st), 0);
    ck_assert_int_eq(ef_path_join(dir, sizeof dir, td_dir, "d"), 0);
    ck_assert_int_eq(stream_into(dir, 100000, -EIO, &st), -EIO);
    ck_assert_int_eq(st.write_rc, 0);
    ck_assert_int_eq(ef_path_join(dir, sizeof dir, td_dir, "absent/e"), 0);
    ck_assert_int_eq(snapdir_write_data(dir, produce_string, (void *)"x", &(struct snapshot_info){ 0 }), -ENOENT);
}
END_TEST

/* In the child: a file size limit of 1 MiB (SIGXFSZ ignored), and 16 MiB to stream. The
 * file's error is returned, and the producer's writes failed (EPIPE) instead of blocking
 * forever on a pipe nobody reads. Exits 0, or the number of the check that failed. */
static void stream_past_limit(void *arg)
{
    (void)arg;
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = { 1u << 20, 1u << 20 };
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
        _exit(10);
    char dir[SNAPDIR_PATH_MAX];
    if (ef_path_join(dir, sizeof dir, td_dir, "big") || mkdir(dir, 0755) < 0)
        _exit(11);
    struct stream st = { 16u << 20, 0, 0 };
    struct snapshot_info s = { 0 };
    int rc = snapdir_write_data(dir, produce_stream, &st, &s);
    _exit(rc != -EFBIG ? 1 : st.write_rc != -EPIPE ? 2 : 0);
}

START_TEST(test_write_data_file_fails)
{
    int st = td_in_child(stream_past_limit, NULL);
    ck_assert_msg(WIFEXITED(st), "child died of signal %d", WTERMSIG(st));
    ck_assert_msg(WEXITSTATUS(st) == 0, "check %d failed", WEXITSTATUS(st));
    /* A file system without O_DIRECT (tmpfs): written the ordinary way; once full, ENOSPC. */
    char mnt[SNAPDIR_PATH_MAX];
    ck_assert_int_eq(ef_path_join(mnt, sizeof mnt, td_dir, "tmpfs"), 0);
    if (td_mount_tmpfs(mnt, 4u << 20) != 0) {
        fprintf(stderr, "check_snapdir: not allowed to mount a tmpfs, its cases skipped\n");
        return;
    }
    struct stream s;
    char dir[SNAPDIR_PATH_MAX];
    ck_assert_int_eq(ef_path_join(dir, sizeof dir, mnt, "a"), 0);
    ck_assert_int_eq(stream_into(dir, (1u << 20) + 4097, 0, &s), 0);
    ck_assert_int_eq(ef_path_join(dir, sizeof dir, mnt, "b"), 0);
    ck_assert_int_eq(stream_into(dir, 16u << 20, 0, &s), -ENOSPC);
    ck_assert_int_eq(s.write_rc, -EPIPE);
}
END_TEST

static Suite *snapdir_suite(void)
{
    Suite *s = suite_create("snapdir");
    TCase *tc = tcase_create("snapdir");
    tcase_add_unchecked_fixture(tc, td_case_setup, td_case_teardown);
    tcase_add_checked_fixture(tc, snaps_setup, td_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_build_list_verify);
    tcase_add_test(tc, test_list_order_and_skips);
    tcase_add_test(tc, test_publish_existing);
    tcase_add_test(tc, test_prune);
    tcase_add_test(tc, test_prune_beyond_one_list);
    tcase_add_test(tc, test_tmp_lock_and_paths);
    tcase_add_test(tc, test_write_data);
    tcase_add_test(tc, test_write_data_file_fails);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    eflog_init("check_snapdir", EF_ERROR);
    SRunner *sr = srunner_create(snapdir_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
