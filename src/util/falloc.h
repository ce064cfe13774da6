/* falloc: real blocks behind files that are written through a shared mapping.
 *
 * A file sized with ftruncate alone is sparse, and the first store into an unbacked page of
 * a MAP_SHARED mapping of it kills the process with SIGBUS when the filesystem is full.
 * Allocating the blocks up front turns that into ENOSPC at the call, where it can be
 * reported. Used for the log's control file, the read position file, the metrics file and
 * LMDB's lock files.
 */
#ifndef EF_FALLOC_H
#define EF_FALLOC_H

#include <sys/types.h>

/* Allocates (zero-filled where new) the first len bytes of fd, extending it if shorter;
 * retried on EINTR. 0 or -errno (-ENOSPC on a full filesystem). */
int ef_allocate(int fd, off_t len);

/* Allocates the blocks of the whole current length of the file at path (nothing to do for an
 * empty file). 0 or -errno. */
int ef_allocate_path(const char *path);

/* ef_allocate_path of dir/name (e.g. an LMDB environment's "lock.mdb"); a missing file is
 * not an error. */
int ef_allocate_in_dir(const char *dir, const char *name);

#endif
