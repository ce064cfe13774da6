#include <config.h>

#include "util/lmdb_map.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/vfs.h>

#ifndef BCACHEFS_SUPER_MAGIC
#define BCACHEFS_SUPER_MAGIC 0xca451a4e
#endif

/* Copy-on-write filesystems write every overwritten block somewhere new, so blocks reserved
 * by fallocate do not cover stores into the map: there a full disk can still fail a store
 * (SIGBUS), and the map must not be writable. */
static int copy_on_write(int fd)
{
    struct statfs sf;
    if (fstatfs(fd, &sf) < 0)
        return -errno;
    return (unsigned long)sf.f_type == (unsigned long)BTRFS_SUPER_MAGIC ||
           (unsigned long)sf.f_type == (unsigned long)BCACHEFS_SUPER_MAGIC;
}

int ef_mdb_reserve(MDB_env *env, size_t bytes)
{
    mdb_filehandle_t fd;
    int rc = mdb_env_get_fd(env, &fd);
    if (rc)
        return rc > 0 ? -rc : -EBADF;
    if ((rc = copy_on_write(fd)) != 0)
        return rc < 0 ? rc : -EOPNOTSUPP;
    /* LMDB's own descriptor: opening and closing another one of data.mdb would drop the
     * process's POSIX locks on the file (see falloc.h). */
    do
        rc = fallocate(fd, 0, 0, (off_t)bytes);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

const char *ef_mdb_reserve_strerror(int err)
{
    if (err == -EOPNOTSUPP)
        return "the filesystem has no fallocate, or copies on write";
    return strerror(-err);
}

size_t ef_mdb_mapsize(MDB_env *env)
{
    MDB_envinfo info;
    return mdb_env_info(env, &info) == 0 ? info.me_mapsize : 0;
}

static int open_env(const char *path, unsigned flags, mdb_mode_t mode, ef_mdb_setup_fn setup,
                    void *arg, MDB_env **out)
{
    MDB_env *env = NULL;
    int rc = mdb_env_create(&env);
    if (rc)
        return rc;
    if ((rc = setup(env, arg)) != 0 || (rc = mdb_env_open(env, path, flags, mode)) != 0) {
        mdb_env_close(env);
        return rc;
    }
    *out = env;
    return 0;
}

int ef_mdb_open(const char *path, unsigned flags, mdb_mode_t mode, ef_mdb_setup_fn setup,
                void *arg, MDB_env **out, int *writemap, int *why_not)
{
    MDB_env *env;
    int rc = open_env(path, flags | MDB_WRITEMAP, mode, setup, arg, &env);
    if (rc)
        return rc;
    /* Before any write transaction: LMDB has just sized the file to the map, sparse. */
    int err = ef_mdb_reserve(env, ef_mdb_mapsize(env));
    *why_not = err;
    if (err == 0) {
        *writemap = 1;
        *out = env;
        return 0;
    }
    /* Nothing was stored through the map yet. Closing the env closes LMDB's descriptors of
     * lock.mdb and data.mdb, and this process holds no other env of the same files. */
    mdb_env_close(env);
    *writemap = 0;
    return open_env(path, flags, mode, setup, arg, out);
}
