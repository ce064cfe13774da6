#include <config.h>

#include "util/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "util/path.h"

int ef_fsync_path(const char *path, int dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* Writes dir/name whole under a temporary name and renames it over; with sync, the file is
 * fsynced before the rename and dir after it. */
static int replace_file(const char *dir, const char *name, const void *data, size_t len, int sync)
{
    /* Written under a temporary name and renamed over: a reader (ef_read_small, in another
     * process) sees the old file or the whole new one, never a truncated or partial one. */
    char path[4200], tmp[4200];
    if (ef_path_join(path, sizeof path, dir, name))
        return -ENAMETOOLONG;
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    ssize_t w;
    do
        w = write(fd, data, len);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        rc = -errno;
    else if ((size_t)w != len)
        rc = -ENOSPC;
    if (rc == 0 && sync && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc) {
        unlink(tmp); /* best effort: a leftover is overwritten by the next write */
        return rc;
    }
    return sync ? ef_fsync_path(dir, 1) : 0;
}

int ef_write_durably(const char *dir, const char *name, const void *data, size_t len)
{
    return replace_file(dir, name, data, len, 1);
}

int ef_replace_file(const char *dir, const char *name, const void *data, size_t len)
{
    return replace_file(dir, name, data, len, 0);
}

int ef_read_small(const char *dir, const char *name, char *buf, size_t cap)
{
    char path[4200];
    if (cap == 0 || ef_path_join(path, sizeof path, dir, name))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n;
    do
        n = read(fd, buf, cap - 1);
    while (n < 0 && errno == EINTR);
    int rc = n < 0 ? -errno : (int)n;
    close(fd); /* read-only: nothing to lose */
    buf[rc < 0 ? 0 : rc] = '\0';
    return rc;
}

/* Plain read(2)/write(2) in 64 KiB chunks: works between any two filesystems. */
int ef_copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        int rc = -errno;
        close(in);
        return rc;
    }
    char buf[1 << 16];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = -errno;
                break;
            }
            done += w;
        }
        if (rc)
            break;
    }
    if (rc == 0 && fsync(out) < 0)
        rc = -errno;
    close(in);
    if (close(out) < 0 && rc == 0)
        rc = -errno;
    return rc;
}
