/* fskind: what kind of filesystem a file lives on, where it changes how we write.
 *
 * Copy-on-write filesystems (btrfs, bcachefs) write every overwritten block somewhere new:
 * blocks reserved with fallocate do not cover later stores (lmdb_map.h), and zeros written
 * ahead of the log's head buy nothing, since overwriting them needs new blocks and a
 * metadata commit all the same (log/append.c, zero_ahead).
 */
#ifndef EF_FSKIND_H
#define EF_FSKIND_H

/* 1 when fd's filesystem copies on write, 0 when not, or -errno (fstatfs failed). */
int ef_fs_copies_on_write(int fd);

#endif
