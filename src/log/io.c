#include <config.h>

#include "log/io.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* The defaults: plain system calls, retried on EINTR (a signal must never turn into a
 * failed append). */

static int io_open(const char *path, int flags, mode_t mode)
{
    int fd;
    do
        fd = open(path, flags | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
    return fd;
}

/* close(2) is not retried on EINTR: on Linux the descriptor is released either way. */
static int io_close(int fd) { return close(fd); }

static ssize_t io_pread(int fd, void *buf, size_t n, off_t off)
{
    ssize_t r;
    do
        r = pread(fd, buf, n, off);
    while (r < 0 && errno == EINTR);
    return r;
}

static ssize_t io_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t r;
    do
        r = pwrite(fd, buf, n, off);
    while (r < 0 && errno == EINTR);
    return r;
}

static int io_fdatasync(int fd)
{
    int r;
    do
        r = fdatasync(fd);
    while (r < 0 && errno == EINTR);
    return r;
}

static int io_fsync(int fd)
{
    int r;
    do
        r = fsync(fd);
    while (r < 0 && errno == EINTR);
    return r;
}

static int io_ftruncate(int fd, off_t len)
{
    int r;
    do
        r = ftruncate(fd, len);
    while (r < 0 && errno == EINTR);
    return r;
}

static int io_unlink(const char *path) { return unlink(path); }

static const struct log_io io_defaults = {
    .open = io_open,
    .close = io_close,
    .pread = io_pread,
    .pwrite = io_pwrite,
    .fdatasync = io_fdatasync,
    .fsync = io_fsync,
    .ftruncate = io_ftruncate,
    .unlink = io_unlink,
};

struct log_io log_io = {
    .open = io_open,
    .close = io_close,
    .pread = io_pread,
    .pwrite = io_pwrite,
    .fdatasync = io_fdatasync,
    .fsync = io_fsync,
    .ftruncate = io_ftruncate,
    .unlink = io_unlink,
};

void log_io_reset(void) { log_io = io_defaults; }
