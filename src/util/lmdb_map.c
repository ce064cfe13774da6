#include <config.h>

#include "util/lmdb_map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fskind.h"
#include "util/path.h"

int ef_mdb_reserve(MDB_env *env, size_t bytes)
{
    mdb_filehandle_t fd;
    int rc = mdb_env_get_fd(env, &fd);
    if (rc)
        return rc > 0 ? -rc : -EBADF;
    /* Copy on write: an overwrite needs new blocks whatever was reserved. */
    if ((rc = ef_fs_copies_on_write(fd)) != 0)
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

/* Allocates the first max(bytes, size of the file) bytes of lock.mdb (fd), its size kept.
 * 0 or -errno; no fallocate on this filesystem counts as done. */
static int allocate_lock_file(int fd, off_t bytes)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (st.st_size > bytes)
        bytes = st.st_size;
    while (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, bytes) < 0) {
        if (errno == EINTR)
            continue;
        return errno == EOPNOTSUPP || errno == ENOSYS ? 0 : -errno;
    }
    return 0;
}

/* LMDB sizes lock.mdb with ftruncate and stores into its mapping at once (the mutexes and
 * the reader table of a new file), and again whenever a reader takes a slot on a page no
 * reader used before: on a full disk, a store into one of its holes is SIGBUS. So its blocks
 * are allocated before mdb_env_open, beyond its end (FALLOC_FL_KEEP_SIZE: LMDB still sees
 * the size it decides by), for the reader table the env is set up for. The descriptor stays
 * open as long as the env (in its user context): closing it would drop the process's POSIX
 * locks on the file, LMDB's own (falloc.h); ef_mdb_close closes it after the env. Returns
 * 0, or -errno: -ENOSPC/-EDQUOT on a full disk. Where the file cannot be opened read-write
 * (a read-only env on a read-only directory) or the filesystem has no fallocate, LMDB is
 * left to do as it always did. */
static int reserve_lock_file(MDB_env *env, const char *path, mdb_mode_t mode)
{
    unsigned readers = 0;
    if (mdb_env_get_maxreaders(env, &readers) != 0)
        return -EINVAL;
    char lock[4096];
    if (ef_path_join(lock, sizeof lock, path, "lock.mdb"))
        return -ENAMETOOLONG;
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, mode);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : 0; /* no directory: mdb_env_open says so */
    /* An upper bound of LMDB's size for `readers` slots (a header of a few cache lines,
     * then one 64-byte slot per reader); allocate_lock_file checks LMDB's real size once
     * the env is open. */
    int rc = allocate_lock_file(fd, (off_t)readers * 64 + 4096);
    if (rc) {
        close(fd); /* no env holds the file yet */
        return rc;
    }
    mdb_env_set_userctx(env, (void *)(intptr_t)(fd + 1));
    return 0;
}

/* The descriptor of lock.mdb kept by reserve_lock_file, or -1. */
static int lock_fd(MDB_env *env)
{
    return (int)((intptr_t)mdb_env_get_userctx(env) - 1);
}

/* The byte of lock.mdb whose lock serializes opens and resizes (see the header). LMDB
 * locks byte 0 of lock.mdb (its exclusive-open check) and nothing else; this one lies far
 * past any lock file. An OFD lock: it belongs to the open file description, so it excludes
 * the threads of this process too, and closing another descriptor of the file (LMDB's)
 * does not drop it. */
#define MAP_LOCK_BYTE ((off_t)1 << 40)

/* Takes (F_WRLCK, waiting) or drops (F_UNLCK) the map lock on fd; no fd (a read-only
 * directory, where no process can map the file writable): nothing to do. 0 or -errno. */
static int map_lock(int fd, short type)
{
    if (fd < 0)
        return 0;
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = MAP_LOCK_BYTE, .l_len = 1 };
    while (fcntl(fd, type == F_UNLCK ? F_OFD_SETLK : F_OFD_SETLKW, &fl) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

/* Size of path/data.mdb: 0 when it does not exist yet. */
static int data_file_size(const char *path, size_t *size)
{
    char data[4096];
    struct stat st;
    if (ef_path_join(data, sizeof data, path, "data.mdb"))
        return -ENAMETOOLONG;
    if (stat(data, &st) < 0) {
        *size = 0;
        return errno == ENOENT ? 0 : -errno;
    }
    *size = (size_t)st.st_size;
    return 0;
}

int ef_mdb_set_mapsize(MDB_env *env, size_t bytes, int writemap)
{
    int lfd = lock_fd(env);
    int rc = map_lock(lfd, F_WRLCK);
    if (rc)
        return rc;
    mdb_filehandle_t fd;
    struct stat st;
    if ((rc = mdb_env_get_fd(env, &fd)) != 0) {
        rc = rc > 0 ? -rc : -EBADF;
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    size_t size = bytes;
    if (writemap) {
        /* Never below the file (the invariant); blocks first, whoever extended the file:
         * a process whose reservation failed may have left it sparse. */
        if (size < (size_t)st.st_size)
            size = (size_t)st.st_size;
        if ((rc = ef_mdb_reserve(env, size)) != 0)
            goto out;
    }
    /* Without MDB_WRITEMAP LMDB neither truncates nor stores into the map; 0 adopts the
     * size recorded in the meta page (never below the data). */
    if (mdb_env_set_mapsize(env, size) != 0)
        rc = MDB_PANIC; /* unmapped and not mapped again (see the header) */
out:
    map_lock(lfd, F_UNLCK);
    return rc;
}

void ef_mdb_close(MDB_env *env)
{
    if (!env)
        return;
    intptr_t fd = (intptr_t)mdb_env_get_userctx(env) - 1;
    mdb_env_close(env);
    if (fd >= 0)
        close((int)fd);
}

/* Sets env's map to max(map_bytes, the data file's size) and opens it, under the map lock
 * (a writable map's open truncates the file to the map: see the header). */
static int open_locked(MDB_env *env, const char *path, unsigned flags, mdb_mode_t mode,
                       size_t map_bytes)
{
    int lfd = lock_fd(env);
    int rc = -map_lock(lfd, F_WRLCK);
    if (rc)
        return rc;
    size_t size = 0;
    if ((rc = -data_file_size(path, &size)) == 0 &&
        (rc = mdb_env_set_mapsize(env, size > map_bytes ? size : map_bytes)) == 0)
        rc = mdb_env_open(env, path, flags, mode);
    map_lock(lfd, F_UNLCK);
    return rc;
}

static int open_env(const char *path, unsigned flags, mdb_mode_t mode, size_t map_bytes,
                    ef_mdb_setup_fn setup, void *arg, MDB_env **out)
{
    MDB_env *env = NULL;
    int rc = mdb_env_create(&env);
    if (rc)
        return rc;
    if ((rc = setup(env, arg)) != 0 || (rc = -reserve_lock_file(env, path, mode)) != 0 ||
        (rc = open_locked(env, path, flags, mode, map_bytes)) != 0) {
        ef_mdb_close(env);
        return rc;
    }
    /* The bound above was an estimate: now the file has LMDB's own size (no store into a
     * reader slot beyond the first one's page has happened yet). */
    int fd = lock_fd(env);
    if (fd >= 0 && (rc = -allocate_lock_file(fd, 0)) != 0) {
        ef_mdb_close(env);
        return rc;
    }
    *out = env;
    return 0;
}

int ef_mdb_open_plain(const char *path, unsigned flags, mdb_mode_t mode, size_t map_bytes,
                      ef_mdb_setup_fn setup, void *arg, MDB_env **out)
{
    return open_env(path, flags, mode, map_bytes, setup, arg, out);
}

int ef_mdb_open(const char *path, unsigned flags, mdb_mode_t mode, size_t map_bytes,
                ef_mdb_setup_fn setup, void *arg, MDB_env **out, int *writemap, int *why_not)
{
    MDB_env *env;
    int rc = open_env(path, flags | MDB_WRITEMAP, mode, map_bytes, setup, arg, &env);
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
    ef_mdb_close(env);
    *writemap = 0;
    return open_env(path, flags, mode, map_bytes, setup, arg, out);
}
