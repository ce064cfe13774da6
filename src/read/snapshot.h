/* snapshot: consistent, verifiable copies of the read model.
 *
 * DIR/read/snapshots/snap-POSITION/ holds data.mdb (a compacted mdb_env_copy2 of the model,
 * consistent as of one read transaction) and a manifest:
 *     eventfold-snapshot 1
 *     position P        (the model's applied position inside the copy)
 *     taken_at MS
 *     bytes N           (size of data.mdb)
 *     crc32c HEX        (CRC32C of data.mdb)
 *
 * Guarantees (the directory protocol is util/snapdir.h, shared with the write model)
 *  - A snapshot is built in a temporary directory, fsynced (file, manifest, directory) and
 *    then renamed into place: a snap-* directory is always complete.
 *  - Older snapshots beyond `keep` are deleted only after the new one is in place.
 *  - snapshot_verify() re-reads data.mdb and checks size and checksum, so a damaged
 *    snapshot is detected before a rebuild trusts it.
 *
 * Caveat: taking a snapshot holds a read transaction for the time of the copy; the writer
 * (tailer) keeps folding meanwhile.
 */
#ifndef EF_SNAPSHOT_H
#define EF_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "util/sbuf.h"
#include "util/snapdir.h" /* struct snapshot_info, the directory protocol */

struct rm_env;


/* Takes a snapshot of env now and prunes to the newest `keep` (keep < 1 counts as 1).
 * Returns 0 (info filled if non-NULL) or a negative code; failures are logged. */
int snapshot_take(const char *data_dir, struct rm_env *env, int keep, struct snapshot_info *info);

/* Lists the snapshots, newest first, into list (at most max); *n how many. Manifests that
 * cannot be read are skipped (logged). */
int snapshot_list(const char *data_dir, struct snapshot_info *list, size_t max, size_t *n);

/* Position of the newest snapshot (0 if none). */
int snapshot_newest_position(const char *data_dir, uint64_t *pos);

/* Checks a snapshot's size and checksum: 0 valid, -EBADMSG damaged, other negative errno. */
int snapshot_verify(const char *data_dir, const struct snapshot_info *s);

/* Appends [{"position","taken_at","bytes"}...] (newest first) to out. */
int snapshot_render(const char *data_dir, struct sbuf *out);
/* The same list for any snapshot directory (the write model's: DIR/write/snapshots). */
int snapshot_render_dir(const char *dir, struct sbuf *out);

#endif
