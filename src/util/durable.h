/* durable: small files and directory entries made to survive a machine crash.
 *
 * One place for fsync of a file or directory by path, and for the marker files the models
 * and the log write and read back (the read model's "unsynced" marker, the log's
 * "sync-failed" marker).
 * The log's own segment I/O goes through log_io (log/io.h) instead, so that tests can
 * inject failures there.
 */
#ifndef EF_DURABLE_H
#define EF_DURABLE_H

#include <stddef.h>

/* fsync of path, a directory when dir (O_DIRECTORY), else a file. 0 or -errno. */
int ef_fsync_path(const char *path, int dir);

/* Replaces dir/name with exactly data (mode 0644): written to dir/.name.tmp, fsynced and
 * renamed over, so that a reader never sees it partial; then dir is fsynced so that the
 * entry survives too. 0 or -errno; a short write, which on a regular file means the disk is
 * full, is -ENOSPC. On failure dir/name is unchanged, or (when only the directory's fsync
 * failed) complete but maybe not durable: the caller decides whether to remove it. */
int ef_write_durably(const char *dir, const char *name, const void *data, size_t len);

/* ef_write_durably without the fsyncs: readers still see the old file or the whole new one,
 * but after a machine crash either may be there, or neither. For progress files rewritten
 * often whose loss costs nothing (the relay's and the mirror's state files). */
int ef_replace_file(const char *dir, const char *name, const void *data, size_t len);

/* Copies the file src to dst, a new file (mode 0644; -EEXIST if dst exists), and fsyncs dst
 * (not its directory: the caller fsyncs or renames that). 0 or -errno; on failure dst may
 * be left partial, and the caller removes it. For seeding a read model from a snapshot's
 * data.mdb. */
int ef_copy_file(const char *src, const char *dst);

/* Reads dir/name, a small file such as those markers, into buf (at most cap - 1 bytes,
 * then a NUL). The length read, -ENOENT when there is no such file, or another -errno. */
int ef_read_small(const char *dir, const char *name, char *buf, size_t cap);

#endif
