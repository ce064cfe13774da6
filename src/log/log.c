#include <config.h>

#include "log/io.h"
#include "log/log_int.h"
#include "util/ef_error.h"
#include "util/fskind.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The description of the last failed log_open() of this thread. */
static _Thread_local char open_error[LOG_ERR_LEN];

void log_set_error(struct log *lg, const char *fmt, ...)
{
    char *buf = lg ? lg->err : open_error;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, LOG_ERR_LEN, fmt, ap);
    va_end(ap);
}

const char *log_last_error(const struct log *lg) { return lg ? lg->err : open_error; }

const char *log_strerror(int err)
{
    switch (err) {
    case LOG_ECORRUPT: return "log record failed its checksum or framing";
    case LOG_EVERSION: return "log file of an unknown or newer format";
    case LOG_ETOOBIG: return "log record too large";
    case LOG_ESEQUENCE: return "log positions not dense or a segment is missing";
    case LOG_EREADONLY: return "log opened read-only";
    case LOG_EBADARG: return "invalid argument";
    case LOG_ELOCKED: return "log append lock not held, or already held";
    case LOG_ESYNCFAILED: return "an earlier fdatasync of the log failed: restart to recover";
    default: return ef_strerror_except(EF_ERR_LOG, err);
    }
}

static int ensure_dir(struct log *lg)
{
    struct stat st;
    if (stat(lg->dir, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
    if (errno != ENOENT || lg->read_only)
        return -errno;
    return mkdir(lg->dir, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* On a copy-on-write filesystem an overwrite of the zeros needs new blocks and a metadata
 * commit as much as an append does: writing them first would only double the writes. When
 * the filesystem cannot be told, they are written. */
static int zero_ahead_pays(const struct log *lg)
{
    int fd = open(lg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    int cow = ef_fs_copies_on_write(fd);
    close(fd);
    return cow != 1;
}

int log_open(const char *dir, const struct log_options *opt, struct log **out)
{
    struct log *lg = xcalloc(1, sizeof *lg);
    lg->dir = xstrdup(dir);
    lg->read_only = opt && (opt->read_only || opt->follow);
    lg->salvage = lg->read_only && opt->salvage;
    lg->segment_bytes = opt && opt->segment_bytes ? opt->segment_bytes : LOG_DEFAULT_SEGMENT_BYTES;
    lg->users_fd = -1;
    lg->app.fd = -1;
    lg->syn.fd = -1;
    int err = ensure_dir(lg);
    if (err == -ENOENT && opt && opt->follow)
        err = 0; /* an empty log until a writer creates it */
    if (err) {
        log_set_error(lg, "cannot open log directory %s: %s", dir, strerror(-err));
        goto fail;
    }
    if (opt && opt->follow) {
        err = log_follow_open(lg);
    } else if (lg->read_only) {
        err = log_scan_head(lg, &lg->ro_head, &lg->ro_seg, &lg->ro_off);
    } else {
        err = log_control_open(lg);
        lg->zero_ahead = err == 0 && zero_ahead_pays(lg);
    }
    if (err)
        goto fail;
    *out = lg;
    return 0;
fail:
    log_set_error(NULL, "%s", lg->err);
    log_close(lg);
    return err;
}

void log_close(struct log *lg)
{
    if (!lg)
        return;
    log_append_end(lg); /* if this thread still holds the lock */
    if (log_control_last_user(lg))
        log_trim_zeros(lg);
    log_segfd_close(&lg->app);
    log_segfd_close(&lg->syn);
    log_control_close(lg);
    log_follow_close(lg);
    free(lg->enc);
    free(lg->dir);
    free(lg);
}

int log_recovered(const struct log *lg) { return lg->recovered; }

const char *log_damage(const struct log *lg) { return lg->damage[0] ? lg->damage : NULL; }

uint64_t log_head(const struct log *lg)
{
    if (lg->fw)
        return log_follow_head(lg);
    if (!lg->ctl)
        return lg->ro_head;
    return atomic_load_explicit(&lg->ctl->head_pos, memory_order_acquire);
}

uint64_t log_durable(const struct log *lg)
{
    if (lg->fw)
        return log_follow_durable(lg);
    if (!lg->ctl)
        return lg->ro_head;
    return atomic_load_explicit(&lg->ctl->durable, memory_order_acquire);
}

int log_head_end(const struct log *lg, uint64_t *seg, uint64_t *off)
{
    const struct log_control *c = lg->ctl ? lg->ctl : lg->fw ? log_follow_ctl(lg) : NULL;
    if (c) {
        *seg = atomic_load_explicit(&c->head_seg, memory_order_acquire);
        *off = atomic_load_explicit(&c->head_off, memory_order_acquire);
        return 1;
    }
    if (lg->read_only && !lg->fw) {
        *seg = lg->ro_seg, *off = lg->ro_off;
        return 1;
    }
    return 0;
}

int log_stats(struct log *lg, struct log_stats *st)
{
    uint64_t *segs = NULL;
    size_t n = 0;
    int err = log_seg_list(lg->dir, &segs, &n);
    if (err) {
        log_set_error(lg, "cannot list %s: %s", lg->dir, strerror(-err));
        return err;
    }
    memset(st, 0, sizeof *st);
    st->head_position = log_head(lg);
    st->durable_position = log_durable(lg);
    st->segments = n;
    uint64_t head_seg = 0, head_off = 0;
    int known = log_head_end(lg, &head_seg, &head_off);
    for (size_t i = 0; i < n; i++) {
        char *path = log_seg_path(lg->dir, segs[i]);
        struct stat sst;
        if (known && segs[i] == head_seg && i + 1 == n)
            st->bytes += head_off; /* not the zeros written ahead of it */
        else if (stat(path, &sst) == 0)
            st->bytes += (uint64_t)sst.st_size;
        else if (errno != ENOENT) /* a segment cut by a concurrent repair is fine */
            err = -errno;
        free(path);
    }
    free(segs);
    return err;
}
