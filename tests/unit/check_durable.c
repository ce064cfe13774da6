/* Unit tests of util/durable: files replaced whole (exact content, mode 0644, nothing left
 * under the temporary name, a reader of the old file keeps its content), read back (length, NUL, truncation), and every error path
 * reported as -errno with the old file left as it was: a missing directory, a name too
 * long, a target that is a directory, a short write (-ENOSPC, made with RLIMIT_FSIZE, so
 * no root is needed), a write refused outright (-EFBIG) and a full tmpfs (-ENOSPC, as root).
 * The error-injecting cases run in a child process, which alone gets the file size limit.
 * Also ef_copy_file: the exact bytes across its chunks, and its refusals. */
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
#include "util/durable.h"

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", td_dir, name);
}

static int exists(const char *name)
{
    char p[256];
    path_of(p, sizeof p, name);
    return access(p, F_OK) == 0;
}

/* The file's whole content (NUL-terminated) into buf. */
static size_t slurp(const char *name, char *buf, size_t cap)
{
    char p[256];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return n;
}

START_TEST(test_write_and_read_back)
{
    char buf[64];
    ck_assert_int_eq(ef_write_durably(td_dir, "marker", "first version\n", 14), 0);
    ck_assert_uint_eq(slurp("marker", buf, sizeof buf), 14);
    ck_assert_str_eq(buf, "first version\n");
    ck_assert(!exists(".marker.tmp"));
    char p[256];
    struct stat st;
    path_of(p, sizeof p, "marker");
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644); /* main() sets umask 022 */
    /* Replaced by a shorter content: nothing of the old one remains. */
    ck_assert_int_eq(ef_write_durably(td_dir, "marker", "v2", 2), 0);
    ck_assert_uint_eq(slurp("marker", buf, sizeof buf), 2);
    ck_assert_str_eq(buf, "v2");
    /* An empty file is a valid content. */
    ck_assert_int_eq(ef_replace_file(td_dir, "empty", "", 0), 0);
    ck_assert_uint_eq(slurp("empty", buf, sizeof buf), 0);
    ck_assert_int_eq(ef_replace_file(td_dir, "marker", "third", 5), 0);
    ck_assert(!exists(".marker.tmp"));

    ck_assert_int_eq(ef_read_small(td_dir, "marker", buf, sizeof buf), 5);
    ck_assert_str_eq(buf, "third");
    /* Truncated to cap - 1 bytes, always NUL-terminated. */
    char small[4];
    ck_assert_int_eq(ef_read_small(td_dir, "marker", small, sizeof small), 3);
    ck_assert_str_eq(small, "thi");
    ck_assert_int_eq(ef_read_small(td_dir, "empty", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(test_errors)
{
    char buf[32] = "untouched";
    char missing[256];
    path_of(missing, sizeof missing, "no/such/dir");
    ck_assert_int_eq(ef_write_durably(missing, "m", "x", 1), -ENOENT);
    ck_assert_int_eq(ef_replace_file(missing, "m", "x", 1), -ENOENT);
    ck_assert_int_eq(ef_read_small(td_dir, "absent", buf, sizeof buf), -ENOENT);
    ck_assert_int_eq(ef_read_small(missing, "m", buf, sizeof buf), -ENOENT);

    char longname[5000];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ck_assert_int_eq(ef_write_durably(td_dir, longname, "x", 1), -ENAMETOOLONG);
    ck_assert_int_eq(ef_read_small(td_dir, longname, buf, sizeof buf), -ENAMETOOLONG);
    ck_assert_int_eq(ef_write_durably(longname, "m", "x", 1), -ENAMETOOLONG);

    /* The target name is a directory: the rename fails, the temporary file is removed. */
    char d[256];
    path_of(d, sizeof d, "adir");
    ck_assert_int_eq(mkdir(d, 0755), 0);
    ck_assert_int_eq(ef_write_durably(td_dir, "adir", "x", 1), -EISDIR);
    ck_assert(!exists(".adir.tmp"));
    struct stat st;
    ck_assert_int_eq(stat(d, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(ef_read_small(td_dir, "adir", buf, sizeof buf), -EISDIR);

    ck_assert_int_eq(ef_fsync_path(td_dir, 1), 0);
    ck_assert_int_eq(ef_fsync_path(d, 0), -EISDIR); /* a directory opened as a file */
    ck_assert_int_eq(ef_fsync_path(missing, 1), -ENOENT);
    ck_assert_int_eq(ef_write_durably(td_dir, "f", "x", 1), 0);
    char f[256];
    path_of(f, sizeof f, "f");
    ck_assert_int_eq(ef_fsync_path(f, 0), 0);
    ck_assert_int_eq(ef_fsync_path(f, 1), -ENOTDIR);
}
END_TEST

/* The markers (the read model's "unsynced", the log's "sync-failed") are read by other
 * processes while they are rewritten: a rewrite replaces the file whole (a new inode renamed
 * over) instead of truncating it in place, where a reader could see it empty. The old
 * inode, still open, keeps the old content. */
START_TEST(test_marker_replaced_whole)
{
    char buf[64];
    ck_assert_int_eq(ef_read_small(td_dir, "marker", buf, sizeof buf), -ENOENT);
    ck_assert_int_eq(ef_write_durably(td_dir, "marker", "first boot", 10), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/marker", td_dir);
    int old = open(path, O_RDONLY);
    ck_assert_int_ge(old, 0);
    ck_assert_int_eq(ef_write_durably(td_dir, "marker", "second", 6), 0);
    ck_assert_int_eq((int)pread(old, buf, sizeof buf - 1, 0), 10);
    close(old);
    ck_assert_int_eq(ef_read_small(td_dir, "marker", buf, sizeof buf), 6);
    ck_assert_str_eq(buf, "second");
    ck_assert_int_eq(ef_read_small(td_dir, "marker", buf, 4), 3); /* cut to fit, NUL-ended */
    ck_assert_str_eq(buf, "sec");
    snprintf(path, sizeof path, "%s/.marker.tmp", td_dir);
    ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

/* ef_copy_file (seeding a read model from a snapshot): the bytes of a file that spans
 * several of its 64 KiB chunks and ends inside one, an empty file, mode 0644; a target that
 * exists is refused and left alone; a missing source creates nothing; a source that cannot
 * be read (a directory) reports the read's error. */
START_TEST(test_copy_file)
{
    enum { N = 200000 };
    static char data[N], back[N + 1];
    for (size_t i = 0; i < N; i++)
        data[i] = (char)(i * 31 + i / 65536);
    char src[256], dst[256], other[256];
    path_of(src, sizeof src, "src");
    path_of(dst, sizeof dst, "dst");
    path_of(other, sizeof other, "other");
    FILE *f = fopen(src, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, N, f), N);
    ck_assert_int_eq(fclose(f), 0);
    mode_t old_mask = umask(022);
    ck_assert_int_eq(ef_copy_file(src, dst), 0);
    umask(old_mask);
    ck_assert_uint_eq(slurp("dst", back, sizeof back), N);
    ck_assert(memcmp(back, data, N) == 0);
    struct stat st;
    ck_assert_int_eq(stat(dst, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644);
    /* An existing target: refused, its content kept. */
    ck_assert_int_eq(ef_write_durably(td_dir, "other", "keep", 4), 0);
    ck_assert_int_eq(ef_copy_file(src, other), -EEXIST);
    ck_assert_uint_eq(slurp("other", back, sizeof back), 4);
    ck_assert_str_eq(back, "keep");
    /* An empty source: an empty copy. */
    ck_assert_int_eq(ef_write_durably(td_dir, "empty", "", 0), 0);
    char empty[256], empty2[256];
    path_of(empty, sizeof empty, "empty");
    path_of(empty2, sizeof empty2, "empty2");
    ck_assert_int_eq(ef_copy_file(empty, empty2), 0);
    ck_assert_uint_eq(slurp("empty2", back, sizeof back), 0);
    /* No source: nothing created. */
    char missing[256], dst2[256];
    path_of(missing, sizeof missing, "missing");
    path_of(dst2, sizeof dst2, "dst2");
    ck_assert_int_eq(ef_copy_file(missing, dst2), -ENOENT);
    ck_assert(!exists("dst2"));
    /* A source that opens but cannot be read. */
    ck_assert_int_eq(ef_copy_file(td_dir, dst2), -EISDIR);
}
END_TEST

struct limited {
    rlim_t limit; /* RLIMIT_FSIZE in the child */
    size_t len;   /* bytes written durably over the old "marker" */
    int durably;  /* ef_write_durably, else ef_replace_file */
};

/* In the child: the file size limit, SIGXFSZ ignored (write then fails with EFBIG or
 * writes short), one replacement; exits with -rc so the parent can check the code. */
static void write_limited(void *p)
{
    const struct limited *a = p;
    static char data[8192];
    memset(data, 'N', sizeof data);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = { a->limit, a->limit };
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
        _exit(200);
    int rc = a->durably ? ef_write_durably(td_dir, "marker", data, a->len)
                        : ef_replace_file(td_dir, "marker", data, a->len);
    _exit(rc > 0 ? 201 : -rc);
}

static int limited_rc(rlim_t limit, size_t len, int durably)
{
    struct limited a = { limit, len, durably };
    int st = td_in_child(write_limited, &a);
    ck_assert_msg(WIFEXITED(st), "child died of signal %d", WTERMSIG(st));
    ck_assert_int_lt(WEXITSTATUS(st), 200);
    return -WEXITSTATUS(st);
}

START_TEST(test_short_write_is_enospc)
{
    char buf[64];
    ck_assert_int_eq(ef_write_durably(td_dir, "marker", "old", 3), 0);
    /* The write stops at the limit: a short write, reported as a full disk. */
    ck_assert_int_eq(limited_rc(1000, 4096, 1), -ENOSPC);
    ck_assert_int_eq(limited_rc(1000, 4096, 0), -ENOSPC);
    /* No byte may be written at all: the write's own error. */
    ck_assert_int_eq(limited_rc(0, 10, 1), -EFBIG);
    /* Within the limit it works in the same setting. */
    ck_assert_int_eq(limited_rc(1000, 1000, 1), 0);
    ck_assert_uint_eq(slurp("marker", buf, sizeof buf), 63);
    ck_assert_int_eq(ef_write_durably(td_dir, "marker", "old", 3), 0);
    ck_assert_int_eq(limited_rc(1000, 1001, 1), -ENOSPC);
    /* After every failure: the old file whole, no temporary file left. */
    ck_assert_uint_eq(slurp("marker", buf, sizeof buf), 3);
    ck_assert_str_eq(buf, "old");
    ck_assert(!exists(".marker.tmp"));
}
END_TEST

START_TEST(test_full_tmpfs)
{
    char mnt[256];
    path_of(mnt, sizeof mnt, "small");
    if (td_mount_tmpfs(mnt, 64 * 1024) != 0)
        return;
    ck_assert_int_eq(ef_write_durably(mnt, "marker", "kept", 4), 0);
    static char big[256 * 1024];
    memset(big, 'B', sizeof big);
    ck_assert_int_eq(ef_write_durably(mnt, "marker", big, sizeof big), -ENOSPC);
    char buf[16];
    ck_assert_int_eq(ef_read_small(mnt, "marker", buf, sizeof buf), 4);
    ck_assert_str_eq(buf, "kept");
    ck_assert_int_eq(ef_read_small(mnt, ".marker.tmp", buf, sizeof buf), -ENOENT);
    /* Space is back once the failed attempt is gone: a small write works. */
    ck_assert_int_eq(ef_write_durably(mnt, "marker", "new", 3), 0);
}
END_TEST

static Suite *durable_suite(void)
{
    Suite *s = suite_create("durable");
    TCase *tc = tcase_create("durable");
    tcase_add_unchecked_fixture(tc, td_case_setup, td_case_teardown);
    tcase_add_checked_fixture(tc, td_setup, td_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_write_and_read_back);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_marker_replaced_whole);
    tcase_add_test(tc, test_copy_file);
    tcase_add_test(tc, test_short_write_is_enospc);
    tcase_add_test(tc, test_full_tmpfs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    umask(022);
    SRunner *sr = srunner_create(durable_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
