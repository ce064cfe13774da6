#include <config.h>

#include "util/bootid.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

void ef_boot_id(char *out, size_t cap)
{
    if (cap == 0)
        return;
    out[0] = '\0';
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, out, cap - 1);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    out[strcspn(out, "\n")] = '\0';
}
