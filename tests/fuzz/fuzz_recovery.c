/* fuzz_recovery: libFuzzer harness for log recovery (log_open on arbitrary segment bytes).
 *
 * Input: one flags byte, then the bytes of a segment file.
 *   bit 0 clear: the bytes are the only segment, 00000000000000000001.seg.
 *   bit 0 set:   a valid sealed segment holding positions 1..3 comes first and the bytes are
 *                the newest segment, 00000000000000000004.seg.
 *   bit 1 set:   after a successful recovery, append one record and check the log again.
 * Every iteration starts from a fresh log directory under one mkdtemp() directory in
 * $TMPDIR (default /tmp).
 *
 * The oracle is computed from the input alone with record_decode: P is the longest run of
 * whole, valid records at the start of the newest segment whose positions continue densely.
 * Any of them may have been acknowledged, so recovery may cut only what follows P.
 *  - A read-only open must not change any file; if it succeeds it sees exactly 3?+|P|
 *    records, equal to the input's.
 *  - A read-write open either fails with a log code and a one-line error, leaving the
 *    segment untouched, or succeeds with head = (3 if two segments) + |P|, log_verify clean,
 *    a reader returning exactly those records, and the valid prefix of the file unchanged.
 *    A second open (recovery again) gives the same head; an append lands at head+1.
 * A violated property aborts, so libFuzzer keeps the input.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log.h"
#include "log/record.h"
#include "util/eflog.h"

#define FUZZ_NAME "fuzz_recovery"
#include "fuzz.h"

#define SEALED_RECORDS 3
#define MAX_EXPECTED 4096

static char root[512];    /* the mkdtemp() directory, removed at exit */
static char logdir[600];  /* root/log, recreated for every input */

static void rmodel_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        PROP(errno == ENOENT);
        return;
    }
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        PROP(unlink(path) == 0);
    }
    PROP(closedir(d) == 0);
    PROP(rmdir(dir) == 0);
}

static void cleanup(void)
{
    if (root[0]) {
        rmodel_flat_dir(logdir);
        rmdir(root);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Truncations are logged as warnings on every input: keep only errors. */
    eflog_init("fuzz_recovery", EF_ERROR);
    /* $TMPDIR: run.sh points it at a tmpfs under /tmp, where fdatasync costs nothing. */
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) > 400)
        tmp = "/tmp";
    snprintf(root, sizeof root, "%s/ef-fuzz-recovery-XXXXXX", tmp);
    PROP(mkdtemp(root) != NULL);
    snprintf(logdir, sizeof logdir, "%s/log", root);
    atexit(cleanup);
    return 0;
}

static void seg_path(uint64_t first, char *out, size_t n)
{
    snprintf(out, n, "%s/%020llu.seg", logdir, (unsigned long long)first);
}

static void write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    PROP(fd >= 0);
    PROP(n == 0 || write(fd, p, n) == (ssize_t)n);
    PROP(close(fd) == 0);
}

/* Reads a whole file into a malloc'ed buffer (NULL and *n = 0 if it does not exist). */
static unsigned char *read_file(const char *path, size_t *n)
{
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        PROP(errno == ENOENT);
        return NULL;
    }
    struct stat st;
    PROP(fstat(fd, &st) == 0);
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    PROP(buf != NULL);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        PROP(r > 0);
        got += (size_t)r;
    }
    PROP(close(fd) == 0);
    *n = got;
    return buf;
}

static const char *const sample_data[SEALED_RECORDS] = {
    "{\"user_id\":\"u1\",\"name\":\"Ann\",\"email\":null}",
    "{\"user_id\":\"u1\",\"amount_cents\":500,\"balance_cents\":500}",
    "{\"item_id\":\"i1\",\"name\":\"Pen\",\"category\":\"office\",\"price_cents\":120}",
};

static struct log_event sample_event(int i)
{
    static const char *const streams[SEALED_RECORDS] = { "user-u1", "user-u1", "item-i1" };
    static const char *const types[SEALED_RECORDS] = { "UserRegistered", "FundsDeposited", "ItemAdded" };
    struct log_event ev = {
        .stream = streams[i], .stream_len = strlen(streams[i]),
        .type = types[i], .type_len = strlen(types[i]),
        .schema_version = 1, .stream_version = i == 1 ? 2 : 1,
        .timestamp_ms = 1764198000000 + i,
        .meta = "{}", .meta_len = 2,
        .data = sample_data[i], .data_len = strlen(sample_data[i]),
    };
    return ev;
}

/* The expected content: the sealed records (two-segment mode), then the valid prefix of
 * the input. Records point into `seg` or `sealed`, which outlive the checks. */
struct expect {
    struct log_record rec[MAX_EXPECTED];
    size_t n;
    size_t prefix_end; /* end offset of the valid prefix in the newest segment */
};

static void expect_from(struct expect *ex, const unsigned char *buf, size_t size, uint64_t next)
{
    size_t off = 0;
    while (ex->n < MAX_EXPECTED) {
        struct log_record r;
        if (record_decode(buf + off, size - off, &r) != RECORD_OK || r.position != next)
            break;
        ex->rec[ex->n++] = r;
        off += r.length;
        next++;
    }
    ex->prefix_end = off;
}

static int same_record(const struct log_record *a, const struct log_record *b)
{
    return a->position == b->position && a->stream_version == b->stream_version &&
           a->timestamp_ms == b->timestamp_ms && a->schema_version == b->schema_version &&
           a->stream_len == b->stream_len && memcmp(a->stream, b->stream, a->stream_len) == 0 &&
           a->type_len == b->type_len && memcmp(a->type, b->type, a->type_len) == 0 &&
           a->meta_len == b->meta_len &&
           (a->meta_len == 0 || memcmp(a->meta, b->meta, a->meta_len) == 0) &&
           a->data_len == b->data_len &&
           (a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0);
}

/* Reads the whole log and compares it with the expectation. */
static void check_content(struct log *lg, const struct expect *ex)
{
    PROP(log_head(lg) == ex->n);
    struct log_reader *rd = NULL;
    PROP(log_reader_open(lg, 1, &rd) == 0);
    struct log_record r;
    size_t i = 0;
    int st;
    while ((st = log_reader_next(rd, log_head(lg), &r)) == 1) {
        PROP(i < ex->n);
        if (!same_record(&r, &ex->rec[i]))
            fprintf(stderr, "fuzz_recovery: record %zu differs from the input's\n", i + 1);
        PROP(same_record(&r, &ex->rec[i]));
        i++;
    }
    if (st != 0)
        fprintf(stderr, "fuzz_recovery: reader: %s: %s\n", log_strerror(st), log_last_error(lg));
    PROP(st == 0);
    PROP(i == ex->n);
    log_reader_close(rd);
}

static int is_log_code(int err)
{
    return err == LOG_ECORRUPT || err == LOG_EVERSION || err == LOG_ESEQUENCE ||
           err == LOG_ETOOBIG || (err < 0 && err > -4096);
}

static void check_open_error(int err)
{
    PROP(err < 0 && is_log_code(err));
    const char *msg = log_last_error(NULL);
    PROP(msg != NULL && msg[0] != '\0');
    PROP(strchr(msg, '\n') == NULL);
}

static void check_unchanged(const char *path, const uint8_t *orig, size_t n)
{
    size_t now_n;
    unsigned char *now = read_file(path, &now_n);
    PROP(now != NULL && now_n == n && (n == 0 || memcmp(now, orig, n) == 0));
    free(now);
}

static void append_and_check(struct log *lg, struct expect *ex)
{
    struct log_event ev = sample_event(0);
    ev.stream = "user-fuzz";
    ev.stream_len = strlen(ev.stream);
    uint64_t pos = 0;
    int err = log_append(lg, &ev, &pos);
    if (err)
        fprintf(stderr, "fuzz_recovery: append: %s: %s\n", log_strerror(err), log_last_error(lg));
    PROP(err == 0);
    PROP(pos == ex->n + 1);
    uint64_t records = 0;
    PROP(log_verify(lg, &records) == 0);
    PROP(records == ex->n + 1);
    PROP(log_durable(lg) >= pos);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t flags = data[0];
    const uint8_t *seg = data + 1;
    size_t seg_n = size - 1;

    rmodel_flat_dir(logdir);
    PROP(mkdir(logdir, 0755) == 0);

    static struct expect ex;
    static unsigned char sealed[4096];
    ex.n = 0;
    uint64_t newest = 1;
    if (flags & 1) {
        size_t off = 0;
        for (int i = 0; i < SEALED_RECORDS; i++) {
            struct log_event ev = sample_event(i);
            size_t n = record_encoded_size(&ev);
            PROP(n > 0 && off + n <= sizeof sealed);
            record_encode(&ev, (uint64_t)i + 1, sealed + off);
            PROP(record_decode(sealed + off, n, &ex.rec[ex.n]) == RECORD_OK);
            ex.n++;
            off += n;
        }
        char p[256];
        seg_path(1, p, sizeof p);
        write_file(p, sealed, off);
        newest = SEALED_RECORDS + 1;
    }
    /* record_decode keeps pointers into its buffer: decode from a private copy. */
    unsigned char *copy = malloc(seg_n ? seg_n : 1);
    PROP(copy != NULL);
    if (seg_n)
        memcpy(copy, seg, seg_n);
    expect_from(&ex, copy, seg_n, newest);
    char path[256];
    seg_path(newest, path, sizeof path);
    write_file(path, seg, seg_n);

    /* Read-only first: it must not write anything. */
    struct log_options ro = { .read_only = 1 };
    struct log *lg = NULL;
    int err = log_open(logdir, &ro, &lg);
    if (err == 0) {
        check_content(lg, &ex);
        log_close(lg);
    } else {
        check_open_error(err);
    }
    check_unchanged(path, seg, seg_n);

    struct log_options rw = { 0 };
    lg = NULL;
    err = log_open(logdir, &rw, &lg);
    if (err != 0) {
        check_open_error(err);
        check_unchanged(path, seg, seg_n);
        free(copy);
        return 0;
    }
    uint64_t records = 0;
    err = log_verify(lg, &records);
    if (err)
        fprintf(stderr, "fuzz_recovery: verify after recovery: %s: %s\n", log_strerror(err),
                log_last_error(lg));
    PROP(err == 0 && records == ex.n);
    check_content(lg, &ex);
    log_close(lg);

    /* Recovery kept the valid prefix byte for byte. */
    size_t now_n;
    unsigned char *now = read_file(path, &now_n);
    PROP(now_n >= ex.prefix_end);
    PROP(ex.prefix_end == 0 || memcmp(now, seg, ex.prefix_end) == 0);
    free(now);

    /* Recovering a recovered log changes nothing. */
    lg = NULL;
    PROP(log_open(logdir, &rw, &lg) == 0);
    check_content(lg, &ex);
    if (flags & 2)
        append_and_check(lg, &ex);
    log_close(lg);
    free(copy);
    return 0;
}
