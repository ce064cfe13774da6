#include <config.h>

#include "log/io.h"
#include "log/log_int.h"
#include "util/durable.h"
#include "util/eflog.h"
#include "util/path.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RO_RETRIES 5 /* read-only scans that see "damage" before believing it */

/* The segment after `first` must start right after its last record; a gap means a
 * segment is missing. A sealed segment that does not end with a whole record is left to
 * log_verify (damage inside sealed segments is the readers' and verify's to report). */
static int check_next(struct log *lg, int fd, uint64_t first, uint64_t next)
{
    uint64_t last;
    int r = log_seg_last(fd, first, &last);
    if (r < 0) {
        char *path = log_seg_path(lg->dir, first);
        log_set_error(lg, "cannot read segment %s: %s", path, strerror(-r));
        free(path);
        return r;
    }
    if (r == 0 || last + 1 == next)
        return 0;
    char *path = log_seg_path(lg->dir, next);
    log_set_error(lg, "segment %s offset 0: starts at position %" PRIu64 ", expected %" PRIu64
                  " (a segment is missing)", path, next, last + 1);
    free(path);
    return LOG_ESEQUENCE;
}

/* A sealed segment must start with a valid record whose position is its name, and its
 * last record must be the one just before the next segment's first. Checking that much is
 * cheap (two reads per segment) and catches a renamed, emptied or swapped file and a
 * segment deleted by hand. Everything else in sealed segments is checked by log_verify(). */
static int check_sealed(struct log *lg, uint64_t first, uint64_t next)
{
    char *path = log_seg_path(lg->dir, first);
    int fd = log_io.open(path, O_RDONLY, 0);
    int err = 0;
    if (fd < 0) {
        err = -errno;
        log_set_error(lg, "cannot open segment %s: %s", path, strerror(errno));
        goto fail;
    }
    struct log_segbuf sb;
    log_segbuf_init(&sb);
    struct log_record rec;
    int st = log_segbuf_decode(&sb, fd, 0, 0, &rec);
    log_segbuf_free(&sb);
    if (st < 0) {
        err = st;
        log_set_error(lg, "cannot read segment %s: %s", path, strerror(-st));
    } else if (st == RECORD_VERSION) {
        err = LOG_EVERSION;
        log_set_error(lg, "segment %s offset 0: record format newer than this build", path);
    } else if (st != RECORD_OK || rec.position != first) {
        err = LOG_ECORRUPT;
        log_set_error(lg, "segment %s offset 0: %s", path,
                      st == RECORD_OK ? "first record does not match the segment name" : "sealed segment does not start with a valid record");
    } else {
        err = check_next(lg, fd, first, next);
    }
fail:
    if (fd >= 0)
        log_io.close(fd);
    free(path);
    return err;
}

/* Decides what the bytes after the last whole record of the newest segment are: zeros
 * written ahead or a torn tail (nothing valid after them: cut when `cut`, so that a
 * recovered segment ends with its last record), or damage (LOG_ECORRUPT). */
static int settle_tail(struct log *lg, int fd, const char *path, const struct log_seg_scan *sc, int cut)
{
    if (sc->stop == RECORD_VERSION) {
        log_set_error(lg, "segment %s offset %" PRIu64 ": record format newer than this build", path, sc->end);
        return LOG_EVERSION;
    }
    if (sc->sequence_error) {
        log_set_error(lg, "segment %s offset %" PRIu64 ": record out of sequence (expected position %" PRIu64 ")",
                      path, sc->end, sc->last_pos + 1);
        return LOG_ECORRUPT;
    }
    if (sc->end == sc->size)
        return 0;
    uint64_t at;
    int r = log_seg_judge_tail(fd, sc->end, sc->size, &at);
    if (r < 0) {
        log_set_error(lg, "cannot read segment %s: %s", path, strerror(-r));
        return r;
    }
    if (r == LOG_TAIL_DAMAGE) {
        log_set_error(lg, "segment %s offset %" PRIu64 ": unverifiable record followed by a valid one at offset %" PRIu64,
                      path, sc->end, at);
        return LOG_ECORRUPT;
    }
    if (!cut)
        return 0;
    if (log_io.ftruncate(fd, (off_t)sc->end) < 0) {
        int err = -errno;
        log_set_error(lg, "cannot truncate segment %s: %s", path, strerror(errno));
        return err;
    }
    if (r == LOG_TAIL_ZEROS)
        EFLOG_DEBUG("log: zeros after the last record trimmed segment=%s offset=%" PRIu64 " bytes=%" PRIu64,
                    path, sc->end, sc->size - sc->end);
    else
        EFLOG_WARN("log: torn tail truncated segment=%s offset=%" PRIu64 " bytes=%" PRIu64, path, sc->end,
                   sc->size - sc->end);
    return 0;
}

/* Creates the first segment of an empty log. */
static int create_first(struct log *lg)
{
    char *path = log_seg_path(lg->dir, 1);
    int fd = log_io.open(path, O_RDWR | O_CREAT, 0644);
    int err = 0;
    if (fd < 0 || log_io.fsync(fd) < 0)
        err = -errno;
    if (fd >= 0)
        log_io.close(fd);
    if (!err)
        err = log_sync_dir(lg->dir);
    if (err)
        log_set_error(lg, "cannot create segment %s: %s", path, strerror(-err));
    free(path);
    return err;
}

/* Scans the newest segment and judges what follows its last whole record (settle_tail),
 * cutting a torn tail when repairing. A read-only open judges the same way, so that it
 * never takes damage for a torn tail (and then serves a head its readers cannot reach),
 * but it may race a writer: a record being written can look unverifiable and then
 * whole, which would read as "damage followed by a valid record". That verdict is
 * therefore retried a few times before it stands; real damage stays. */
static int scan_newest(struct log *lg, int fd, uint64_t newest, const char *path, int repair,
                       struct log_seg_scan *sc)
{
    for (int tries = 0;; tries++) {
        int err = log_seg_scan(fd, newest, UINT64_MAX, sc);
        if (err) {
            log_set_error(lg, "cannot read segment %s: %s", path, strerror(-err));
            return err;
        }
        err = settle_tail(lg, fd, path, sc, repair);
        int racy = err == LOG_ECORRUPT && !sc->sequence_error && sc->stop != RECORD_VERSION;
        if (!racy || repair || tries >= RO_RETRIES)
            return err;
        nanosleep(&(struct timespec){ 0, 2 * 1000 * 1000 }, NULL);
    }
}

/* Shared by the read-write recovery and the read-only head scan: finds the head from the
 * files; with `repair`, creates the first segment of an empty log and cuts a torn tail. */
static int find_head(struct log *lg, int repair, uint64_t *pos, uint64_t *seg, uint64_t *off)
{
    uint64_t *segs = NULL;
    size_t n = 0;
    int err = log_seg_list(lg->dir, &segs, &n);
    if (err) {
        log_set_error(lg, "cannot list %s: %s", lg->dir, strerror(-err));
        return err;
    }
    int fd = -1;
    char *path = NULL;
    if (n == 0) {
        *pos = 0, *seg = 1, *off = 0;
        err = repair ? create_first(lg) : 0;
        goto fail;
    }
    if (repair && segs[0] != 1) {
        path = log_seg_path(lg->dir, segs[0]);
        log_set_error(lg, "segment %s offset 0: the log starts at position %" PRIu64
                      ", expected 1 (a segment is missing)", path, segs[0]);
        err = LOG_ESEQUENCE;
        goto fail;
    }
    for (size_t i = 0; i + 1 < n && repair; i++)
        if ((err = check_sealed(lg, segs[i], segs[i + 1])) != 0)
            goto fail;
    uint64_t newest = segs[n - 1];
    path = log_seg_path(lg->dir, newest);
    fd = log_io.open(path, repair ? O_RDWR : O_RDONLY, 0);
    if (fd < 0) {
        err = -errno;
        log_set_error(lg, "cannot open segment %s: %s", path, strerror(errno));
        goto fail;
    }
    struct log_seg_scan sc;
    err = scan_newest(lg, fd, newest, path, repair, &sc);
    if ((err == LOG_ECORRUPT || err == LOG_EVERSION) && !repair && lg->salvage) {
        /* The records before the damage are whole and in sequence (log_seg_scan stops
         * at the first that is not): the log ends at the last of them. */
        snprintf(lg->damage, sizeof lg->damage, "%s", lg->err);
        err = 0;
    }
    if (err)
        goto fail;
    /* The previous run may have died with published but unsynced records in the page
     * cache: make them durable before the control block says they are. */
    if (repair && log_io.fdatasync(fd) < 0) {
        err = -errno;
        log_set_error(lg, "cannot sync segment %s: %s", path, strerror(errno));
        goto fail;
    }
    *pos = sc.last_pos, *seg = newest, *off = sc.end;
fail:
    if (fd >= 0)
        log_io.close(fd);
    free(path);
    free(segs);
    return err;
}

/* A failed fdatasync stopped the log and left DIR/sync-failed naming the last durable
 * position (log.h): nothing after it was acknowledged, and what is on disk after it may be
 * missing pages, so the log is cut right after it before anything else looks at the files. */
static int cut_after_sync_failure(struct log *lg)
{
    char path[4200], text[32];
    if (ef_path_join(path, sizeof path, lg->dir, LOG_SYNC_FAILED_FILE))
        return -ENAMETOOLONG;
    int got = ef_read_small(lg->dir, LOG_SYNC_FAILED_FILE, text, sizeof text);
    if (got == -ENOENT)
        return 0;
    if (got < 0) {
        log_set_error(lg, "cannot read %s: %s", path, strerror(-got));
        return got;
    }
    char *end;
    errno = 0;
    unsigned long long d = strtoull(text, &end, 10);
    if (errno || end == text || (*end != '\n' && *end != '\0')) {
        log_set_error(lg, "%s: not a log position: the file names the last durable position after a "
                      "failed fdatasync", path);
        return LOG_ECORRUPT;
    }
    struct log_cut cut;
    int err = log_cut_after(lg, d, 1, "records never acknowledged (an fdatasync had failed)", &cut);
    if (err) {
        char why[LOG_ERR_LEN];
        snprintf(why, sizeof why, "%s", lg->err);
        log_set_error(lg, "cannot cut the log after position %llu, the last durable one before an "
                      "fdatasync failed (%s): %s", d, path, why);
        return err;
    }
    if (unlink(path) < 0) {
        err = -errno;
        log_set_error(lg, "cannot remove %s: %s", path, strerror(errno));
        return err;
    }
    EFLOG_WARN("log: recovered from a failed fdatasync: cut after position=%llu bytes=%" PRIu64
             " segments_removed=%d", d, cut.bytes, cut.removed);
    return log_sync_dir(lg->dir);
}

int log_recover(struct log *lg, uint64_t *head_pos, uint64_t *head_seg, uint64_t *head_off)
{
    int err = cut_after_sync_failure(lg);
    return err ? err : find_head(lg, 1, head_pos, head_seg, head_off);
}

int log_scan_head(struct log *lg, uint64_t *head_pos, uint64_t *head_seg, uint64_t *head_off)
{
    return find_head(lg, 0, head_pos, head_seg, head_off);
}
