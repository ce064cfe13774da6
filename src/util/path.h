/* path: the one way a path is built from a directory and a name.
 *
 * Every module joins with ef_path_join(out, cap, dir, name), in snprintf's order (where the
 * result goes first), and every caller handles a path that does not fit: a data directory
 * may be up to EF_PATH_MAX - 1 bytes long (util/config.h), so "DIR/name" can be longer.
 */
#ifndef EF_PATH_H
#define EF_PATH_H

#include <stddef.h>

/* Writes dir/name (NUL-terminated) into out, which holds cap bytes. 0, or -ENAMETOOLONG when
 * it does not fit (out then holds a truncated path that must not be used). */
int ef_path_join(char *out, size_t cap, const char *dir, const char *name);
/* dir/name in memory of its own (xmalloc: never NULL, out of memory aborts); the caller
 * frees it. For paths that are kept, or whose length has no bound known beforehand. */
char *ef_path_join_alloc(const char *dir, const char *name);

#endif
