/* rstatus: the status document of GET /api/status and `eventfoldctl status`.
 *
 *   {"log": {"head_position", "segments", "bytes"},
 *    "read_model": {"position", "lag_events"}, "dead_letters",
 *    "snapshots": [{"position", "taken_at", "bytes"}],
 *    "write_snapshots": [the same for DIR/write/snapshots],
 *    "replica": {"stream", "lag_events"}   (replicas only),
 *    "relays": [{"sink", "position", "lag_events"}] (running relays, relay_state.h)}
 *
 * One function renders it for both, so the two cannot drift apart. lag_events is the log
 * head minus the read position (0 if the model is somehow ahead, which cannot happen for a
 * model built from durable records).
 *
 * On a read replica (DIR/replica, util/replica.h), "replica" says which stream it copies and
 * how far behind it is: lag_events is the stream's last sequence as eventfold-mirror last saw
 * it (DIR/mirror.state) minus the replica log's head (0 when not behind, or before the mirror
 * ever wrote its state). /metrics adds the last position the mirror made durable
 * (eventfold_mirror_position). How far the read model is behind the replica's log is
 * read_model.lag_events, as on the leader.
 */
#ifndef EF_RSTATUS_H
#define EF_RSTATUS_H

#include <stdint.h>

#include "util/sbuf.h"

struct log;
struct rmodel_txn;

struct rstatus {
    uint64_t head, segments, bytes, position, dead_letters, snapshots;
    int replica; /* 1 on a read replica: the fields below are set */
    char replica_stream[256];
    uint64_t mirror_position, stream_last, replica_lag;
};

/* Gathers the figures: lg may be a read-only handle; txn a read transaction. */
int rstatus_collect(struct log *lg, struct rmodel_txn *txn, const char *data_dir, struct rstatus *st);
/* Appends the JSON document (also lists the snapshots from data_dir). */
int rstatus_render(const struct rstatus *st, const char *data_dir, struct sbuf *out);

#endif
