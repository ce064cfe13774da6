#include <config.h>

#include "util/fskind.h"

#include <errno.h>
#include <linux/magic.h>
#include <sys/vfs.h>

#ifndef BCACHEFS_SUPER_MAGIC
#define BCACHEFS_SUPER_MAGIC 0xca451a4e
#endif

int ef_fs_copies_on_write(int fd)
{
    struct statfs sf;
    if (fstatfs(fd, &sf) < 0)
        return -errno;
    return (unsigned long)sf.f_type == (unsigned long)BTRFS_SUPER_MAGIC ||
           (unsigned long)sf.f_type == (unsigned long)BCACHEFS_SUPER_MAGIC;
}
