/* check_log: the event log in one process: encoding, CRC, round trips, segment roll-over,
 * torn-tail recovery, detection of damage, and injected I/O failures. Multi-process
 * behaviour (concurrent appenders, dying lock holders, crash loops) is in check_log_mp.c. */
#include <config.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/io.h"
#include "log/log.h"
#include "log/record.h"
#include "log_testutil.h"
#include "testdir.h"
#include "util/xalloc.h"

/* One temp tree per test case (unchecked fixture: made and removed in the runner, so it is
 * removed even when a test's assertion fails in its forked child). */
static char *base;

static void base_setup(void) { base = lt_mkdtemp("check_log"); }
static void base_teardown(void)
{
    td_rmtree(base);
    free(base);
    base = NULL;
    log_io_reset();
}

/* A fresh log directory under base. */
static const char *newdir(const char *name)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", base, name);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    return path;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void expect_clean(const char *dir, uint64_t records);

static struct log *open_ro(const char *dir)
{
    struct log_options opt = { .read_only = 1 };
    struct log *lg = NULL;
    int err = log_open(dir, &opt, &lg);
    ck_assert_msg(err == 0, "read-only open: %s", log_last_error(NULL));
    return lg;
}

/* Reads every record from `from` up to the head and checks positions are dense. (Check
 * reports every assertion to the runner through a pipe, so loops over many records count
 * their failures and assert once.) */
static uint64_t read_all(struct log *lg, uint64_t from, uint64_t *first_seen)
{
    struct log_reader *rd = NULL;
    ck_assert_int_eq(log_reader_open(lg, from, &rd), 0);
    struct log_record rec;
    uint64_t n = 0, expect = 0, gaps = 0;
    int r;
    while ((r = log_reader_next(rd, log_head(lg), &rec)) == 1) {
        if (n == 0 && first_seen)
            *first_seen = rec.position;
        gaps += expect && rec.position != expect;
        expect = rec.position + 1;
        n++;
    }
    ck_assert_uint_eq(gaps, 0);
    ck_assert_msg(r == 0, "reader: %s", log_last_error(lg));
    log_reader_close(rd);
    return n;
}

/* --- CRC and encoding ------------------------------------------------------------- */

START_TEST(test_crc_vector)
{
    ck_assert_uint_eq(log_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(log_crc32c(log_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    ck_assert_uint_eq(log_crc32c(0, "", 0), 0);
    /* 32 bytes of zeros: RFC 3720 B.4 test vector. */
    unsigned char z[32] = { 0 };
    ck_assert_uint_eq(log_crc32c(0, z, sizeof z), 0x8A9136AAu);
}
END_TEST

static void check_same(const struct log_event *ev, const struct log_record *rec)
{
    ck_assert_uint_eq(rec->stream_len, ev->stream_len);
    ck_assert_int_eq(memcmp(rec->stream, ev->stream, ev->stream_len), 0);
    ck_assert_uint_eq(rec->type_len, ev->type_len);
    ck_assert_int_eq(memcmp(rec->type, ev->type, ev->type_len), 0);
    ck_assert_uint_eq(rec->meta_len, ev->meta_len);
    if (ev->meta_len)
        ck_assert_int_eq(memcmp(rec->meta, ev->meta, ev->meta_len), 0);
    ck_assert_uint_eq(rec->data_len, ev->data_len);
    if (ev->data_len)
        ck_assert_int_eq(memcmp(rec->data, ev->data, ev->data_len), 0);
    ck_assert_uint_eq(rec->schema_version, ev->schema_version);
    ck_assert_uint_eq(rec->stream_version, ev->stream_version);
    ck_assert_int_eq(rec->timestamp_ms, ev->timestamp_ms);
}

START_TEST(test_decode_every_bit_flip)
{
    struct log_event ev = { .stream = "user-42", .stream_len = 7, .type = "UserRegistered", .type_len = 14,
                            .schema_version = 1, .stream_version = 1, .timestamp_ms = 1,
                            .meta = "{}", .meta_len = 2, .data = "{\"a\":1}", .data_len = 7 };
    size_t n = record_encoded_size(&ev);
    ck_assert_uint_eq(n % 8, 0);
    unsigned char *buf = xmalloc(n);
    record_encode(&ev, 9, buf);
    struct log_record rec;
    ck_assert_int_eq(record_decode(buf, n, &rec), RECORD_OK);
    ck_assert_uint_eq(rec.position, 9);
    ck_assert_uint_eq(rec.length, n);
    check_same(&ev, &rec);
    for (size_t cut = 0; cut < n; cut++)
        ck_assert_int_eq(record_decode(buf, cut, &rec), RECORD_SHORT);
    /* Any single flipped bit, padding included, must be caught. */
    for (size_t bit = 0; bit < n * 8; bit++) {
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        int st = record_decode(buf, n, &rec);
        ck_assert_msg(st != RECORD_OK, "bit %zu flipped went unnoticed", bit);
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    memset(buf, 0, n);
    ck_assert_int_eq(record_decode(buf, n, &rec), RECORD_ZERO);
    free(buf);
}
END_TEST

START_TEST(test_limits)
{
    char big[LOG_STREAM_MAX + 1];
    memset(big, 'a', sizeof big);
    struct log_event ev = { .stream = big, .stream_len = LOG_STREAM_MAX + 1, .type = "T", .type_len = 1 };
    ck_assert_uint_eq(record_encoded_size(&ev), 0);
    ev.stream_len = LOG_STREAM_MAX;
    ck_assert_uint_gt(record_encoded_size(&ev), 0);
    ev.type_len = 0;
    ck_assert_uint_eq(record_encoded_size(&ev), 0);
    ev.type_len = 1;
    ev.data = big;
    ev.data_len = SIZE_MAX - 10; /* must not wrap around */
    ck_assert_uint_eq(record_encoded_size(&ev), 0);

    const char *dir = newdir("limits");
    struct log *lg = lt_open(dir, 0);
    struct log_event empty = { .stream = "", .stream_len = 0, .type = "T", .type_len = 1 };
    ck_assert_int_eq(log_append(lg, &empty, NULL), LOG_EBADARG);
    ev.data_len = LOG_RECORD_MAX;
    ck_assert_int_eq(log_append(lg, &ev, NULL), LOG_ETOOBIG);
    ck_assert_int_eq(log_append_record(lg, &ev, NULL), LOG_ELOCKED);
    ck_assert_int_eq(log_append_begin(lg), 0);
    ck_assert_int_eq(log_append_begin(lg), LOG_ELOCKED);
    log_append_end(lg);
    ck_assert_uint_eq(log_head(lg), 0);
    log_close(lg);
}
END_TEST

/* --- round trip ------------------------------------------------------------------- */

START_TEST(test_round_trip)
{
    const char *dir = newdir("roundtrip");
    static const char odd[] = "a\0b\xff\"q\"\\\n\x01";
    size_t max_data = LOG_RECORD_MAX - LOG_HEADER_SIZE - 3 - 1;
    char *maxbuf = xmalloc(max_data);
    for (size_t i = 0; i < max_data; i++)
        maxbuf[i] = (char)(i * 131 + 7);
    char longstream[LOG_STREAM_MAX], longtype[LOG_TYPE_MAX];
    memset(longstream, 's', sizeof longstream);
    memset(longtype, 't', sizeof longtype);
    struct log_event evs[] = {
        { .stream = "user-1", .stream_len = 6, .type = "UserRegistered", .type_len = 14, .schema_version = 1,
          .stream_version = 1, .timestamp_ms = 1764198483123, .meta = "{}", .meta_len = 2,
          .data = "{\"user_id\":\"1\"}", .data_len = 15 },
        { .stream = odd, .stream_len = sizeof odd - 1, .type = odd, .type_len = sizeof odd - 1,
          .schema_version = 65535, .stream_version = UINT64_MAX, .timestamp_ms = -1, .meta = odd,
          .meta_len = sizeof odd - 1, .data = odd, .data_len = sizeof odd - 1 },
        { .stream = "e", .stream_len = 1, .type = "E", .type_len = 1 }, /* empty meta and data */
        { .stream = longstream, .stream_len = LOG_STREAM_MAX, .type = longtype, .type_len = LOG_TYPE_MAX,
          .data = "{}", .data_len = 2, .timestamp_ms = INT64_MAX },
        { .stream = "max", .stream_len = 3, .type = "M", .type_len = 1, .data = maxbuf, .data_len = max_data,
          .timestamp_ms = INT64_MIN },
    };
    size_t n = sizeof evs / sizeof evs[0];
    ck_assert_uint_eq(record_encoded_size(&evs[n - 1]), LOG_RECORD_MAX);

    struct log *lg = lt_open(dir, 0);
    ck_assert_int_eq(log_recovered(lg), 1);
    for (size_t i = 0; i < n; i++) {
        uint64_t pos = 0;
        ck_assert_int_eq(log_append(lg, &evs[i], &pos), 0);
        ck_assert_uint_eq(pos, i + 1);
        ck_assert_uint_ge(log_durable(lg), pos);
    }
    /* Read back through the live handle, then after a reopen (recovery) and read-only. */
    for (int round = 0; round < 3; round++) {
        if (round == 1) {
            log_close(lg);
            lg = lt_open(dir, 0);
            ck_assert_uint_eq(log_head(lg), n);
        } else if (round == 2) {
            log_close(lg);
            lg = open_ro(dir);
            ck_assert_uint_eq(log_head(lg), n);
        }
        struct log_reader *rd = NULL;
        ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
        struct log_record rec;
        for (size_t i = 0; i < n; i++) {
            ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 1);
            ck_assert_uint_eq(rec.position, i + 1);
            ck_assert_uint_eq(rec.segment, 1);
            check_same(&evs[i], &rec);
        }
        ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 0);
        log_reader_close(rd);
    }
    uint64_t count = 0;
    ck_assert_int_eq(log_verify(lg, &count), 0);
    ck_assert_uint_eq(count, n);
    ck_assert_int_eq(log_append(lg, &evs[0], NULL), LOG_EREADONLY);
    log_close(lg);
    free(maxbuf);
}
END_TEST

/* --- sparse reading (one seek per record) ------------------------------------------ */

static uint64_t pread_bytes;
static ssize_t counting_pread(int fd, void *buf, size_t n, off_t off)
{
    ssize_t r = pread(fd, buf, n, off);
    if (r > 0)
        pread_bytes += (uint64_t)r;
    return r;
}

/* A sparse reader that seeks to records reads only what each one needs: at most 4 KiB, or
 * the record's length when larger (a second read), never the 1 MiB read-ahead. */
START_TEST(test_sparse_reader)
{
    const char *dir = newdir("sparse");
    struct log *lg = lt_open(dir, 0);
    enum { N = 300 };
    static char data[10000];
    memset(data, 'd', sizeof data);
    for (int i = 0; i < N; i++) {
        struct log_event ev = { .stream = "s", .stream_len = 1, .type = "T", .type_len = 1,
                                .data = data, .data_len = i % 3 == 0 ? sizeof data : 100 };
        ck_assert_int_eq(log_append(lg, &ev, NULL), 0);
    }
    struct log_reader *rd = NULL;
    struct log_record rec;
    uint64_t seg[N + 1], off[N + 1], len[N + 1];
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    for (int i = 1; i <= N; i++) {
        ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 1);
        seg[i] = rec.segment;
        off[i] = rec.offset;
        len[i] = rec.length;
    }
    log_reader_close(rd);
    log_io.pread = counting_pread;
    pread_bytes = 0;
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    log_reader_sparse(rd);
    uint64_t bound = 0, wrong = 0;
    for (int i = N; i >= 1; i -= 2) { /* backwards: no read-ahead could serve the next one */
        ck_assert_int_eq(log_reader_seek(rd, seg[i], off[i]), 0);
        ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 1);
        wrong += rec.position != (uint64_t)i || rec.data_len != ((i - 1) % 3 == 0 ? sizeof data : 100);
        bound += 4096 + (len[i] > 4096 ? len[i] : 0);
    }
    log_reader_close(rd);
    log_io_reset();
    ck_assert_uint_eq(wrong, 0);
    ck_assert_msg(pread_bytes <= bound, "sparse reads took %" PRIu64 " bytes for %d records (bound %" PRIu64 ")",
                  pread_bytes, N / 2, bound);
    log_close(lg);
}
END_TEST

/* --- roll-over -------------------------------------------------------------------- */

/* First positions of the segments in dir, ascending; returns how many (*out: free()). */
static uint64_t list_segments(const char *dir, uint64_t **out)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    uint64_t *v = NULL, n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long first;
        char tail[8];
        if (sscanf(e->d_name, "%20llu%7s", &first, tail) != 2 || strcmp(tail, ".seg") != 0)
            continue;
        v = xrealloc(v, (n + 1) * sizeof *v);
        v[n++] = first;
    }
    closedir(d);
    for (uint64_t i = 1; i < n; i++) /* insertion sort: a few dozen names */
        for (uint64_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint64_t t = v[j];
            v[j] = v[j - 1], v[j - 1] = t;
        }
    *out = v;
    return n;
}

START_TEST(test_roll_over)
{
    const char *dir = newdir("roll");
    const uint64_t total = 2000, seg_bytes = 4096;
    struct log *lg = lt_open(dir, seg_bytes);
    lt_append_batch(lg, 1, total, 150);
    /* One record larger than the limit goes into a segment of its own. */
    char *big = xmalloc(3 * seg_bytes);
    memset(big, 'b', 3 * seg_bytes);
    struct log_event ev = { .stream = "big", .stream_len = 3, .type = "B", .type_len = 1, .data = big,
                            .data_len = 3 * seg_bytes };
    uint64_t bigpos;
    ck_assert_int_eq(log_append(lg, &ev, &bigpos), 0);
    ck_assert_uint_eq(bigpos, total + 1);
    lt_append_n(lg, total + 2, 1, 0);
    free(big);

    uint64_t nseg = lt_count_segments(dir);
    ck_assert_uint_gt(nseg, 40);
    struct log_stats st;
    ck_assert_int_eq(log_stats(lg, &st), 0);
    ck_assert_uint_eq(st.segments, nseg);
    ck_assert_uint_eq(st.head_position, total + 2);
    ck_assert_uint_eq(file_size(lt_seg(dir, bigpos)), record_encoded_size(&ev));
    ck_assert_uint_le(file_size(lt_seg(dir, 1)), seg_bytes);
    /* Sealed segments end with their last record (the zeros written ahead were trimmed),
     * and the stats count records, not zeros. */
    uint64_t *first_of = NULL, bytes = 0;
    ck_assert_uint_eq(list_segments(dir, &first_of), nseg);
    for (uint64_t i = 0; i < nseg; i++) {
        const char *seg = lt_seg(dir, first_of[i]);
        if (i + 1 < nseg)
            ck_assert_uint_eq(file_size(seg), lt_data_size(seg));
        bytes += lt_data_size(seg);
    }
    free(first_of);
    ck_assert_uint_eq(st.bytes, bytes);

    /* From the middle of every segment: the first record is exactly `from`, the rest dense. */
    struct log_reader *rd = NULL;
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    struct log_record rec;
    uint64_t prev_seg = 0, checked = 0;
    while (log_reader_next(rd, log_head(lg), &rec) == 1) {
        ck_assert_uint_le(rec.offset + rec.length, rec.length > seg_bytes ? rec.length : seg_bytes);
        if (rec.segment == prev_seg)
            continue;
        prev_seg = rec.segment;
        uint64_t from = rec.segment + 3, first = 0;
        if (from > total)
            continue;
        ck_assert_uint_eq(read_all(lg, from, &first), total + 2 - from + 1);
        ck_assert_uint_eq(first, from);
        checked++;
    }
    log_reader_close(rd);
    ck_assert_uint_gt(checked, 40);
    ck_assert_uint_eq(read_all(lg, 0, NULL), total + 2);
    log_close(lg);

    /* Reopen (recovery) and continue; read-only verify agrees. */
    lg = lt_open(dir, seg_bytes);
    ck_assert_uint_eq(log_head(lg), total + 2);
    lt_append_batch(lg, total + 3, 10, 150);
    log_close(lg);
    lg = open_ro(dir);
    uint64_t count;
    ck_assert_int_eq(log_verify(lg, &count), 0);
    ck_assert_uint_eq(count, total + 12);
    log_close(lg);
}
END_TEST

/* A reader following the tail crosses into segments created after it reached the end. */
START_TEST(test_follow_tail)
{
    const char *dir = newdir("follow");
    struct log *lg = lt_open(dir, 512);
    struct log_reader *rd = NULL;
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    struct log_record rec;
    ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 0);
    uint64_t seen = 0;
    for (uint64_t i = 1; i <= 120; i++) {
        lt_append_n(lg, i, 1, 40);
        /* Only durable records with the durable limit; nothing beyond the limit. */
        ck_assert_int_eq(log_reader_next(rd, log_durable(lg) - 1, &rec), 0);
        ck_assert_int_eq(log_reader_next(rd, log_durable(lg), &rec), 1);
        ck_assert_uint_eq(rec.position, ++seen);
        ck_assert_int_eq(log_reader_next(rd, log_durable(lg), &rec), 0);
    }
    /* seek: jump straight to a record known by (segment, offset). */
    struct log_record known = rec;
    ck_assert_int_eq(log_reader_seek(rd, known.segment, known.offset), 0);
    ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 1);
    ck_assert_uint_eq(rec.position, known.position);
    ck_assert_int_eq(log_reader_seek(rd, 1, 3), LOG_EBADARG);
    log_reader_close(rd);
    ck_assert_uint_gt(lt_count_segments(dir), 10);
    log_close(lg);
}
END_TEST

/* --- torn tail -------------------------------------------------------------------- */

START_TEST(test_torn_tail_every_offset)
{
    const char *dir = newdir("torn");
    struct log *lg = lt_open(dir, 0);
    lt_append_n(lg, 1, 4, 50);
    uint64_t before = lt_data_size(lt_seg(dir, 1));
    lt_append_n(lg, 5, 1, 50);
    log_close(lg);
    char seg[4200];
    snprintf(seg, sizeof seg, "%s", lt_seg(dir, 1));
    size_t len, written;
    unsigned char *whole = lt_slurp(seg, &written);
    ck_assert_ptr_nonnull(whole);
    len = (size_t)lt_data_size(seg);
    ck_assert_uint_gt(len, before);
    ck_assert_uint_eq(written, len); /* the last user's close cut the zeros written ahead */

    for (size_t cut = before; cut < len; cut++) {
        lt_write_file(seg, whole, cut);
        lt_stderr_begin();
        lg = lt_open(dir, 0);
        const char *report = lt_stderr_end();
        ck_assert_int_eq(log_recovered(lg), 1);
        ck_assert_uint_eq(log_head(lg), 4);
        ck_assert_uint_eq(file_size(seg), before);
        if (cut > before) {
            char want[256];
            snprintf(want, sizeof want, "offset=%" PRIu64 " bytes=%zu", before, cut - before);
            ck_assert_msg(strstr(report, "torn tail") && strstr(report, want), "cut %zu: report '%s'", cut, report);
        }
        /* The next append lands right after the cut (no sync: durability is not the point
         * here, and 100+ fdatasyncs are slow on a busy disk). */
        char buf[1024];
        struct log_event ev;
        lt_event(5, 50, buf, &ev);
        uint64_t pos = 0;
        ck_assert_int_eq(log_append_begin(lg), 0);
        ck_assert_int_eq(log_append_record(lg, &ev, &pos), 0);
        log_append_end(lg);
        ck_assert_uint_eq(pos, 5);
        log_close(lg);
        size_t now;
        unsigned char *again = lt_slurp(seg, &now);
        ck_assert_uint_eq(lt_data_size(seg), len);
        ck_assert_int_eq(memcmp(again, whole, len), 0);
        free(again);
    }
    /* Zeros after the last record (written ahead by appends, or a crash after extending
     * the file): cut without a torn-tail report, and verify does not call them damage. */
    unsigned char *padded = xcalloc(1, len + 8192);
    memcpy(padded, whole, len);
    lt_write_file(seg, padded, len + 8192);
    expect_clean(dir, 5);
    lt_stderr_begin();
    lg = lt_open(dir, 0);
    const char *report = lt_stderr_end();
    ck_assert_msg(!strstr(report, "torn tail"), "report: %s", report);
    ck_assert_uint_eq(log_head(lg), 5);
    ck_assert_uint_eq(file_size(seg), len);
    log_close(lg);
    /* One non-zero byte among them is a torn tail, reported as such. */
    padded[len + 4000] = 1;
    lt_write_file(seg, padded, len + 8192);
    lt_stderr_begin();
    lg = lt_open(dir, 0);
    report = lt_stderr_end();
    ck_assert_msg(strstr(report, "torn tail"), "report: %s", report);
    ck_assert_uint_eq(file_size(seg), len);
    log_close(lg);
    free(padded);
    free(whole);
}
END_TEST

/* Appends write zeros ahead of the head, so that most fdatasyncs need not commit a new
 * file size: the newest segment is longer than its records, with nothing but zeros after
 * them, and every reader, verify and a read-only open see only the records. */
START_TEST(test_zeros_ahead)
{
    const char *dir = newdir("zeros");
    struct log *lg = lt_open(dir, 0);
    lt_append_n(lg, 1, 3, 50);
    char seg[4200];
    snprintf(seg, sizeof seg, "%s", lt_seg(dir, 1));
    uint64_t data = lt_data_size(seg), size = file_size(seg);
    size_t data_len;
    ck_assert_uint_ge(size, data + (512u << 10));
    struct log_stats st;
    ck_assert_int_eq(log_stats(lg, &st), 0);
    ck_assert_uint_eq(st.bytes, data);
    /* The reader ends at the last record, and takes the next one when it comes. */
    struct log_reader *rd = NULL;
    struct log_record rec;
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 1);
    ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 0);
    lt_append_n(lg, 4, 1, 50);
    /* It reads the new record, not the zeros after it (a tailer wakes for every record). */
    pread_bytes = 0;
    log_io.pread = counting_pread;
    ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 1);
    ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 0);
    log_io_reset();
    ck_assert_uint_eq(rec.position, 4);
    ck_assert_uint_le(pread_bytes, rec.length);
    log_reader_close(rd);
    ck_assert_uint_eq(file_size(seg), size); /* written into the zeros */
    /* A read-only open and verify beside the writer. */
    struct log *ro = open_ro(dir);
    ck_assert_uint_eq(log_head(ro), 4);
    ck_assert_int_eq(log_stats(ro, &st), 0);
    ck_assert_uint_eq(st.bytes, lt_data_size(seg));
    log_close(ro);
    expect_clean(dir, 4);
    /* The last read-write user to close the log cuts them (a stopped log's files end with
     * their last record); one that is not the last leaves them to the others. */
    struct log *other = lt_open(dir, 0);
    log_close(other);
    ck_assert_uint_eq(file_size(seg), size);
    lt_append_n(lg, 5, 1, 50);
    log_close(lg);
    ck_assert_uint_eq(file_size(seg), lt_data_size(seg));
    expect_clean(dir, 5);
    /* Zeros left by a process that died are cut by the recovery, quietly (and by nothing
     * else when the log is opened read-only); the next append writes them again. */
    unsigned char *buf = lt_slurp(seg, &data_len);
    buf = xrealloc(buf, data_len + (700u << 10));
    memset(buf + data_len, 0, 700u << 10);
    lt_write_file(seg, buf, data_len + (700u << 10));
    free(buf);
    expect_clean(dir, 5);
    ck_assert_uint_eq(file_size(seg), data_len + (700u << 10));
    lt_stderr_begin();
    lg = lt_open(dir, 0);
    const char *report = lt_stderr_end();
    ck_assert_msg(!strstr(report, "torn") && !strstr(report, "cut"), "report: %s", report);
    ck_assert_uint_eq(file_size(seg), data_len);
    lt_append_n(lg, 6, 1, 50);
    ck_assert_uint_gt(file_size(seg), lt_data_size(seg));
    log_close(lg);
    expect_clean(dir, 6);
}
END_TEST

/* Garbage that is followed by a valid record is damage, not a torn tail. */
START_TEST(test_damage_before_tail)
{
    const char *dir = newdir("damage");
    struct log *lg = lt_open(dir, 0);
    lt_append_n(lg, 1, 10, 30);
    struct log_reader *rd = NULL;
    struct log_record rec;
    ck_assert_int_eq(log_reader_open(lg, 4, &rd), 0);
    ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 1);
    uint64_t off = rec.offset;
    log_reader_close(rd);
    log_close(lg);

    int fd = open(lt_seg(dir, 1), O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, (off_t)off + 60), 1);
    b ^= 0x10;
    ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off + 60), 1);
    close(fd);
    uint64_t size = file_size(lt_seg(dir, 1));

    struct log_options opt = { 0 };
    ck_assert_int_eq(log_open(dir, &opt, &lg), LOG_ECORRUPT);
    char want[64];
    snprintf(want, sizeof want, "offset %" PRIu64, off);
    ck_assert_msg(strstr(log_last_error(NULL), want) && strstr(log_last_error(NULL), "00000000000000000001.seg"),
                  "error: %s", log_last_error(NULL));
    ck_assert_uint_eq(file_size(lt_seg(dir, 1)), size); /* nothing cut */

    /* Read-only: refused the same way; with salvage, the log ends just before the damaged
     * record (position 4) and every record before it reads back. */
    opt = (struct log_options){ .read_only = 1 };
    ck_assert_int_eq(log_open(dir, &opt, &lg), LOG_ECORRUPT);
    opt.salvage = 1;
    ck_assert_int_eq(log_open(dir, &opt, &lg), 0);
    ck_assert_uint_eq(log_head(lg), 3);
    ck_assert_msg(log_damage(lg) && strstr(log_damage(lg), want), "damage: %s", log_damage(lg));
    uint64_t first = 0;
    ck_assert_uint_eq(read_all(lg, 1, &first), 3);
    log_close(lg);
    opt = (struct log_options){ .salvage = 1 }; /* not read-only: salvage is ignored */
    ck_assert_int_eq(log_open(dir, &opt, &lg), LOG_ECORRUPT);
    ck_assert_uint_eq(file_size(lt_seg(dir, 1)), size);
}
END_TEST

/* --- a segment deleted by hand ------------------------------------------------------- */

/* Recovery checks that each sealed segment ends right before the next one starts (found
 * from the end of the file, in a 4 KiB window, then a 64 KiB one; a last record bigger than
 * that is found by a scan from the start) and that the log starts at 1: a deleted segment
 * fails the open, naming the segment after the gap, and changes nothing. */
START_TEST(test_missing_segment)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", newdir("missing"));
    const uint64_t seg_bytes = 4096;
    struct log *lg = lt_open(dir, seg_bytes);
    lt_append_batch(lg, 1, 100, 150);
    char *big = xmalloc(100 * 1024);
    memset(big, 'b', 100 * 1024);
    struct log_event ev = { .stream = "big", .stream_len = 3, .type = "B", .type_len = 1, .data = big,
                            .data_len = 10 * 1024 }; /* the 64 KiB window finds it */
    uint64_t bigpos;
    ck_assert_int_eq(log_append(lg, &ev, &bigpos), 0);
    ev.data_len = 100 * 1024; /* only the scan finds it */
    ck_assert_int_eq(log_append(lg, &ev, &bigpos), 0);
    free(big);
    lt_append_batch(lg, bigpos + 1, 100, 150);
    log_close(lg);
    ck_assert_uint_gt(lt_count_segments(dir), 8);

    lg = lt_open(dir, seg_bytes); /* a whole log, big sealed segment included: no false alarm */
    ck_assert_uint_eq(log_head(lg), bigpos + 100);
    log_close(lg);

    /* A segment in the middle (the one holding position 50). */
    struct log_options opt = { .segment_bytes = seg_bytes };
    struct log_reader *rd = NULL;
    struct log_record rec;
    lg = open_ro(dir);
    ck_assert_int_eq(log_reader_open(lg, 50, &rd), 0);
    ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), 1);
    uint64_t mid = rec.segment;
    log_reader_close(rd);
    log_close(lg);
    ck_assert_uint_gt(mid, 1);
    char path[4300], moved[4300];
    snprintf(path, sizeof path, "%s", lt_seg(dir, mid));
    snprintf(moved, sizeof moved, "%s/moved", dir);
    ck_assert_int_eq(rename(path, moved), 0);
    ck_assert_int_eq(log_open(dir, &opt, &lg), LOG_ESEQUENCE);
    ck_assert_msg(strstr(log_last_error(NULL), "missing") && strstr(log_last_error(NULL), "offset 0"),
                  "error: %s", log_last_error(NULL));
    ck_assert_int_eq(rename(moved, path), 0);

    snprintf(path, sizeof path, "%s", lt_seg(dir, 1));
    ck_assert_int_eq(rename(path, moved), 0);
    ck_assert_int_eq(log_open(dir, &opt, &lg), LOG_ESEQUENCE);
    ck_assert_msg(strstr(log_last_error(NULL), "expected 1"), "error: %s", log_last_error(NULL));
    ck_assert_int_eq(rename(moved, path), 0);

    lg = lt_open(dir, seg_bytes); /* all back: opens again */
    ck_assert_uint_eq(log_head(lg), bigpos + 100);
    log_close(lg);
}
END_TEST

/* --- a flipped bit in a sealed segment ---------------------------------------------- */

START_TEST(test_flipped_bit_sealed)
{
    const char *dir = newdir("flip");
    struct log *lg = lt_open(dir, 2048);
    lt_append_batch(lg, 1, 300, 60);
    /* Damage the 3rd record of the 3rd segment. */
    struct log_reader *rd = NULL;
    struct log_record rec;
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    uint64_t seg = 0, nseg = 0, target = 0, off = 0;
    while (log_reader_next(rd, log_head(lg), &rec) == 1) {
        if (rec.segment != seg)
            seg = rec.segment, nseg++;
        if (nseg == 3 && rec.position == seg + 2) {
            target = rec.position;
            off = rec.offset;
            break;
        }
    }
    log_reader_close(rd);
    ck_assert_uint_gt(target, 0);
    log_close(lg);
    char path[4200];
    snprintf(path, sizeof path, "%s", lt_seg(dir, seg));
    int fd = open(path, O_RDWR);
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, (off_t)off + 70), 1);
    b ^= 0x01;
    ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off + 70), 1);
    close(fd);

    char want[256];
    snprintf(want, sizeof want, "%020" PRIu64 ".seg offset %" PRIu64, seg, off);
    lg = open_ro(dir);
    uint64_t count = 0;
    ck_assert_int_eq(log_verify(lg, &count), LOG_ECORRUPT);
    ck_assert_msg(strstr(log_last_error(lg), want), "verify error: %s", log_last_error(lg));
    ck_assert_uint_eq(count, target - 1);
    /* A reader hands out everything before the damage and refuses to go past it. */
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    uint64_t got = 0;
    int r;
    while ((r = log_reader_next(rd, log_head(lg), &rec)) == 1)
        got = rec.position;
    ck_assert_int_eq(r, LOG_ECORRUPT);
    ck_assert_uint_eq(got, target - 1);
    ck_assert_msg(strstr(log_last_error(lg), want), "reader error: %s", log_last_error(lg));
    ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), LOG_ECORRUPT);
    log_reader_close(rd);
    /* Starting right after the damage still cannot skip it: the segment is scanned. */
    ck_assert_int_eq(log_reader_open(lg, target + 1, &rd), 0);
    ck_assert_int_eq(log_reader_next(rd, log_head(lg), &rec), LOG_ECORRUPT);
    log_reader_close(rd);
    log_close(lg);

    /* The operator tool: exit 1, naming segment and offset. */
    char out[8192];
    char *argv[] = { (char *)lt_program("eventfoldctl"), (char *)"--data", (char *)base, (char *)"verify", NULL };
    char datadir[4200];
    snprintf(datadir, sizeof datadir, "%s/flip", base);
    /* eventfoldctl takes the data directory and opens DATA/log. */
    char logparent[4200];
    snprintf(logparent, sizeof logparent, "%s/flipdata", base);
    ck_assert_int_eq(mkdir(logparent, 0755), 0);
    char logdir[4300];
    snprintf(logdir, sizeof logdir, "%s/log", logparent);
    ck_assert_int_eq(rename(datadir, logdir), 0);
    argv[2] = logparent;
    int status = lt_run(argv, out, sizeof out, 30);
    ck_assert_msg(status == 1, "eventfoldctl verify exit %d: %s", status, out);
    ck_assert_msg(strstr(out, want), "eventfoldctl output: %s", out);
    ck_assert_msg(strstr(out, "\"status\":\"corrupt\""), "eventfoldctl output: %s", out);
}
END_TEST

/* --- eventfoldctl verify / dump ---------------------------------------------------------- */

/* Runs eventfoldctl with up to 7 arguments (NULL ends them). */
static int ctl(char *out, size_t cap, const char *a1, const char *a2, const char *a3, const char *a4,
               const char *a5, const char *a6, const char *a7)
{
    char *argv[] = { (char *)lt_program("eventfoldctl"), (char *)a1, (char *)a2, (char *)a3, (char *)a4,
                     (char *)a5, (char *)a6, (char *)a7, NULL };
    return lt_run(argv, out, cap, 30);
}

START_TEST(test_ctl_verify_dump)
{
    char data[4200], logdir[4300], out[16384];
    snprintf(data, sizeof data, "%s/ctldata", base);
    ck_assert_int_eq(mkdir(data, 0755), 0);
    snprintf(logdir, sizeof logdir, "%s/log", data);
    struct log *lg = lt_open(logdir, 1024);
    lt_append_n(lg, 1, 30, 20);
    struct log_event ev = { .stream = "user-\"q\"", .stream_len = 8, .type = "UserRegistered", .type_len = 14,
                            .schema_version = 1, .stream_version = 1, .timestamp_ms = 1764198483123,
                            .meta = "{\"idempotency_key\":\"k\"}", .meta_len = 23,
                            .data = "{\"user_id\":\"q\"}", .data_len = 15 };
    ck_assert_int_eq(log_append(lg, &ev, NULL), 0);
    struct log_stats st;
    ck_assert_int_eq(log_stats(lg, &st), 0);
    log_close(lg);

    ck_assert_int_eq(ctl(out, sizeof out, "--data", data, "verify", NULL, NULL, NULL, NULL), 0);
    char want[256];
    snprintf(want, sizeof want, "{\"records\":31,\"segments\":%" PRIu64 ",\"status\":\"ok\"}\n", st.segments);
    ck_assert_str_eq(out, want);

    ck_assert_int_eq(ctl(out, sizeof out, "--data", data, "dump", "--from", "31", NULL, NULL), 0);
    ck_assert_str_eq(out, "{\"position\":31,\"stream\":\"user-\\\"q\\\"\",\"version\":1,\"type\":\"UserRegistered\","
                          "\"schema_version\":1,\"at\":\"2025-11-26T23:08:03.123Z\",\"data\":{\"user_id\":\"q\"},"
                          "\"meta\":{\"idempotency_key\":\"k\"}}\n");
    ck_assert_int_eq(ctl(out, sizeof out, "--data", data, "dump", "--from", "5", "--limit", "3"), 0);
    ck_assert_msg(strncmp(out, "{\"position\":5,", 14) == 0, "dump: %s", out);
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 3);
    ck_assert_msg(strstr(out, "{\"position\":7,") && !strstr(out, "\"meta\""), "dump: %s", out);
    ck_assert_int_eq(ctl(out, sizeof out, "--data", data, "dump", "--limit", "0", NULL, NULL), 0);
    ck_assert_str_eq(out, "");

    /* Bad usage: exit 2 with one line. */
    ck_assert_int_eq(ctl(out, sizeof out, "--data", data, NULL, NULL, NULL, NULL, NULL), 2);
    ck_assert_int_eq(ctl(out, sizeof out, "--data", data, "bogus", NULL, NULL, NULL, NULL), 2);
    ck_assert_msg(strchr(out, '\n') == out + strlen(out) - 1, "not one line: %s", out);
    ck_assert_int_eq(ctl(out, sizeof out, "--data", data, "dump", "--from", "x", NULL, NULL), 2);
    ck_assert_int_eq(ctl(out, sizeof out, "--data", data, "dump", "--from", "0", NULL, NULL), 2);
    ck_assert_int_eq(ctl(out, sizeof out, "--data", data, "verify", "extra", NULL, NULL, NULL), 2);
    ck_assert_int_eq(ctl(out, sizeof out, "--version", NULL, NULL, NULL, NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, PACKAGE_VERSION), "version: %s", out);
    ck_assert_int_eq(ctl(out, sizeof out, "--help", NULL, NULL, NULL, NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "verify") && strstr(out, "dump [--from POS] [--limit N]"), "help: %s", out);
    /* A missing data directory is a failure, not a usage error. */
    ck_assert_int_eq(ctl(out, sizeof out, "--data", "/nonexistent/eventfold", "verify", NULL, NULL, NULL, NULL), 1);
}
END_TEST

/* --- injected I/O failures ------------------------------------------------------------ */

static int inject_errno;    /* errno for the failing call */
static int inject_after;    /* let this many calls succeed first */
static size_t inject_short; /* >0: write only this many bytes, then fail the next call */

static ssize_t bad_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (inject_after > 0) {
        inject_after--;
        return pwrite(fd, buf, n, off);
    }
    if (inject_short > 0 && n > inject_short) {
        size_t k = inject_short;
        inject_short = 0;
        return pwrite(fd, buf, k, off);
    }
    if (inject_errno == 0)
        return pwrite(fd, buf, n, off);
    errno = inject_errno;
    return -1;
}

static int bad_fdatasync(int fd)
{
    (void)fd;
    errno = EIO;
    return -1;
}

static int bad_ftruncate(int fd, off_t len)
{
    (void)fd, (void)len;
    errno = EIO;
    return -1;
}

static int bad_open_create(const char *path, int flags, mode_t mode)
{
    if (flags & O_CREAT) {
        errno = ENOSPC;
        return -1;
    }
    return open(path, flags | O_CLOEXEC, mode);
}

static void expect_clean(const char *dir, uint64_t records)
{
    struct log *ro = open_ro(dir);
    uint64_t count;
    ck_assert_msg(log_verify(ro, &count) == 0, "verify: %s", log_last_error(ro));
    ck_assert_uint_eq(count, records);
    log_close(ro);
}

START_TEST(test_inject_pwrite)
{
    const char *dir = newdir("inject");
    struct log *lg = lt_open(dir, 0);
    lt_append_n(lg, 1, 3, 20);
    uint64_t size = lt_data_size(lt_seg(dir, 1)), pos = 4;
    char buf[1024];
    struct log_event ev;
    lt_event(pos, 20, buf, &ev);
    const int errs[] = { ENOSPC, EIO };
    for (int k = 0; k < 2; k++) {
        for (int shortw = 0; shortw < 2; shortw++) {
            inject_errno = errs[k];
            inject_short = shortw ? 17 : 0;
            inject_after = 0;
            log_io.pwrite = bad_pwrite;
            uint64_t got = 0;
            ck_assert_int_eq(log_append(lg, &ev, &got), -errs[k]);
            log_io_reset();
            ck_assert_uint_eq(log_head(lg), pos - 1);
            ck_assert_uint_eq(file_size(lt_seg(dir, 1)), size); /* no garbage, no zeros left */
        }
    }
    /* A short write followed by a successful one is just a slower write. */
    inject_errno = 0;
    inject_short = 9;
    log_io.pwrite = bad_pwrite;
    lt_append_n(lg, pos, 1, 20);
    log_io_reset();
    lt_append_n(lg, pos + 1, 1, 20);
    log_close(lg);
    expect_clean(dir, pos + 1);
}
END_TEST

/* Writing the zeros ahead may fail (a full disk): the append still succeeds, the zeros
 * written are given back, and the next append tries again. */
START_TEST(test_inject_zeros_ahead)
{
    const char *dir = newdir("injzero");
    struct log *lg = lt_open(dir, 0);
    const int errs[] = { ENOSPC, EIO };
    uint64_t pos = 1;
    for (int k = 0; k < 2; k++) {
        for (int shortw = 0; shortw < 2; shortw++, pos++) {
            /* A cut at the last record makes the next append write zeros again. */
            log_close(lg);
            lg = lt_open(dir, 0);
            inject_errno = errs[k];
            inject_short = shortw ? 4096 : 0;
            inject_after = 1; /* the record's write */
            log_io.pwrite = bad_pwrite;
            lt_append_n(lg, pos, 1, 20);
            log_io_reset();
            ck_assert_uint_eq(file_size(lt_seg(dir, 1)), lt_data_size(lt_seg(dir, 1)));
        }
    }
    lt_append_n(lg, pos, 1, 20);
    ck_assert_uint_gt(file_size(lt_seg(dir, 1)), lt_data_size(lt_seg(dir, 1)));
    log_close(lg);
    expect_clean(dir, pos);
}
END_TEST

START_TEST(test_inject_roll_failures)
{
    const char *dir = newdir("injroll");
    struct log *lg = lt_open(dir, 512);
    lt_append_n(lg, 1, 5, 20); /* fills segment 1 past nothing yet */
    /* Make the next append roll: fill until a new segment appears. */
    uint64_t pos = 6;
    while (lt_count_segments(dir) == 1)
        lt_append_n(lg, pos++, 1, 20);
    uint64_t nseg = lt_count_segments(dir);
    while (lt_count_segments(dir) == nseg) {
        /* Before each append, try it with a failing create and a failing write in the
         * new segment: whichever path the append takes, nothing may be published. */
        char buf[1024];
        struct log_event ev;
        lt_event(pos, 20, buf, &ev);
        log_io.open = bad_open_create;
        int err = log_append(lg, &ev, NULL);
        log_io_reset();
        if (err == 0) { /* no roll needed: it was a plain append */
            pos++;
            continue;
        }
        ck_assert_int_eq(err, -ENOSPC);
        ck_assert_uint_eq(log_head(lg), pos - 1);
        ck_assert_uint_eq(lt_count_segments(dir), nseg);
        inject_errno = ENOSPC, inject_short = 0, inject_after = 0;
        log_io.pwrite = bad_pwrite;
        ck_assert_int_eq(log_append(lg, &ev, NULL), -ENOSPC);
        log_io_reset();
        ck_assert_uint_eq(lt_count_segments(dir), nseg); /* the new segment was removed */
        lt_append_n(lg, pos++, 1, 20);
    }
    log_close(lg);
    expect_clean(dir, pos - 1);
}
END_TEST

START_TEST(test_inject_cut_back_failure)
{
    const char *dir = newdir("injcut");
    struct log *lg = lt_open(dir, 0);
    lt_append_n(lg, 1, 3, 20);
    uint64_t size = lt_data_size(lt_seg(dir, 1));
    char buf[1024];
    struct log_event ev;
    lt_event(4, 20, buf, &ev);
    /* Half the record lands, then ENOSPC, and the cut-back fails too: the garbage stays
     * until the next lock holder cuts it. */
    inject_errno = ENOSPC, inject_short = 40, inject_after = 0;
    log_io.pwrite = bad_pwrite;
    log_io.ftruncate = bad_ftruncate;
    ck_assert_int_eq(log_append(lg, &ev, NULL), -ENOSPC);
    log_io_reset();
    ck_assert_uint_eq(lt_data_size(lt_seg(dir, 1)), size + 40);
    ck_assert_uint_eq(log_head(lg), 3);
    lt_append_n(lg, 4, 2, 20);
    log_close(lg);
    expect_clean(dir, 5);
}
END_TEST

/* A failed fdatasync stops the log: the kernel may have dropped the dirty pages, so a later
 * sync that succeeds proves nothing about the records before it. Nothing after the last
 * durable position is acknowledged or appended (in any process) until the log is
 * recovered, and recovery cuts the log after that position: the failed record is gone and
 * the log is usable again. */
/* Appends the event at pos (data_len bytes) with every fdatasync failing with EIO, which
 * must fail the append; log_io is reset after. Returns what the log wrote to stderr. */
static const char *append_with_failing_sync(struct log *lg, uint64_t pos, size_t data_len)
{
    char buf[1024];
    struct log_event ev;
    lt_event(pos, data_len, buf, &ev);
    log_io.fdatasync = bad_fdatasync;
    lt_stderr_begin();
    ck_assert_int_eq(log_append(lg, &ev, NULL), -EIO);
    const char *report = lt_stderr_end();
    log_io_reset();
    return report;
}

START_TEST(test_inject_fdatasync)
{
    const char *dir = newdir("injsync");
    struct log *lg = lt_open(dir, 0);
    lt_append_n(lg, 1, 2, 20);
    const char *report = append_with_failing_sync(lg, 3, 20);
    ck_assert_msg(strstr(report, "fdatasync failed") && strstr(report, "after position 2"), "report: %s", report);
    ck_assert_uint_eq(log_head(lg), 3); /* published, */
    ck_assert_uint_eq(log_durable(lg), 2); /* but not reported durable */
    /* The disk works again; the log still refuses, in this handle and in another one. */
    char buf[1024];
    struct log_event ev;
    uint64_t pos = 0;
    ck_assert_int_eq(log_sync(lg, 3), LOG_ESYNCFAILED);
    ck_assert_msg(strstr(log_last_error(lg), "after position 2"), "error: %s", log_last_error(lg));
    ck_assert_uint_eq(log_durable(lg), 2);
    lt_event(4, 20, buf, &ev);
    ck_assert_int_eq(log_append(lg, &ev, &pos), LOG_ESYNCFAILED);
    struct log *other = lt_open(dir, 0);
    ck_assert_int_eq(log_append_begin(other), LOG_ESYNCFAILED);
    ck_assert_int_eq(log_sync(other, 2), 0); /* durable before the failure: still true */
    log_close(other);
    ck_assert_int_eq(log_sync(lg, 4), LOG_EBADARG); /* never published */
    log_close(lg);

    char marker[4300];
    snprintf(marker, sizeof marker, "%s/sync-failed", dir);
    ck_assert_int_eq(access(marker, F_OK), 0);
    /* Recovery (every handle closed): cut after 2, marker removed, appends work again. */
    lt_stderr_begin();
    lg = lt_open(dir, 0);
    report = lt_stderr_end();
    ck_assert_msg(strstr(report, "recovered from a failed fdatasync"), "report: %s", report);
    ck_assert_int_ne(access(marker, F_OK), 0);
    ck_assert_uint_eq(log_head(lg), 2);
    ck_assert_uint_eq(log_durable(lg), 2);
    lt_append_n(lg, 3, 2, 20);
    log_close(lg);
    expect_clean(dir, 4);
}
END_TEST

/* The sync that seals a segment before the log rolls counts the same. */
START_TEST(test_inject_fdatasync_at_roll)
{
    const char *dir = newdir("injsyncroll");
    struct log *lg = lt_open(dir, 256);
    lt_append_n(lg, 1, 1, 100);
    append_with_failing_sync(lg, 2, 100);
    ck_assert_msg(strstr(log_last_error(lg), "before rolling"), "error: %s", log_last_error(lg));
    char buf[1024];
    struct log_event ev;
    uint64_t pos = 0;
    lt_event(9, 100, buf, &ev);
    ck_assert_int_eq(log_append(lg, &ev, &pos), LOG_ESYNCFAILED);
    uint64_t durable = log_durable(lg);
    ck_assert_uint_eq(durable, 1);
    log_close(lg);
    lt_stderr_begin();
    lg = lt_open(dir, 256);
    lt_stderr_end();
    ck_assert_uint_eq(log_head(lg), durable);
    log_close(lg);
    expect_clean(dir, durable);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("record");
    tcase_add_test(tc, test_crc_vector);
    tcase_add_test(tc, test_decode_every_bit_flip);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_sparse_reader);
    tcase_add_test(tc, test_roll_over);
    tcase_add_test(tc, test_follow_tail);
    tcase_add_test(tc, test_torn_tail_every_offset);
    tcase_add_test(tc, test_zeros_ahead);
    tcase_add_test(tc, test_damage_before_tail);
    tcase_add_test(tc, test_missing_segment);
    tcase_add_test(tc, test_flipped_bit_sealed);
    tcase_add_test(tc, test_ctl_verify_dump);
    suite_add_tcase(s, tc);

    tc = tcase_create("inject");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_inject_pwrite);
    tcase_add_test(tc, test_inject_zeros_ahead);
    tcase_add_test(tc, test_inject_roll_failures);
    tcase_add_test(tc, test_inject_cut_back_failure);
    tcase_add_test(tc, test_inject_fdatasync);
    tcase_add_test(tc, test_inject_fdatasync_at_roll);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
