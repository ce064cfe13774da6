/* lockfile: the exclusive locks that keep one process of a kind per data directory.
 *
 * A lock is an flock(2) on a file that exists only to be locked (DIR/read/tailer.lock,
 * DIR/read/rebuild.lock, DIR/read/prepare.lock, DIR/mirror.lock, the snapshot directories'
 * lock). The kernel releases it when its holder closes the descriptor or dies, so a crash
 * never leaves a directory locked.
 *
 * Caveats
 *  - An flock belongs to the open file description: a descriptor inherited over fork()
 *    shares the lock; all lock files are opened O_CLOEXEC so that programs run from a
 *    holder do not keep it.
 *  - The file is opened read-only, which is enough for flock, so that a lock file created
 *    by one user (an operator's eventfoldctl) can be locked by another (the service user).
 */
#ifndef EF_LOCKFILE_H
#define EF_LOCKFILE_H

/* Creates path if needed (mode 0644) and locks it exclusively; *fd holds the lock until
 * ef_unlock_file(). nonblock: -EWOULDBLOCK at once when another holder has it; else waits.
 * 0, or a negative errno (then *fd is -1 and nothing is held). */
int ef_lock_file(const char *path, int nonblock, int *fd);

/* Releases a lock taken by ef_lock_file. Accepts -1. */
void ef_unlock_file(int fd);

#endif
