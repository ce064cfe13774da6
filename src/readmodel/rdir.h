/* rdir: where the read side keeps its files under the data directory.
 *
 *   DIR/read/position      the shared read position (rpos.h)
 *   DIR/read/current       symlink to the model in use, e.g. "model-0000000001"
 *   DIR/read/model-N/      an LMDB environment (data.mdb, lock.mdb)
 *   DIR/read/snapshots/    snapshots
 *
 * Switching models is one rename(2) of a new symlink over "current": a process that opens
 * "current" gets either the old or the new model, never a mix.
 */
#ifndef EF_RDIR_H
#define EF_RDIR_H

#include <stddef.h>

#define RDIR_PATH_MAX 4096

/* Fills out (outlen bytes) with DIR/read/NAME (DIR/read for an empty name), in the argument
 * order of ef_path_join (util/path.h), which joins any other directory and name. Returns 0,
 * or -ENAMETOOLONG. */
int rdir_path(char *out, size_t outlen, const char *data_dir, const char *name);

/* Makes sure DIR/read and DIR/read/current exist, creating model-0000000001 and the symlink
 * for a new data directory. Returns 0 or a negative errno. */
int rdir_prepare(const char *data_dir);

/* Creates a fresh, empty model directory DIR/read/model-N (N = one more than the highest
 * present) and returns its name (model-N) in name. */
int rdir_new_model(const char *data_dir, char *name, size_t namelen);

/* Points DIR/read/current at model `name` atomically (symlink to a temporary name, fsync the
 * directory, rename over current, fsync again). Returns the previous target in old (may be
 * "" if there was none). */
int rdir_switch(const char *data_dir, const char *name, char *old, size_t oldlen);

/* Removes a model directory (its data.mdb and lock.mdb, then the directory). */
int rdir_remove_model(const char *data_dir, const char *name);

#endif
