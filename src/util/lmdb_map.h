/* lmdb_map: LMDB environments written through a writable map (MDB_WRITEMAP).
 *
 * Both models are written with MDB_WRITEMAP when their map can be reserved on disk: a commit
 * then stores its pages in place, where without it LMDB copies every dirty page into the
 * page cache with pwrite at commit. That copy was the largest single cost of the fold and
 * of a command's write transaction (bench/README.md has the figures).
 *
 * The catch: with MDB_WRITEMAP, LMDB sizes data.mdb to the whole map with ftruncate, so the
 * file is sparse, and the first store into an unbacked page of a shared mapping kills the
 * process with SIGBUS when the filesystem is full. So the invariant is: a process stores
 * into a writable map only when every block of the map is allocated. The map's blocks are
 * reserved with fallocate(2) when the environment opens and before the map grows
 * (ef_mdb_reserve); where that fails, the environment is opened without MDB_WRITEMAP and
 * a full disk stays an error code of mdb_txn_commit. The data file is as large as the map.
 * Copy-on-write filesystems (btrfs, bcachefs) count as failing: an overwrite there needs
 * new blocks whatever was reserved.
 *
 * lock.mdb is sparse in the same way (LMDB sizes it with ftruncate and stores into its map):
 * its blocks are allocated before LMDB opens it, on a descriptor kept open until the env
 * closes (ef_mdb_close).
 *
 * fallocate(2) itself, never glibc's posix_fallocate emulation (falloc.h): the emulation
 * writes zero bytes into blocks that read as zero, which would race with another process
 * storing into its map of the same file.
 *
 * A writable map also sizes the file for every other process: LMDB ftruncates data.mdb to
 * the map's size whenever a process maps it with MDB_WRITEMAP (mdb_env_open and every
 * mdb_env_set_mapsize), shrinking it when that process's map is the smaller one. A process
 * that grew its map (and may be storing into the new pages before any commit records the
 * size) would then find its pages cut off: SIGBUS. So the invariant is: no map is ever set
 * below the file's size. Every open and every resize goes through this module, which takes
 * an exclusive lock (an OFD lock on a byte of lock.mdb that LMDB never locks) around
 * "read the file's size, map at least that much", so no two of them interleave.
 */
#ifndef EF_LMDB_MAP_H
#define EF_LMDB_MAP_H

#include <lmdb.h>
#include <stddef.h>

/* Configures a freshly created env (maxdbs, mapsize, ...). An LMDB or errno code, 0 on success. */
typedef int (*ef_mdb_setup_fn)(MDB_env *env, void *arg);

/* Creates an env, lets setup configure it (maxdbs, maxreaders: not the map size), and opens
 * path with flags | MDB_WRITEMAP and a map of max(map_bytes, the data file's size), then
 * reserves the whole map. When the reservation fails (a full disk, a filesystem without
 * fallocate), the env is closed and opened again without MDB_WRITEMAP; *writemap says
 * which (and *why_not the reservation's -errno, 0 when the map is writable). Returns 0 with
 * *out set, or the code of mdb_env_create, setup or mdb_env_open (as LMDB returns them). */
int ef_mdb_open(const char *path, unsigned flags, mdb_mode_t mode, size_t map_bytes,
                ef_mdb_setup_fn setup, void *arg, MDB_env **out, int *writemap, int *why_not);

/* The same open without MDB_WRITEMAP (a read-only env: its map is never written). */
int ef_mdb_open_plain(const char *path, unsigned flags, mdb_mode_t mode, size_t map_bytes,
                      ef_mdb_setup_fn setup, void *arg, MDB_env **out);

/* Sets the map of env (opened by ef_mdb_open, writemap as it said) to max(bytes, the data
 * file's size); bytes 0 adopts what other processes grew the file to. Where the map is
 * writable and grows past the file, its blocks are reserved first (ef_mdb_reserve). No
 * transaction of this process may be open (LMDB's rule for mdb_env_set_mapsize). 0, or
 * -errno (-ENOSPC/-EDQUOT: the map was not changed), or LMDB's code: when the new mmap
 * fails LMDB has no map left, and the env must not be used again. */
int ef_mdb_set_mapsize(MDB_env *env, size_t bytes, int writemap);

/* Closes an env opened by ef_mdb_open or ef_mdb_open_plain (and the descriptor that keeps
 * lock.mdb's blocks reserved, see lmdb_map.c). NULL is ignored. */
void ef_mdb_close(MDB_env *env);

/* Allocates the blocks of the first bytes of env's data file (ef_mdb_set_mapsize does it
 * before a writable map grows; a process that adopts a size another one grew to checks). 0, or -errno: -ENOSPC or
 * -EDQUOT on a full disk (the map must not grow), -EOPNOTSUPP where the filesystem has no
 * fallocate or copies on write (no process uses a writable map there: ef_mdb_open could
 * not reserve either). */
int ef_mdb_reserve(MDB_env *env, size_t bytes);

/* LMDB returns system errors as positive errno values and its own codes as negative
 * numbers (MDB_KEYEXIST ...): this maps the former to -errno, the convention of every
 * module here, and leaves the latter. */
static inline int ef_mdb_rc(int rc)
{
    return rc > 0 ? -rc : rc;
}

/* Why a reservation failed, for a log line: -EOPNOTSUPP names both of its causes. */
const char *ef_mdb_reserve_strerror(int err);

/* The env's current map size in bytes (0 when LMDB cannot say). */
size_t ef_mdb_mapsize(MDB_env *env);

#endif
