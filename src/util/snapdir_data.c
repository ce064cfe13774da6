/* snapdir_data: a snapshot's data.mdb written from a stream, summed on the way
 * (snapdir_write_data, snapdir.h).
 *
 * A snapshot used to be written by LMDB (mdb_env_copy2, into the directory) and then read
 * back whole for its CRC32C: twice the model's size in disk I/O, the second half while the
 * tailer and the command workers wait on the same disk for their own syncs. Here the copy
 * goes through a pipe (mdb_env_copyfd2 writes into any descriptor) and each block is summed
 * on its way to the file, so the file is written once and never read.
 *
 * The file is written with O_DIRECT where the file system allows it, as LMDB writes its
 * own copies: a copy of gigabytes through the page cache would push the models' and the
 * log's pages out of it, and would leave all of it dirty for the final fsync to write at
 * once. O_DIRECT needs aligned buffers, offsets and lengths: blocks are whole multiples of
 * DATA_ALIGN but the last; a last block that is not (or a device that refuses the
 * alignment) is written without O_DIRECT.
 *
 * Threads: produce() runs in the caller's thread, as the copy did before (LMDB's buffers
 * come and go with the caller's heap, not a new thread's); a thread of this file drains the
 * pipe into the file, from a block of its own mapping (unmapped when done: nothing stays
 * in any heap of a long-lived process).
 *
 * Invariants
 *  - The caller closes the pipe's write end when produce() returns: the drain's end-of-file
 *    means the producer is done (or failed).
 *  - The drain closes the read end when it stops, so that a producer blocked in a write
 *    when the file failed gets EPIPE instead of waiting forever. SIGPIPE is blocked in the
 *    caller's thread meanwhile (threads produce() starts, LMDB's copy thread, inherit
 *    that), and one that came is taken before the thread's mask is restored.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "util/crc32c.h"
#include "util/path.h"
#include "util/snapdir.h"

#define DATA_BLOCK (1u << 20) /* bytes summed and written at a time (and the pipe's size) */
#define DATA_ALIGN 4096u      /* O_DIRECT's alignment: a page, a multiple of any block size */

/* Fills buf with up to cap bytes from fd: fewer only at end-of-file. *got: the count. */
static int read_full(int fd, unsigned char *buf, size_t cap, size_t *got)
{
    *got = 0;
    while (*got < cap) {
        ssize_t n = read(fd, buf + *got, cap - *got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    return 0;
}

/* Drops O_DIRECT from fd (*direct cleared): 0 or -errno. */
static int drop_direct(int fd, int *direct)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_DIRECT) < 0)
        return -errno;
    *direct = 0;
    return 0;
}

/* Writes n bytes at the file's offset; *direct says whether fd has O_DIRECT, and is
 * cleared (the flag dropped) when this block cannot be written that way: a length off the
 * alignment (the last block), or an alignment this device refuses (EINVAL). */
static int write_block(int fd, const unsigned char *buf, size_t n, int *direct)
{
    int rc = *direct && n % DATA_ALIGN != 0 ? drop_direct(fd, direct) : 0;
    for (size_t done = 0; rc == 0 && done < n;) {
        ssize_t w = write(fd, buf + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EINVAL && *direct)
            rc = drop_direct(fd, direct);
        else if (w < 0)
            rc = -errno;
        else if (w == 0)
            rc = -ENOSPC; /* a regular file that takes nothing: the disk is full */
        else
            done += (size_t)w;
    }
    return rc;
}

/* Copies the pipe into the file, summing: 0 or -errno (the pipe's or the file's). The
 * block is mapped (page-aligned, as O_DIRECT wants) and unmapped at the end. */
static int drain(int in, int out, int direct, struct snapshot_info *s)
{
    unsigned char *buf = mmap(NULL, DATA_BLOCK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return -errno;
    int rc = 0;
    for (;;) {
        size_t got;
        if ((rc = read_full(in, buf, DATA_BLOCK, &got)) != 0 || got == 0)
            break;
        s->crc = ef_crc32c(s->crc, buf, got);
        s->bytes += got;
        if ((rc = write_block(out, buf, got, &direct)) != 0)
            break;
    }
    munmap(buf, DATA_BLOCK);
    return rc;
}

struct drainer {
    int in, out, direct;
    struct snapshot_info *s;
    int rc;
};

static void *drainer_main(void *arg)
{
    struct drainer *d = arg;
    d->rc = drain(d->in, d->out, d->direct, d->s);
    close(d->in); /* a producer still writing gets EPIPE */
    return NULL;
}

/* Creates tmp/data.mdb, with O_DIRECT when the file system has it. */
static int create_data(const char *tmp, int *direct)
{
    char path[SNAPDIR_PATH_MAX];
    if (ef_path_join(path, sizeof path, tmp, "data.mdb"))
        return -ENAMETOOLONG;
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
    int fd = open(path, flags | O_DIRECT, 0644);
    *direct = fd >= 0;
    if (fd < 0 && errno == EINVAL) /* no O_DIRECT here (tmpfs) */
        fd = open(path, flags, 0644);
    return fd < 0 ? -errno : fd;
}

static int sigpipe_pending(void)
{
    sigset_t pending;
    return sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

/* Takes a SIGPIPE left pending for this thread (its writes into the closed pipe), so
 * that restoring the mask does not deliver it. */
static void take_sigpipe(const sigset_t *pipe_set)
{
    const struct timespec now = { 0, 0 };
    while (sigpipe_pending() && sigtimedwait(pipe_set, NULL, &now) == SIGPIPE)
        ;
}

int snapdir_write_data(const char *tmp, snapdir_producer produce, void *arg, struct snapshot_info *s)
{
    s->bytes = 0;
    s->crc = 0;
    int direct, out = create_data(tmp, &direct);
    if (out < 0)
        return out;
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) < 0) {
        int rc = -errno;
        close(out);
        return rc;
    }
    /* A larger pipe: fewer switches between the two threads (a hint; the default is 64 KiB
     * and an unprivileged process may be held to less than asked). */
    (void)fcntl(ends[1], F_SETPIPE_SZ, (int)DATA_BLOCK);
    struct drainer d = { ends[0], out, direct, s, 0 };
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_t th;
    int err = pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int had_sigpipe = sigpipe_pending(); /* the caller's own, blocked before: left alone */
    if (err == 0 && (err = pthread_create(&th, NULL, drainer_main, &d)) != 0)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        close(ends[0]);
        close(ends[1]);
        close(out);
        return -err;
    }
    int produced = produce(arg, ends[1]);
    if (close(ends[1]) < 0 && produced == 0)
        produced = -errno;
    err = pthread_join(th, NULL);
    if (!had_sigpipe)
        take_sigpipe(&pipe_set);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    int rc = d.rc ? d.rc : err ? -err : produced; /* the file's failure first: the cause */
    if (close(out) < 0 && rc == 0)
        rc = -errno;
    return rc;
}
