#include <config.h>

#include "log/log_int.h"
#include "util/clock.h"
#include "util/durable.h"
#include "util/path.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Follow mode (log_options.follow): a handle that never writes a byte (every file is
 * opened O_RDONLY, the control block is mapped PROT_READ) and yet sees the head and the
 * durable position move.
 *
 * Whether the control block can be trusted is decided the way log_control_open decides
 * it, under init.lock: a block is live while somebody holds users.lock (every read-write
 * handle holds it shared), and nobody can be between its own test and its shared lock
 * while we hold init.lock. Our test takes users.lock exclusively and non-blocking and
 * drops it at once, so a writer opening right after us still finds itself alone and
 * recovers the files. A follower never holds users.lock: that would make the next writer
 * attach to a block nobody initialized.
 *
 * Live at open: the block is mapped and followed. Not live (nobody has the log open
 * read-write, or nobody ever had): the head is what is whole on disk, found the way a
 * read-only open finds it (nothing cut), and never beyond the position a failed fdatasync
 * left in DIR/sync-failed (the next writer cuts there). The block is then looked for
 * again, at most every FOLLOW_RETRY_NS, from the accessors, until a writer has made it live.
 *
 * A later writer that finds nobody else re-initializes the block in place (same file, same
 * size: the mapping stays valid): for a moment it reads zeros, then the recovered head,
 * which is never below a durable position seen before (durable records are whole; a
 * sync-failure cut stops right after the durable position). So the accessors return the
 * maximum of everything seen: positions never go back, and a half-written block is
 * harmless. */

#define FOLLOW_RETRY_NS (200ull * 1000 * 1000)

/* Opens DIR/name read-only: the fd, or -1 with errno (ENOENT: no writer made it yet). */
static int open_ro(const char *dir, const char *name)
{
    char *path = ef_path_join_alloc(dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int e = errno;
    free(path);
    errno = e;
    return fd;
}

static int flock_retry(int fd, int op)
{
    int r;
    do
        r = flock(fd, op);
    while (r < 0 && errno == EINTR);
    return r;
}

/* With init.lock held: 1 if a read-write handle holds users.lock, 0 if none, -errno. */
static int writers_live(const char *dir)
{
    int fd = open_ro(dir, "users.lock");
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    int r = flock_retry(fd, LOCK_EX | LOCK_NB), err = 0;
    if (r < 0 && errno != EWOULDBLOCK)
        err = -errno;
    close(fd); /* drops our exclusive lock, if we got it */
    return err ? err : r < 0;
}

/* Maps DIR/control read-only. 0 with *out set, or a negative code. */
static int map_control_ro(struct log *lg, struct log_control **out)
{
    int fd = open_ro(lg->dir, "control"), err = 0;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        err = -errno;
        log_set_error(lg, "cannot open %s/control: %s", lg->dir, strerror(errno));
        goto fail;
    }
    /* The file is sized once, to the block, and never shrunk: mapping it after seeing
     * that size cannot fault later. */
    if ((size_t)st.st_size < sizeof(struct log_control)) {
        err = LOG_EVERSION;
        log_set_error(lg, "%s/control: too small for a control block", lg->dir);
        goto fail;
    }
    void *p = mmap(NULL, sizeof(struct log_control), PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        err = -errno;
        log_set_error(lg, "cannot map %s/control: %s", lg->dir, strerror(errno));
        goto fail;
    }
    *out = p;
fail:
    if (fd >= 0)
        close(fd);
    return err;
}

static int control_valid(const struct log_control *c)
{
    return __atomic_load_n(&c->magic, __ATOMIC_ACQUIRE) == LOG_CONTROL_MAGIC &&
           c->version == LOG_CONTROL_VERSION && c->size == sizeof *c;
}

static void raise_to(_Atomic uint64_t *seen, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(seen, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak(seen, &cur, v))
        ;
}

/* The position after which the next writer cuts the log (DIR/sync-failed), or UINT64_MAX. */
static uint64_t sync_failed_cap(const char *dir)
{
    char text[32];
    if (ef_read_small(dir, LOG_SYNC_FAILED_FILE, text, sizeof text) < 0)
        return UINT64_MAX;
    char *end;
    errno = 0;
    unsigned long long d = strtoull(text, &end, 10);
    return errno || end == text ? UINT64_MAX : (uint64_t)d;
}

/* With init.lock held. live: map and adopt the block; otherwise (at open only) scan. */
static int follow_locked(struct log *lg, int at_open)
{
    struct log_follow *fw = lg->fw;
    int live = writers_live(lg->dir);
    if (live < 0) {
        log_set_error(lg, "cannot test %s/users.lock: %s", lg->dir, strerror(-live));
        return live;
    }
    if (live) {
        struct log_control *c;
        int err = map_control_ro(lg, &c);
        if (err)
            return err;
        if (!control_valid(c)) {
            munmap(c, sizeof *c);
            log_set_error(lg, "%s/control: unknown control block format", lg->dir);
            return LOG_EVERSION;
        }
        raise_to(&fw->head, atomic_load_explicit(&c->head_pos, memory_order_acquire));
        raise_to(&fw->durable, atomic_load_explicit(&c->durable, memory_order_acquire));
        atomic_store_explicit(&fw->ctl, c, memory_order_release);
        return 0;
    }
    if (!at_open)
        return 0;
    uint64_t pos, seg, off;
    int err = log_scan_head(lg, &pos, &seg, &off);
    if (err)
        return err;
    uint64_t cap = sync_failed_cap(lg->dir);
    pos = pos < cap ? pos : cap;
    raise_to(&fw->head, pos);
    raise_to(&fw->durable, pos);
    return 0;
}

/* Takes init.lock (blocking at open, non-blocking later) and runs follow_locked.
 * Returns 0 (also when the lock was busy or does not exist yet) or a negative code. */
static int follow_try(struct log *lg, int at_open)
{
    int fd = open_ro(lg->dir, "init.lock");
    if (fd < 0) {
        if (errno != ENOENT) {
            log_set_error(lg, "cannot open %s/init.lock: %s", lg->dir, strerror(errno));
            return -errno;
        }
        /* Nobody ever opened the log read-write: the files are all there is. */
        if (!at_open)
            return 0;
        uint64_t pos = 0, seg, off;
        int err = 0;
        if (access(lg->dir, F_OK) == 0)
            err = log_scan_head(lg, &pos, &seg, &off);
        if (err == 0) {
            raise_to(&lg->fw->head, pos);
            raise_to(&lg->fw->durable, pos);
        }
        return err;
    }
    int err = 0;
    if (flock_retry(fd, at_open ? LOCK_EX : LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK) {
            err = -errno;
            log_set_error(lg, "cannot lock %s/init.lock: %s", lg->dir, strerror(errno));
        }
    } else {
        err = follow_locked(lg, at_open);
    }
    close(fd); /* releases init.lock */
    return err;
}

int log_follow_open(struct log *lg)
{
    struct log_follow *fw = xcalloc(1, sizeof *fw);
    pthread_mutex_init(&fw->attach_mu, NULL);
    lg->fw = fw;
    int err = follow_try(lg, 1);
    atomic_store(&fw->next_try_ns, ef_mono_ns() + FOLLOW_RETRY_NS);
    return err;
}

void log_follow_close(struct log *lg)
{
    struct log_follow *fw = lg->fw;
    if (!fw)
        return;
    struct log_control *c = atomic_load(&fw->ctl);
    if (c)
        munmap(c, sizeof *c);
    pthread_mutex_destroy(&fw->attach_mu);
    free(fw);
    lg->fw = NULL;
}

/* The live block, or NULL while there is none (then tries to attach, rate-limited). The
 * handle is const for the accessors; what changes lives behind lg->fw. */
const struct log_control *log_follow_ctl(const struct log *lg)
{
    struct log_follow *fw = lg->fw;
    struct log_control *c = atomic_load_explicit(&fw->ctl, memory_order_acquire);
    if (c)
        return c;
    uint64_t now = ef_mono_ns();
    if (now < atomic_load_explicit(&fw->next_try_ns, memory_order_relaxed))
        return NULL;
    if (pthread_mutex_trylock(&fw->attach_mu) != 0)
        return NULL;
    atomic_store(&fw->next_try_ns, now + FOLLOW_RETRY_NS);
    /* A failure here (a block of another format) leaves us on what we know. */
    (void)follow_try((struct log *)lg, 0);
    pthread_mutex_unlock(&fw->attach_mu);
    return atomic_load_explicit(&fw->ctl, memory_order_acquire);
}

uint64_t log_follow_head(const struct log *lg)
{
    const struct log_control *c = log_follow_ctl(lg);
    if (c && control_valid(c))
        raise_to(&lg->fw->head, atomic_load_explicit(&c->head_pos, memory_order_acquire));
    return atomic_load_explicit(&lg->fw->head, memory_order_acquire);
}

uint64_t log_follow_durable(const struct log *lg)
{
    const struct log_control *c = log_follow_ctl(lg);
    if (c && control_valid(c))
        raise_to(&lg->fw->durable, atomic_load_explicit(&c->durable, memory_order_acquire));
    uint64_t d = atomic_load_explicit(&lg->fw->durable, memory_order_acquire);
    /* The head is raised from the block too, but may lag a durable position read later. */
    raise_to(&lg->fw->head, d);
    return d;
}
