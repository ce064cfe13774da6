#include <config.h>

#include "log/io.h"
#include "log/log_int.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* A reader walks (segment, offset) forward. Invariant: off is the offset of a record
 * boundary in segment seg, and next_pos is the position the record there must have
 * (0 right after log_reader_seek, when it is not known yet). */
struct log_reader {
    struct log *lg;
    uint64_t from;
    uint64_t next_pos;
    uint64_t seg;
    uint64_t off;
    int fd; /* -1 until the segment is opened */
    struct log_segbuf sb;
};

static void reader_set_segment(struct log_reader *rd, uint64_t seg, uint64_t off)
{
    if (rd->fd >= 0 && rd->seg != seg) {
        log_io.close(rd->fd);
        rd->fd = -1;
    }
    rd->seg = seg;
    rd->off = off;
    log_segbuf_drop(&rd->sb);
}

/* Newest segment named <= pos (binary search); the oldest when all are newer. */
static uint64_t find_segment(const uint64_t *segs, size_t n, uint64_t pos)
{
    size_t lo = 0, hi = n; /* answer in [lo, hi) is the last index with segs[i] <= pos */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (segs[mid] <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return segs[lo];
}

int log_reader_open(struct log *lg, uint64_t from, struct log_reader **out)
{
    uint64_t *segs = NULL;
    size_t n = 0;
    int err = log_seg_list(lg->dir, &segs, &n);
    if (err) {
        log_set_error(lg, "cannot list %s: %s", lg->dir, strerror(-err));
        return err;
    }
    struct log_reader *rd = xcalloc(1, sizeof *rd);
    rd->lg = lg;
    rd->fd = -1;
    log_segbuf_init(&rd->sb);
    rd->from = from ? from : 1;
    rd->seg = n ? find_segment(segs, n, rd->from) : 1;
    rd->next_pos = rd->seg;
    free(segs);
    *out = rd;
    return 0;
}

void log_reader_close(struct log_reader *rd)
{
    if (!rd)
        return;
    if (rd->fd >= 0)
        log_io.close(rd->fd);
    log_segbuf_free(&rd->sb);
    free(rd);
}

int log_reader_seek(struct log_reader *rd, uint64_t segment, uint64_t offset)
{
    if (segment == 0 || offset % 8 != 0)
        return LOG_EBADARG;
    reader_set_segment(rd, segment, offset);
    rd->next_pos = 0;
    rd->from = 0;
    return 0;
}

void log_reader_sparse(struct log_reader *rd) { rd->sb.sparse = 1; }

/* Opens rd->seg if needed: 1 when open, 0 when the segment does not exist. */
static int reader_open_fd(struct log_reader *rd)
{
    if (rd->fd >= 0)
        return 1;
    char *path = log_seg_path(rd->lg->dir, rd->seg);
    rd->fd = log_io.open(path, O_RDONLY, 0);
    int err = rd->fd < 0 ? errno : 0;
    if (err && err != ENOENT)
        log_set_error(rd->lg, "cannot open segment %s: %s", path, strerror(err));
    free(path);
    if (err)
        return err == ENOENT ? 0 : -err;
    return 1;
}

/* Is there a segment starting at pos (the current one has ended)? 1, 0 or -errno. */
static int next_segment_exists(struct log_reader *rd, uint64_t pos)
{
    uint64_t *segs = NULL;
    size_t n = 0;
    int err = log_seg_list(rd->lg->dir, &segs, &n);
    if (err)
        return err;
    int found = 0;
    for (size_t i = 0; i < n && !found; i++)
        found = segs[i] == pos;
    free(segs);
    return found;
}

static int reader_fail(struct log_reader *rd, int err, const char *what)
{
    char *path = log_seg_path(rd->lg->dir, rd->seg);
    log_set_error(rd->lg, "segment %s offset %" PRIu64 ": %s (position %" PRIu64 ")", path, rd->off, what, rd->next_pos);
    free(path);
    return err;
}

/* The record at (seg, off) is needed (its position is within the limit) but is not a valid
 * record: it is either the start of the next segment or damage. Returns 1 after moving to
 * the next segment, or a negative code. */
static int reader_cross(struct log_reader *rd, int st, int open)
{
    if (rd->next_pos != 0 && (!open || st == RECORD_ZERO || (st == RECORD_SHORT && rd->sb.len == 0))) {
        int r = next_segment_exists(rd, rd->next_pos);
        if (r < 0)
            return reader_fail(rd, r, "cannot list segments");
        if (r > 0 && rd->next_pos != rd->seg) {
            reader_set_segment(rd, rd->next_pos, 0);
            return 1;
        }
    }
    if (!open)
        return reader_fail(rd, LOG_ESEQUENCE, "segment missing");
    if (st == RECORD_VERSION)
        return reader_fail(rd, LOG_EVERSION, "record format newer than this build");
    return reader_fail(rd, LOG_ECORRUPT, st == RECORD_SHORT ? "record truncated" : "checksum or framing error");
}

/* Where the records of rd's segment end, when it is the newest one and the handle knows
 * its head; else 0 (no limit). A hint for segbuf reads (log_int.h, log_segbuf.end). */
static uint64_t reader_data_end(const struct log_reader *rd)
{
    uint64_t seg, off;
    return log_head_end(rd->lg, &seg, &off) && seg == rd->seg ? off : 0;
}

int log_reader_next(struct log_reader *rd, uint64_t limit, struct log_record *rec)
{
    for (;;) {
        /* Caught up: the record at off is past the limit, whatever it is (no read). */
        if (rd->next_pos != 0 && rd->next_pos > limit)
            return 0;
        int open = reader_open_fd(rd), st = RECORD_SHORT;
        if (open < 0)
            return open;
        if (open) {
            rd->sb.end = reader_data_end(rd);
            st = log_segbuf_decode(&rd->sb, rd->fd, rd->off, 0, rec);
            /* The buffer may hold bytes read while a writer was still writing them. */
            if (st > RECORD_OK)
                st = log_segbuf_decode(&rd->sb, rd->fd, rd->off, 1, rec);
            /* A needed record that the hint kept out (it was stale): read without it. */
            if (st > RECORD_OK && rd->sb.end != 0 && (rd->next_pos == 0 || rd->next_pos <= limit)) {
                rd->sb.end = 0;
                st = log_segbuf_decode(&rd->sb, rd->fd, rd->off, 1, rec);
            }
            if (st < 0)
                return reader_fail(rd, st, strerror(-st));
        }
        if (st == RECORD_OK) {
            if (rd->next_pos != 0 && rec->position != rd->next_pos)
                return reader_fail(rd, LOG_ESEQUENCE, "record out of sequence");
            if (rec->position > limit)
                return 0;
            rec->segment = rd->seg;
            rec->offset = rd->off;
            rd->off += rec->length;
            rd->next_pos = rec->position + 1;
            if (rec->position < rd->from)
                continue;
            return 1;
        }
        /* Not (yet) a record. Beyond the limit that is the tail still being written. */
        if (rd->next_pos > limit)
            return 0;
        int r = reader_cross(rd, st, open);
        if (r < 0)
            return r;
    }
}
