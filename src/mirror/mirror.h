/* mirror: eventfold-mirror's work (API.md section 9): makes a data directory a read replica
 * fed from the JetStream stream the leader's relay publishes to.
 *
 * Guarantees
 *  - The directory is marked a replica (util/replica.h) before its log gets a record; a
 *    directory whose log already holds records and has no marker (a leader's, written by
 *    commands) is refused, and so is a replica of another stream.
 *  - The replica's log is a copy of the leader's: each message must be the next position
 *    (stream sequence == Eventfold-Position == log head + 1) and is rebuilt into the exact
 *    record and checked end to end against the relay's CRC32C (mcheck.h) before it is
 *    appended through the same log module. On (re)subscribing, the stream's message at the
 *    replica's head must carry the CRC of the replica's last record. A gap or a
 *    disagreement stops the mirror with an error naming the position: it never skips.
 *  - fdatasyncs are grouped: the mirror appends what the consumer already holds (up to a
 *    batch limit), syncs once, and only then takes more; the replica's tailer folds only
 *    durable records, so nothing folded can vanish.
 *  - Restartable at any moment (kill -9 included): it resumes from its log's head + 1; a
 *    torn tail is cut by the log's recovery, records appended but not synced are either
 *    there (and synced with the next batch) or fetched again.
 *  - Progress for status and metrics goes to DIR/mirror.state (util/replica.h).
 *
 * One mirror per data directory (an exclusive flock on DIR/mirror.lock).
 */
#ifndef EF_MIRROR_H
#define EF_MIRROR_H

#include <signal.h>

#include "util/config.h"

/* In the mirror's range (util/ef_error.h); mirror_strerror() (mirror_error.h) names them. */
enum {
    MIRROR_EREFUSED = -14201, /* the data directory is not (and cannot become) this replica */
    MIRROR_ELOG = -14202,     /* the replica's log failed (open, append, sync) */
};

struct mirror_options {
    const struct ef_config *cfg;
    volatile sig_atomic_t *stop; /* set by a signal handler: stop cleanly */
};

/* Runs until *stop (returns 0) or a fatal error (a negative code; the cause, naming the
 * position where there is one, is in err). */
int mirror_run(const struct mirror_options *opt, char *err, size_t errlen);

#endif
