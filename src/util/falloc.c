#include <config.h>

#include "util/falloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ef_allocate(int fd, off_t len)
{
    int r;
    do
        r = posix_fallocate(fd, 0, len);
    while (r == EINTR);
    return -r;
}

int ef_allocate_path(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && st.st_size > 0)
        rc = ef_allocate(fd, st.st_size);
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

int ef_allocate_in_dir(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path)
        return -ENOMEM;
    snprintf(path, n, "%s/%s", dir, name);
    int rc = ef_allocate_path(path);
    free(path);
    return rc == -ENOENT ? 0 : rc; /* nothing there (e.g. an env opened without a lock file) */
}
