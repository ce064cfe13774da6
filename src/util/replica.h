/* replica: what marks a data directory as a read replica, and the mirror's progress file.
 *
 * DIR/replica holds the name of the JetStream stream the replica copies (one line). It is
 * written durably by eventfold-mirror before the replica's log gets its first record, and
 * never removed by eventfold: its presence is what makes eventfold-command refuse the
 * directory (commands go to the leader; a second writer would fork the log).
 *
 * DIR/mirror.state is the mirror's progress for status and metrics only (never for
 * correctness: the replica's own log is where the mirror resumes): the stream, the last
 * position it made durable, the stream's last sequence as it last saw it, its pid and the
 * time of the update. It is replaced whole (temporary name, rename) so that a reader sees
 * an old or a new version, never a torn one; it is not fsync'ed.
 *
 * Errors: 0 or -errno.
 */
#ifndef EF_REPLICA_H
#define EF_REPLICA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define REPLICA_MARKER "replica"
#define REPLICA_STATE "mirror.state"
#define REPLICA_STREAM_MAX 256 /* JetStream stream names are shorter than this */

/* 1 with the stream's name in stream (NUL-terminated, without the newline) when data_dir is
 * a replica, 0 when it is not, or -errno (an unreadable marker, an empty or oversized one
 * is -EINVAL). */
int replica_marker_read(const char *data_dir, char *stream, size_t cap);
/* Writes the marker durably (file and directory entry fsync'ed). */
int replica_marker_write(const char *data_dir, const char *stream);

struct replica_state {
    char stream[REPLICA_STREAM_MAX];
    uint64_t position;    /* highest position the mirror made durable in the replica's log */
    uint64_t stream_last; /* the stream's last sequence as the mirror last saw it */
    pid_t pid;
    int64_t time_ms;      /* wall clock of the update */
};

int replica_state_write(const char *data_dir, const struct replica_state *st);
/* -ENOENT when the mirror never wrote one; -EINVAL when it cannot be parsed. */
int replica_state_read(const char *data_dir, struct replica_state *st);

#endif
