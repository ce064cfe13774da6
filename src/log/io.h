/* io: the failure-prone system calls of the log, behind one replaceable table.
 *
 * Every open, read, write, sync, truncate and unlink that the log makes on segment files
 * and on its directory goes through the global log_io. Tests replace single members to
 * inject ENOSPC, EIO, short writes or failing syncs (SQLite's and beanstalkd's approach)
 * and call log_io_reset() to get the real calls back.
 *
 * Guarantees
 *  - Each member behaves like the system call of the same name: -1 (or a short count) with
 *    errno set on failure. The defaults retry on EINTR, so callers never see it.
 *
 * Caveats
 *  - The table is process-global and not synchronized: replace members only while no other
 *    thread uses the log (tests do it between operations). A forked child inherits it.
 *  - flock, mmap and futex calls on the control file are not routed through here: they
 *    fail only on programming errors or exhausted kernel resources, not on a full disk
 *    (the first opener allocates the control file's blocks, so stores into the mapping
 *    cannot fault on one).
 */
#ifndef EF_LOG_IO_H
#define EF_LOG_IO_H

#include <sys/types.h>

struct log_io {
    int (*open)(const char *path, int flags, mode_t mode);
    int (*close)(int fd);
    ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
    ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
    int (*fdatasync)(int fd);
    int (*fsync)(int fd);
    int (*ftruncate)(int fd, off_t len);
    int (*unlink)(const char *path);
};

extern struct log_io log_io;

/* Restores the real system calls. */
void log_io_reset(void);

#endif
