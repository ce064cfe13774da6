/* snapdir_data: a snapshot's data.mdb written from a stream, summed on the way
 * (snapdir_write_data, snapdir.h).
 *
 * A snapshot used to be written by LMDB (mdb_env_copy2, into the directory) and then read
 * back whole for its CRC32C: twice the model's size in disk I/O, the second half while the
 * tailer and the command workers wait on the same disk for their own syncs. Here the copy
 * goes through a pipe (mdb_env_copyfd2 writes into any descriptor) and this thread sums
 * each block before writing it, so the file is written once and never read.
 *
 * The file is written with O_DIRECT where the file system allows it, as LMDB writes its
 * own copies: a copy of gigabytes through the page cache would push the models' and the
 * log's pages out of it, and would leave all of it dirty for the final fsync to write at
 * once. O_DIRECT needs aligned buffers, offsets and lengths: blocks are whole multiples of
 * DATA_ALIGN but the last; a last block that is not (or a device that refuses the
 * alignment) is written without O_DIRECT.
 *
 * Invariants
 *  - The producer thread owns the pipe's write end and closes it when produce() returns:
 *    the reader's end-of-file means the producer is done (or failed).
 *  - When the file cannot be written, the reader closes its end first, so that a producer
 *    blocked in a write fails with EPIPE (SIGPIPE is blocked in its thread) instead of
 *    waiting forever; then it is joined.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/crc32c.h"
#include "util/path.h"
#include "util/snapdir.h"

#define DATA_BLOCK (1u << 20) /* bytes summed and written at a time (and the pipe's size) */
#define DATA_ALIGN 4096u      /* O_DIRECT's alignment: a page, a multiple of any block size */

struct producer {
    snapdir_producer produce;
    void *arg;
    int fd; /* the pipe's write end, closed by the thread */
    int rc;
};

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    /* Threads the producer starts (LMDB's copy thread) inherit the mask. */
    int err = pthread_sigmask(SIG_BLOCK, &set, NULL);
    p->rc = err ? -err : p->produce(p->arg, p->fd);
    if (close(p->fd) < 0 && p->rc == 0)
        p->rc = -errno;
    return NULL;
}

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

/* Writes n bytes at the file's offset; *direct says whether fd has O_DIRECT, and is
 * cleared (the flag dropped) when this block cannot be written that way. */
static int write_block(int fd, const unsigned char *buf, size_t n, int *direct)
{
    if (*direct && n % DATA_ALIGN != 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_DIRECT) < 0)
            return -errno;
        *direct = 0;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, buf + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EINVAL && *direct) { /* an alignment this device refuses */
            int fl = fcntl(fd, F_GETFL);
            if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_DIRECT) < 0)
                return -errno;
            *direct = 0;
            continue;
        }
        if (w < 0)
            return -errno;
        if (w == 0)
            return -ENOSPC; /* a regular file that takes nothing: the disk is full */
        done += (size_t)w;
    }
    return 0;
}

/* Copies the pipe into the file, summing: 0 or -errno (the pipe's or the file's). */
static int drain(int in, int out, int direct, struct snapshot_info *s)
{
    unsigned char *buf;
    int err = posix_memalign((void **)&buf, DATA_ALIGN, DATA_BLOCK);
    if (err)
        return -err;
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
    free(buf);
    return rc;
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
    struct producer p = { produce, arg, ends[1], 0 };
    pthread_t th;
    int err = pthread_create(&th, NULL, producer_main, &p);
    if (err) {
        close(ends[0]);
        close(ends[1]);
        close(out);
        return -err;
    }
    int rc = drain(ends[0], out, direct, s);
    close(ends[0]); /* before the join: a producer still writing gets EPIPE */
    err = pthread_join(th, NULL);
    if (rc == 0 && err)
        rc = -err;
    if (rc == 0)
        rc = p.rc;
    if (close(out) < 0 && rc == 0)
        rc = -errno;
    return rc;
}
