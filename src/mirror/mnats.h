/* mnats: the mirror's side of NATS JetStream: one connection, one ordered consumer on the
 * stream, message lookups by sequence.
 *
 * The consumer is an ordered push consumer (libnats' Ordered option): ephemeral, no acks,
 * flow-controlled, delivering the stream in sequence order from a start sequence. libnats
 * recreates it by itself from the last sequence it delivered when it sees a delivery gap or
 * misses the server's heartbeats (a node or the whole cluster went away), and the
 * connection reconnects by itself (servers from nats_url, forever, with a wait between
 * rounds), so the mirror only resubscribes after an error it is told about. Progress is
 * never kept on the server: the replica's own log head is where the mirror resumes.
 *
 * Connection state changes and asynchronous errors are logged once per change, never per
 * retry.
 *
 * Caveat: one thread uses an mnats; the message from mnats_next() stays valid until the
 * next mnats_next() or mnats_release().
 */
#ifndef EF_MNATS_H
#define EF_MNATS_H

#include <stddef.h>
#include <stdint.h>

#include "mirror/mcheck.h"
#include "util/config.h"

/* In the mirror's range (util/ef_error.h); mirror_strerror() (mirror_error.h) names them. */
enum {
    MNATS_ERETRY = -14101, /* transient (not connected, no stream leader, timeout): back off */
    MNATS_EFATAL = -14102, /* bad configuration (no such stream is not fatal: it may come) */
};

struct mnats;

/* Creates the connection (it keeps trying in the background when no server answers yet).
 * 0, or MNATS_EFATAL with err set. */
int mnats_open(const struct ef_config *cfg, struct mnats **out, char *err, size_t errlen);
/* Closes the connection and shuts libnats down (waiting for its threads, whose callbacks
 * use mn): once, on the way out. Accepts NULL. */
void mnats_close(struct mnats *mn);

/* (Re)creates the consumer so that it delivers from stream sequence `from`. */
int mnats_subscribe(struct mnats *mn, uint64_t from, char *err, size_t errlen);

/* Waits up to timeout_ms (0: only what the client already holds) for the next message.
 * 1 with *m filled and *stream_last set to the stream's last sequence as the message's
 * metadata tells it; 0 on timeout; MNATS_ERETRY when the consumer must be recreated. */
int mnats_next(struct mnats *mn, int timeout_ms, struct mirror_msg *m, uint64_t *stream_last,
               char *err, size_t errlen);
/* Frees the message mnats_next returned (also done by the next mnats_next). */
void mnats_release(struct mnats *mn);

/* Whether the stream holds a message at seq: 1 (with its Eventfold-Crc32c header's value in
 * crc, "" when absent; cap >= 9), 0 (the stream has no such message), MNATS_ERETRY
 * (also when there is no such stream). */
int mnats_lookup(struct mnats *mn, uint64_t seq, char *crc, size_t cap, char *err, size_t errlen);

#endif
