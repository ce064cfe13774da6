#include <config.h>

#include "util/falloc.h"

#include <errno.h>
#include <fcntl.h>

int ef_allocate(int fd, off_t len)
{
    int r;
    do
        r = posix_fallocate(fd, 0, len);
    while (r == EINTR);
    return -r;
}
