/* rsnap: consistent, verifiable copies of the read model.
 *
 * DIR/read/snapshots/snap-POSITION/ holds data.mdb (a compacted mdb_env_copyfd2 of the model,
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
 *  - Older snapshots beyond `keep` are deleted only after the new one is in place, and so
 *    are snapshots of another layout than this release's (rsnap_format), whatever their
 *    position: no rebuild of this release can use them.
 *  - rsnap_verify() re-reads data.mdb and checks size and checksum, so a damaged
 *    snapshot is detected before a rebuild trusts it.
 *
 * Caveat: taking a snapshot holds a read transaction for the time of the copy; the writer
 * (tailer) keeps folding meanwhile (rsnap_job_start), but pages freed during the copy
 * cannot be reused until it ends, so the map may grow by what is written meanwhile.
 */
#ifndef EF_RSNAP_H
#define EF_RSNAP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "util/sbuf.h"
#include "util/snapdir.h" /* struct snapshot_info, the directory protocol */

struct rmodel_env;


/* Takes a snapshot of env now and prunes to the newest `keep` (keep < 1 counts as 1).
 * Returns 0 (info filled if non-NULL) or a negative code; failures are logged. */
int rsnap_take(const char *data_dir, struct rmodel_env *env, int keep, struct snapshot_info *info);

/* A snapshot taken beside the fold: rsnap_take in a thread of its own, so that the
 * tailer goes on folding and committing while the model is copied (the copy reads one
 * LMDB read transaction, which a concurrent writer does not disturb).
 *
 * Invariant: while a job runs, nobody may close env or change its map size (LMDB requires
 * no active transaction in the process for mdb_env_set_mapsize): the owner calls
 * rsnap_job_finish() first, which waits for the copy to end. */
struct rsnap_job {
    pthread_t tid;
    int running;          /* a thread was started and not yet joined */
    _Atomic int done;     /* set by the thread as it ends */
    const char *data_dir; /* borrowed: valid until joined */
    struct rmodel_env *env;   /* borrowed */
    int keep;
    int rc;               /* rsnap_take's result, once joined */
    struct snapshot_info info;
};

/* Test seam: when set, a job calls it in its thread before copying (NULL in production). */
extern void (*rsnap_job_before_copy)(void);

/* Starts a job (j must not be running). Returns 0, or a negative errno when no thread
 * could be started (then nothing runs; the caller may take the snapshot inline or later). */
int rsnap_job_start(struct rsnap_job *j, const char *data_dir, struct rmodel_env *env, int keep);
/* 1 while a started job has not been joined yet. */
int rsnap_job_running(const struct rsnap_job *j);
/* 1 when a started job has ended (joining it will not wait). */
int rsnap_job_done(const struct rsnap_job *j);
/* Joins the job if one was started (waiting for the copy to end) and returns its result
 * (0 when none was running). */
int rsnap_job_finish(struct rsnap_job *j);

/* Lists the snapshots, newest first, into list (at most max); *n how many. Manifests that
 * cannot be read are skipped (logged). */
int rsnap_list(const char *data_dir, struct snapshot_info *list, size_t max, size_t *n);

/* Position of the newest snapshot (0 if none). */
int rsnap_newest_position(const char *data_dir, uint64_t *pos);

/* Checks a snapshot's size and checksum: 0 valid, -EBADMSG damaged, other negative errno. */
int rsnap_verify(const char *data_dir, const struct snapshot_info *s);

/* The layout version (RMODEL_FORMAT of the release that took it) of snapshot s, read from
 * its data.mdb without writing anything there: 0 with *format set, or RMODEL_EFORMAT (no
 * layout version in it), or LMDB's or a negative errno code (unreadable). */
int rsnap_format(const char *data_dir, const struct snapshot_info *s, int *format);

/* Appends [{"position","taken_at","bytes"}...] (newest first) to out. */
int rsnap_render(const char *data_dir, struct sbuf *out);
/* The same list for any snapshot directory (the write model's: DIR/write/snapshots). */
int rsnap_render_dir(const char *dir, struct sbuf *out);

#endif
