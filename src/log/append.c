#include <config.h>

#include "log/io.h"
#include "log/log_int.h"
#include "util/eflog.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Appending. Everything here runs under the append mutex of the control block, which
 * makes the holder the only writer of the head fields and of the files' tails. */

static int is_holder(struct log *lg)
{
    pthread_t h = atomic_load_explicit(&lg->holder, memory_order_relaxed);
    return h != 0 && pthread_equal(h, pthread_self());
}

/* Segment holding position pos (the newest segment named <= pos; the oldest when pos is 0). */
static uint64_t segment_of(const uint64_t *segs, size_t n, uint64_t pos)
{
    uint64_t s = segs[0];
    for (size_t i = 0; i < n && segs[i] <= pos; i++)
        s = segs[i];
    return s;
}

/* Unlinks segments after `keep` (they hold nothing published). Returns how many, or -errno. */
static int unlink_after(struct log *lg, const uint64_t *segs, size_t n, uint64_t keep)
{
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        if (segs[i] <= keep)
            continue;
        char *path = log_seg_path(lg->dir, segs[i]);
        int r = log_io.unlink(path);
        int e = errno;
        free(path);
        if (r < 0 && e != ENOENT)
            return -e;
        count++;
    }
    if (count > 0) {
        int err = log_sync_dir(lg->dir);
        if (err)
            return err;
    }
    return count;
}

int log_cut_after(struct log *lg, uint64_t pos, int sync, const char *what, struct log_cut *out)
{
    uint64_t *segs = NULL;
    size_t n = 0;
    int fd = -1, err = log_seg_list(lg->dir, &segs, &n);
    char *path = NULL;
    if (err == 0 && n == 0)
        err = LOG_ESEQUENCE;
    if (err) {
        log_set_error(lg, "cannot list segments of %s: %s", lg->dir, log_strerror(err));
        goto fail;
    }
    uint64_t seg = segment_of(segs, n, pos);
    path = log_seg_path(lg->dir, seg);
    struct log_seg_scan sc;
    if ((fd = log_io.open(path, O_RDWR, 0)) < 0 || (err = log_seg_scan(fd, seg, pos, &sc)) != 0) {
        err = err ? err : -errno;
        log_set_error(lg, "cannot read segment %s: %s", path, strerror(-err));
        goto fail;
    }
    if (sc.last_pos != pos) {
        err = LOG_ECORRUPT;
        log_set_error(lg, "segment %s offset %" PRIu64 ": position %" PRIu64 " not found", path, sc.end, pos);
        goto fail;
    }
    uint64_t written = sc.end;
    if (sc.size > sc.end && (err = log_seg_written_end(fd, sc.end, sc.size, &written)) != 0) {
        log_set_error(lg, "cannot read segment %s: %s", path, strerror(-err));
        goto fail;
    }
    if (sc.size > sc.end && log_io.ftruncate(fd, (off_t)sc.end) < 0) {
        err = -errno;
        log_set_error(lg, "cannot truncate segment %s: %s", path, strerror(errno));
        goto fail;
    }
    if (sync && sc.size > sc.end && log_io.fdatasync(fd) < 0) {
        err = -errno;
        log_set_error(lg, "cannot sync segment %s: %s", path, strerror(errno));
        goto fail;
    }
    int removed = unlink_after(lg, segs, n, seg);
    if (removed < 0) {
        err = removed;
        log_set_error(lg, "cannot remove segments after position %" PRIu64 " of %s: %s", pos, lg->dir,
                      strerror(-err));
        goto fail;
    }
    *out = (struct log_cut){ .seg = seg, .end = sc.end, .bytes = written - sc.end, .removed = removed };
    /* Zeros alone (written ahead of the head) are not worth a warning. */
    if (written > sc.end || removed > 0)
        EFLOG_WARN("log: cut %s after position=%" PRIu64 " segment=%s offset=%" PRIu64 " bytes=%" PRIu64
                   " zero_bytes=%" PRIu64 " segments_removed=%d", what, pos, path, sc.end, written - sc.end,
                   sc.size - written, removed);
fail:
    if (fd >= 0)
        log_io.close(fd);
    free(path);
    free(segs);
    return err;
}

/* Records what zero_ahead() may rely on (log_int.h, zero_seg/zero_end). */
static void set_zero_end(struct log_control *c, uint64_t seg, uint64_t end)
{
    atomic_store_explicit(&c->zero_seg, seg, memory_order_relaxed);
    atomic_store_explicit(&c->zero_end, end, memory_order_relaxed);
}

/* Cuts what follows the published head record. The published head position is the only
 * thing trusted: a dead holder may have stored head_seg/head_off without head_pos, so both
 * are recomputed from the files. */
int log_repair_tail(struct log *lg)
{
    struct log_control *c = lg->ctl;
    struct log_cut cut;
    int err = log_cut_after(lg, atomic_load(&c->head_pos), 0, "unpublished tail", &cut);
    if (err)
        return err;
    atomic_store_explicit(&c->head_off, cut.end, memory_order_release);
    atomic_store_explicit(&c->head_seg, cut.seg, memory_order_release);
    set_zero_end(c, cut.seg, cut.end);
    atomic_fetch_add_explicit(&c->repair_gen, 1, memory_order_acq_rel);
    atomic_store(&c->tail_dirty, 0);
    return 0;
}

int log_append_begin(struct log *lg)
{
    if (!lg->ctl)
        return LOG_EREADONLY;
    struct log_control *c = lg->ctl;
    int r = pthread_mutex_lock(&c->append_mu);
    if (r == EOWNERDEAD) {
        /* The holder died somewhere between writing and publishing: its bytes after the
         * head are garbage. Mark them before making the mutex usable again, so that even if
         * the cut fails below, the next holder retries it. */
        atomic_store(&c->tail_dirty, 1);
        EFLOG_WARN("log: previous append lock holder died, repairing tail dir=%s", lg->dir);
        r = pthread_mutex_consistent(&c->append_mu);
    }
    if (r == EDEADLK)
        return LOG_ELOCKED;
    if (r != 0) {
        log_set_error(lg, "append lock: %s", strerror(r));
        return -r;
    }
    atomic_store_explicit(&lg->holder, pthread_self(), memory_order_relaxed);
    if (atomic_load(&c->sync_failed)) {
        log_append_end(lg);
        return log_refuse_after_sync_failure(lg);
    }
    if (atomic_load(&c->tail_dirty)) {
        int err = log_repair_tail(lg);
        if (err) {
            log_append_end(lg);
            return err;
        }
    }
    return 0;
}

void log_append_end(struct log *lg)
{
    if (!lg->ctl || !is_holder(lg))
        return;
    atomic_store_explicit(&lg->holder, 0, memory_order_relaxed);
    pthread_mutex_unlock(&lg->ctl->append_mu);
}

static int write_all(int fd, const unsigned char *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t r = log_io.pwrite(fd, p, n, (off_t)off);
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EIO;
        p += r, n -= (size_t)r, off += (uint64_t)r;
    }
    return 0;
}

/* Zeros written ahead of the head.
 *
 * Why: an fdatasync after a write that grew the file must also commit the file's new size
 * (on ext4 a journal commit: about 20 us more CPU per sync on this project's machines, and
 * a slower sync), while one after overwriting blocks that were already written is a data
 * flush alone. So when a record runs past the zeros, the append-lock holder writes zeros
 * from its end up to the MiB boundary at least ZERO_AHEAD / 2 beyond it (0.5 to 1.5 MiB),
 * and the next records overwrite them: one sync per MiB of records commits a new size.
 * PostgreSQL (wal_init_zero) and etcd do the same.
 *
 * What that changes for the files: the newest segment may end in zeros after its last
 * record. Readers never read past the published head; a zero magic reads as
 * RECORD_ZERO, the end of the data; recovery cuts the zeros (without the torn-tail
 * warning: every byte must be zero) and verify does not report them. A roll trims the
 * segment it seals to its last record first, so sealed segments end with a whole record,
 * as before.
 *
 * Failing to write the zeros is not an error: the record was written already, the zeros
 * are given back (best effort) and the next sync commits a new size, as without them.
 * Not done on copy-on-write filesystems (log.c, zero_ahead_pays), where overwriting the
 * zeros costs what appending does. */
#define ZERO_AHEAD ((uint64_t)1 << 20)
#define ZERO_BUF (64u << 10)

static void zero_ahead(struct log *lg, uint64_t seg, uint64_t end)
{
    static const unsigned char zeros[ZERO_BUF];
    if (!lg->zero_ahead)
        return;
    struct log_control *c = lg->ctl;
    uint64_t have = atomic_load_explicit(&c->zero_seg, memory_order_relaxed) == seg
                        ? atomic_load_explicit(&c->zero_end, memory_order_relaxed)
                        : 0;
    if (have >= end)
        return;
    uint64_t to = (end + ZERO_AHEAD / 2 + ZERO_AHEAD - 1) & ~(ZERO_AHEAD - 1);
    if (to > lg->segment_bytes)
        to = lg->segment_bytes; /* the segment rolls there: nothing to write ahead of */
    uint64_t at = end;
    while (at < to) {
        size_t n = to - at < ZERO_BUF ? (size_t)(to - at) : ZERO_BUF;
        ssize_t r = log_io.pwrite(lg->app.fd, zeros, n, (off_t)at);
        if (r <= 0)
            break;
        at += (uint64_t)r;
    }
    /* A failed write gives back what it wrote (a full disk wants the space for records);
     * if that cut fails too, the zeros written stay, and zero_end says how far they go. */
    if (at < to && at > end && log_io.ftruncate(lg->app.fd, (off_t)end) == 0)
        at = end;
    set_zero_end(c, seg, at);
}

void log_trim_zeros(struct log *lg)
{
    if (log_append_begin(lg) != 0)
        return; /* a failed sync stopped the log: the next recovery cuts them */
    struct log_control *c = lg->ctl;
    uint64_t seg = atomic_load(&c->head_seg), off = atomic_load(&c->head_off);
    struct stat st;
    if (log_segfd_get(lg, &lg->app, seg, O_RDWR) == 0 && fstat(lg->app.fd, &st) == 0 &&
        (uint64_t)st.st_size > off) {
        if (log_io.ftruncate(lg->app.fd, (off_t)off) == 0)
            set_zero_end(c, seg, off);
        else /* harmless: the next recovery cuts them */
            EFLOG_WARN("log: cannot cut the zeros after the last record segment=%" PRIu64 " offset=%" PRIu64
                       " err=%s", seg, off, strerror(errno));
    }
    log_append_end(lg);
}

/* Seals the current segment (trimmed to its last record at off, then fdatasync) and
 * creates the one starting at pos. On success lg->app is the new segment's descriptor. */
static int roll(struct log *lg, uint64_t pos, uint64_t off)
{
    /* A sealed segment ends with its last record (recovery finds it from the end). The
     * size change is committed by the fdatasync below (as any size change is). */
    if (log_io.ftruncate(lg->app.fd, (off_t)off) < 0) {
        int err = -errno;
        log_set_error(lg, "cannot trim segment %" PRIu64 " before rolling: %s", lg->app.seg, strerror(errno));
        return err;
    }
    set_zero_end(lg->ctl, lg->app.seg, off);
    if (log_io.fdatasync(lg->app.fd) < 0) {
        int err = -errno;
        log_set_error(lg, "cannot sync segment %" PRIu64 " before rolling: %s", lg->app.seg, strerror(errno));
        log_sync_failed(lg, err);
        return err;
    }
    char *path = log_seg_path(lg->dir, pos);
    int fd = log_io.open(path, O_RDWR | O_CREAT | O_EXCL, 0644), err = 0;
    if (fd < 0) {
        err = -errno;
        log_set_error(lg, "cannot create segment %s: %s", path, strerror(errno));
    } else if ((err = log_sync_dir(lg->dir)) != 0) {
        log_set_error(lg, "cannot sync directory %s: %s", lg->dir, strerror(-err));
        log_io.close(fd);
        if (log_io.unlink(path) < 0)
            atomic_store(&lg->ctl->tail_dirty, 1);
    } else {
        log_segfd_close(&lg->app);
        lg->app.fd = fd;
        lg->app.seg = pos;
        lg->app.gen = atomic_load(&lg->ctl->repair_gen);
        set_zero_end(lg->ctl, pos, 0);
    }
    free(path);
    return err;
}

/* Undoes a failed write: cuts the segment back to off, and removes it if this append had
 * just created it. A failure here leaves tail_dirty set for the next holder. */
static void cut_back(struct log *lg, uint64_t off, int rolled)
{
    if (rolled) {
        char *path = log_seg_path(lg->dir, lg->app.seg);
        log_segfd_close(&lg->app);
        if (log_io.unlink(path) < 0 || log_sync_dir(lg->dir) != 0)
            atomic_store(&lg->ctl->tail_dirty, 1);
        free(path);
        return;
    }
    if (log_io.ftruncate(lg->app.fd, (off_t)off) == 0) {
        set_zero_end(lg->ctl, lg->app.seg, off);
    } else {
        EFLOG_ERROR("log: cannot cut back failed append segment=%" PRIu64 " offset=%" PRIu64 " err=%s",
                  lg->app.seg, off, strerror(errno));
        atomic_store(&lg->ctl->tail_dirty, 1);
    }
}

static int check_event(const struct log_event *ev, size_t *size)
{
    if (ev->stream_len == 0 || ev->stream_len > LOG_STREAM_MAX || ev->type_len == 0 ||
        ev->type_len > LOG_TYPE_MAX || !ev->stream || !ev->type || (ev->meta_len && !ev->meta) ||
        (ev->data_len && !ev->data))
        return LOG_EBADARG;
    *size = record_encoded_size(ev);
    return *size ? 0 : LOG_ETOOBIG;
}

int log_append_record(struct log *lg, const struct log_event *ev, uint64_t *position)
{
    if (!lg->ctl)
        return LOG_EREADONLY;
    if (!is_holder(lg))
        return LOG_ELOCKED;
    size_t size;
    int err = check_event(ev, &size);
    if (err)
        return err;
    struct log_control *c = lg->ctl;
    uint64_t pos = atomic_load(&c->head_pos) + 1, seg = atomic_load(&c->head_seg);
    uint64_t off = atomic_load(&c->head_off);
    if ((err = log_segfd_get(lg, &lg->app, seg, O_RDWR)) != 0)
        return err;
    int rolled = 0;
    if (off > 0 && off + size > lg->segment_bytes) {
        if ((err = roll(lg, pos, off)) != 0)
            return err;
        seg = pos, off = 0, rolled = 1;
    }
    if (lg->enc_cap < size) {
        free(lg->enc);
        lg->enc = xmalloc(size);
        lg->enc_cap = size;
    }
    record_encode(ev, pos, lg->enc);
    if ((err = write_all(lg->app.fd, lg->enc, size, off)) != 0) {
        log_set_error(lg, "cannot append to segment %" PRIu64 " at offset %" PRIu64 ": %s", seg, off, strerror(-err));
        cut_back(lg, off, rolled);
        return err;
    }
    zero_ahead(lg, seg, off + size);
    /* Publish: off and seg first, the position last (the commit point, see log_int.h). */
    atomic_store_explicit(&c->head_off, off + size, memory_order_release);
    atomic_store_explicit(&c->head_seg, seg, memory_order_release);
    atomic_store_explicit(&c->head_pos, pos, memory_order_release);
    if (position)
        *position = pos;
    return 0;
}

int log_append(struct log *lg, const struct log_event *ev, uint64_t *position)
{
    uint64_t pos;
    int err = log_append_begin(lg);
    if (err)
        return err;
    err = log_append_record(lg, ev, &pos);
    log_append_end(lg);
    if (err == 0)
        err = log_sync(lg, pos);
    if (err == 0 && position)
        *position = pos;
    return err;
}
