/* rstatus: the status document of GET /api/status and `eventfoldctl status`.
 *
 *   {"log": {"head_position", "segments", "bytes"},
 *    "read_model": {"position", "lag_events"}, "dead_letters",
 *    "snapshots": [{"position", "taken_at", "bytes"}],
 *    "write_snapshots": [the same for DIR/write/snapshots],
 *    "relays": [{"sink", "position", "lag_events"}] (running relays, relay_state.h)}
 *
 * One function renders it for both, so the two cannot drift apart. lag_events is the log
 * head minus the read position (0 if the model is somehow ahead, which cannot happen for a
 * model built from durable records).
 */
#ifndef EF_RSTATUS_H
#define EF_RSTATUS_H

#include <stdint.h>

#include "util/sbuf.h"

struct log;
struct rm_txn;

struct rstatus {
    uint64_t head, segments, bytes, position, dead_letters, snapshots;
};

/* Gathers the figures: lg may be a read-only handle; txn a read transaction. */
int rstatus_collect(struct log *lg, struct rm_txn *txn, const char *data_dir, struct rstatus *st);
/* Appends the JSON document (also lists the snapshots from data_dir). */
int rstatus_render(const struct rstatus *st, const char *data_dir, struct sbuf *out);

#endif
