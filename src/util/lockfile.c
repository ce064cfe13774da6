#include <config.h>

#include "util/lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

int ef_lock_file(const char *path, int nonblock, int *fd)
{
    *fd = -1;
    int f = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0)
        return -errno;
    int rc;
    while ((rc = flock(f, LOCK_EX | (nonblock ? LOCK_NB : 0))) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        rc = -errno;
        close(f);
        return rc;
    }
    *fd = f;
    return 0;
}

void ef_unlock_file(int fd)
{
    if (fd >= 0)
        close(fd);
}
