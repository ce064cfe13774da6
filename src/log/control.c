#include <config.h>

#include "log/io.h"
#include "log/log_int.h"
#include "util/eflog.h"
#include "util/path.h"
#include "util/falloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opening protocol (see log.h): init.lock serializes opens; whoever can take users.lock
 * exclusively is alone with the log, so the files are the only truth: it recovers them
 * and (re)initializes the control block. Everybody then holds users.lock shared until
 * log_close (or death, which the kernel turns into an unlock). */

static int open_lock(struct log *lg, const char *name, int *fd)
{
    char *path = ef_path_join_alloc(lg->dir, name);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int err = *fd < 0 ? -errno : 0;
    if (err)
        log_set_error(lg, "cannot open %s: %s", path, strerror(errno));
    free(path);
    return err;
}

static int lock_fd(struct log *lg, int fd, int op, const char *what)
{
    int r;
    do
        r = flock(fd, op);
    while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EWOULDBLOCK) {
        log_set_error(lg, "cannot lock %s/%s: %s", lg->dir, what, strerror(errno));
        return -errno;
    }
    return r < 0 ? 1 : 0;
}

static int init_mutex(pthread_mutex_t *mu)
{
    pthread_mutexattr_t at;
    int r = pthread_mutexattr_init(&at);
    if (r == 0)
        r = pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
    if (r == 0)
        r = pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    /* Error checking turns a thread relocking its own lock into EDEADLK, not a hang. */
    if (r == 0)
        r = pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ERRORCHECK);
    if (r == 0)
        r = pthread_mutex_init(mu, &at);
    pthread_mutexattr_destroy(&at);
    return -r;
}

/* Sizes the control file to the block with real blocks behind it: a sparse file (plain
 * ftruncate) would turn the first store into the mapping on a full filesystem into SIGBUS
 * instead of ENOSPC here. Returns 0 or -errno. */
static int size_control(int fd)
{
    if (ftruncate(fd, sizeof(struct log_control)) < 0)
        return -errno;
    return ef_allocate(fd, sizeof(struct log_control));
}

/* Maps the control file, sized to the block (only the first opener resizes it). */
static int map_control(struct log *lg, int first)
{
    char *path = ef_path_join_alloc(lg->dir, "control");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644), err = 0;
    struct stat st;
    if (fd < 0 || (first && (err = size_control(fd)) != 0) || fstat(fd, &st) < 0) {
        err = err ? err : -errno;
        log_set_error(lg, "cannot open %s: %s", path, strerror(-err));
        goto fail;
    }
    if ((size_t)st.st_size < sizeof(struct log_control)) {
        err = LOG_EVERSION;
        log_set_error(lg, "%s: too small for a control block", path);
        goto fail;
    }
    void *p = mmap(NULL, sizeof(struct log_control), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        err = -errno;
        log_set_error(lg, "cannot map %s: %s", path, strerror(errno));
        goto fail;
    }
    lg->ctl = p;
fail:
    if (fd >= 0)
        close(fd);
    free(path);
    return err;
}

/* First opener: recover the files, then write a fresh block. The magic goes last, so a
 * crash in between leaves a block that the next first opener rewrites anyway. */
static int init_control(struct log *lg)
{
    uint64_t pos, seg, off;
    int err = log_recover(lg, &pos, &seg, &off);
    if (err == 0)
        err = map_control(lg, 1);
    if (err)
        return err;
    struct log_control *c = lg->ctl;
    memset(c, 0, sizeof *c);
    if ((err = init_mutex(&c->append_mu)) != 0 || (err = init_mutex(&c->sync_mu)) != 0) {
        log_set_error(lg, "cannot initialize the control mutexes: %s", strerror(-err));
        return err;
    }
    c->version = LOG_CONTROL_VERSION;
    c->size = sizeof *c;
    atomic_store(&c->head_off, off);
    atomic_store(&c->head_seg, seg);
    atomic_store(&c->head_pos, pos);
    atomic_store(&c->durable, pos);
    /* Recovery cut whatever followed the last record, zeros written ahead included. */
    atomic_store(&c->zero_seg, seg);
    atomic_store(&c->zero_end, off);
    /* No fence needed: other processes look at the block only after taking init.lock,
     * which we release after this (flock orders memory like any system call). */
    c->magic = LOG_CONTROL_MAGIC;
    lg->recovered = 1;
    return 0;
}

static int attach_control(struct log *lg)
{
    int err = map_control(lg, 0);
    if (err)
        return err;
    if (lg->ctl->magic != LOG_CONTROL_MAGIC || lg->ctl->version != LOG_CONTROL_VERSION ||
        lg->ctl->size != sizeof *lg->ctl) {
        log_set_error(lg, "%s/control: unknown control block format", lg->dir);
        return LOG_EVERSION;
    }
    return 0;
}

int log_control_open(struct log *lg)
{
    int init_fd = -1, err = open_lock(lg, "init.lock", &init_fd);
    if (err)
        return err;
    if ((err = lock_fd(lg, init_fd, LOCK_EX, "init.lock")) != 0)
        goto fail;
    lg->opener = getpid();
    if ((err = open_lock(lg, "users.lock", &lg->users_fd)) != 0)
        goto fail;
    int busy = lock_fd(lg, lg->users_fd, LOCK_EX | LOCK_NB, "users.lock");
    if (busy < 0) {
        err = busy;
        goto fail;
    }
    err = busy ? attach_control(lg) : init_control(lg);
    if (err)
        goto fail;
    /* Downgrade (or take) the shared lock; init.lock keeps others from testing meanwhile. */
    err = lock_fd(lg, lg->users_fd, LOCK_SH, "users.lock");
fail:
    close(init_fd); /* releases init.lock */
    return err;
}

int log_control_last_user(struct log *lg)
{
    /* A forked child closing the handle it inherited shares the parent's open file and so
     * its lock: converting it would convert the parent's, which still uses the log. */
    if (!lg->ctl || lg->users_fd < 0 || getpid() != lg->opener)
        return 0;
    /* Converting the shared lock is not atomic: a refused conversion may drop it. Only
     * called while closing, and whoever refused it holds the lock shared, so nobody can
     * take it exclusively (and recover) meanwhile. */
    return flock(lg->users_fd, LOCK_EX | LOCK_NB) == 0;
}

void log_control_close(struct log *lg)
{
    if (lg->ctl)
        munmap(lg->ctl, sizeof *lg->ctl);
    lg->ctl = NULL;
    if (lg->users_fd >= 0)
        close(lg->users_fd);
    lg->users_fd = -1;
}
