/* snapdir: the on-disk protocol of snapshot directories, shared by the read model's
 * snapshots (readmodel/rsnap.h, DIR/read/snapshots) and the write model's (write/wsnap.h,
 * DIR/write/snapshots). What goes into a snapshot is the caller's business; this module
 * only makes a directory of them trustworthy.
 *
 * A snapshots directory holds snap-POSITION/ directories (POSITION as %020llu), each with
 * data.mdb (an LMDB environment copy) and a manifest:
 *     eventfold-snapshot 1
 *     position P        (the applied position inside the copy)
 *     taken_at MS
 *     bytes N           (size of data.mdb)
 *     crc32c HEX        (CRC32C of data.mdb)
 *
 * Guarantees
 *  - A snapshot is built in tmp-PID/, fsynced (file, manifest, directory) and then renamed
 *    into place, and the directory fsynced: a snap-* directory is always complete.
 *  - The size and checksum are those of the bytes written (summed on their way to the
 *    file, snapdir_write_data); snapdir_verify() re-reads data.mdb and checks both.
 *  - snapdir_prune() deletes the oldest beyond `keep`, after the new one is in place.
 *
 * Caveat: nothing here serializes two builders of one directory; a caller with several
 * builders takes snapdir_lock() around build, publish and prune.
 */
#ifndef EF_SNAPDIR_H
#define EF_SNAPDIR_H

#include <stddef.h>
#include <stdint.h>

#define SNAPDIR_PATH_MAX 4096
#define SNAPDIR_LIST_MAX 64 /* more than any sane snapshot_keep */

struct snapshot_info {
    char name[64]; /* "snap-00000000000000001234" */
    uint64_t position;
    int64_t taken_at;
    uint64_t bytes;
    uint32_t crc;
};

/* Creates dir if needed and an empty dir/tmp-PID for a new snapshot (removing one left by
 * a crash of a process with the same pid); its path into tmp (SNAPDIR_PATH_MAX bytes). */
int snapdir_begin(const char *dir, char *tmp);

/* What writes a snapshot's data: all of it into fd (a pipe's write end, which it does not
 * close), then 0, or a negative code. Its writes fail with EPIPE once the file cannot be
 * written (SIGPIPE is blocked in the caller's thread meanwhile): it should then return. */
typedef int (*snapdir_producer)(void *arg, int fd);

/* Writes tmp/data.mdb (a new file) from what produce(arg, fd) writes, run in the caller's
 * thread (another drains the pipe), and sets s->bytes and s->crc from the bytes as they
 * pass: the file is written once and never read back. The file goes around the page cache
 * (O_DIRECT) where the file system allows it. Returns 0, the file's or the pipe's -errno,
 * or else produce's code; on failure tmp/data.mdb may be partial (the caller removes tmp). */
int snapdir_write_data(const char *tmp, snapdir_producer produce, void *arg, struct snapshot_info *s);

/* With tmp/data.mdb written by snapdir_write_data (s->bytes and s->crc are its) and
 * s->position set: fsyncs data.mdb, sets s->taken_at, writes and fsyncs the manifest,
 * fsyncs tmp. */
int snapdir_seal(const char *tmp, struct snapshot_info *s);

/* Renames tmp to dir/snap-POSITION (s->name is set) and fsyncs dir. An existing snapshot
 * at the same position is replaced when `replace`; otherwise it is kept and tmp removed
 * (1 is returned then, instead of 0). */
int snapdir_publish(const char *dir, const char *tmp, struct snapshot_info *s, int replace);

/* Removes a snapshot (or temporary) directory and the files a snapshot may hold. */
int snapdir_remove(const char *path); /* 0, or the first -errno (logged) */

/* Removes every tmp-* directory in dir: only safe while holding snapdir_lock(). */
void snapdir_remove_tmp(const char *dir);

/* Deletes the snapshots beyond the newest `keep` (keep < 1 counts as 1), logging each. */
void snapdir_prune(const char *dir, int keep);

/* Lists the newest snapshots (at most max), newest first, into list; *n how many.
 * Manifests that cannot be read are skipped (logged). A missing dir is an empty list. */
int snapdir_list(const char *dir, struct snapshot_info *list, size_t max, size_t *n);

/* Checks size and checksum of data.mdb: 0 valid, -EBADMSG damaged, other negative errno. */
int snapdir_verify(const char *dir, const struct snapshot_info *s);

/* CRC32C and size of a file. */
int snapdir_file_crc(const char *path, uint32_t *crc, uint64_t *bytes);

/* An exclusive flock on dir/lock (dir created if needed); *fd holds it until
 * snapdir_unlock(). nonblock: -EWOULDBLOCK at once when another process holds it. */
int snapdir_lock(const char *dir, int nonblock, int *fd);
void snapdir_unlock(int fd); /* accepts -1 */

#endif
