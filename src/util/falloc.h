/* falloc: real blocks behind files that are written through a shared mapping.
 *
 * A file sized with ftruncate alone is sparse, and the first store into an unbacked page of
 * a MAP_SHARED mapping of it kills the process with SIGBUS when the filesystem is full.
 * Allocating the blocks up front turns that into ENOSPC at the call, where it can be
 * reported. Used for the log's control file, the read position file and the metrics file.
 *
 * Only for files this code creates and owns. Not for LMDB's lock.mdb: closing a descriptor
 * of it drops every POSIX record lock the process holds on the file, LMDB's included, and
 * the next process to open the environment then believes it is the first and
 * re-initializes the mutexes under the live ones (seen: a tailer hung in mdb_txn_begin).
 * lmdb_map.c reserves lock.mdb's blocks on a descriptor it keeps open as long as the env. Also, where a filesystem has no fallocate, glibc emulates it by writing
 * zero bytes into blocks that read as zero, which races with stores into a live mapping.
 */
#ifndef EF_FALLOC_H
#define EF_FALLOC_H

#include <sys/types.h>

/* Allocates (zero-filled where new) the first len bytes of fd, extending it if shorter;
 * retried on EINTR. 0 or -errno (-ENOSPC on a full filesystem). */
int ef_allocate(int fd, off_t len);

#endif
