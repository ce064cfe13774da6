/* relay: publishes the durable log to one sink (sink.h), in log order, exactly once.
 *
 * Guarantees
 *  - Only durable records (<= log_durable(), covered by a completed fdatasync) are read and
 *    published, so nothing a power loss could take back from the log ever leaves it.
 *  - Records are handed to the sink in position order from where the sink says the
 *    destination stands (resume) + 1: the destination holds 1..N once each. The relay keeps
 *    no position of its own that could drift from the destination's.
 *  - The sink's window bounds what is in flight; confirmations are collected in batches
 *    (never one round trip per event). Progress (the confirmed position) goes to
 *    DATA/relay-SINK.state (relay_state.h) at most every RELAY_STATE_MS and on exit.
 *  - RELAY_ERETRY from the sink: back off (RELAY_BACKOFF_MIN_MS doubling to
 *    RELAY_BACKOFF_MAX_MS; reset once a resume succeeds), then resume. One log line when
 *    the relay starts failing and one when it recovers, not one per attempt: a relay that
 *    cannot reach its destination sleeps, it never spins.
 *  - RELAY_EFATAL (the destination disagrees with the log, bad configuration, a record a
 *    sink cannot carry) and a damaged log end relay_run() with the one-line cause.
 *  - *stop (a signal) ends the run: in-flight events get up to RELAY_STOP_WAIT_MS to be
 *    confirmed, then the state is written and relay_run() returns 0.
 *  - One relay per sink per data directory (relay_state_lock); a second gets -EBUSY.
 *
 * Caveat: the renderer rejects (RELAY_EFATAL) records whose stream, type or meta contain
 * bytes a message header cannot carry (anything but printable ASCII): the write side
 * never produces them, so such a record means the log is not what it should be.
 */
#ifndef EF_RELAY_H
#define EF_RELAY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/sink.h"
#include "util/config.h"
#include "util/sbuf.h"

#define RELAY_BACKOFF_MIN_MS 100
#define RELAY_BACKOFF_MAX_MS 5000
#define RELAY_BATCH 1024         /* events published between two confirmation checks */
#define RELAY_PUBLISH_TIMEOUT_MS 10000 /* a full window that does not drain: retry */
#define RELAY_STATE_MS 200       /* state file rewritten at most this often */
#define RELAY_STOP_WAIT_MS 2000  /* on SIGTERM, wait this long for confirmations */

struct relay_options {
    const char *data_dir;
    const struct ef_config *cfg;
    const struct relay_sink_ops *sink;
    volatile sig_atomic_t *stop; /* set by a signal handler */
};

/* Runs until *stop (returns 0) or a fatal error: returns a negative code with the one-line
 * cause in err (-EBUSY: another relay holds the lock). */
int relay_run(const struct relay_options *opt, char *err, size_t errlen);

/* --- rendering, shared by the sinks -------------------------------------------------- */

/* The buffers behind one relay_event: reused from event to event. Zero it to start;
 * relay_render_free() releases it. */
struct relay_render {
    struct sbuf body;
    struct sbuf encoded; /* the record re-encoded, for its CRC */
    char position[24], schema[8], stream_version[24], timestamp[24], crc[12];
    char *stream, *type, *meta; /* NUL-terminated copies */
    size_t stream_cap, type_cap, meta_cap;
};

/* Fills *ev from a verified record: body (EVENT JSON as /api/events renders it), category,
 * CRC and the RELAY_HEADERS headers (sink.h). ev's pointers are into r and rec: valid until
 * the next render into r or until rec's buffer changes. Returns 0, or RELAY_EFATAL with err
 * naming the position when a header value would not be printable ASCII. */
int relay_render_event(const struct log_record *rec, struct relay_render *r, struct relay_event *ev,
                       char *err, size_t errlen);
void relay_render_free(struct relay_render *r);

/* For a sink's resume check: reads the durable record at `position` from lg and renders
 * it into *ev. Returns 0, RELAY_EFATAL when position is beyond the durable head (err says
 * so) or the record cannot be rendered, or a log error (err from log_last_error). */
int relay_render_position(struct log *lg, uint64_t position, struct relay_render *r,
                          struct relay_event *ev, char *err, size_t errlen);

/* The value of header `name` in ev (NULL if absent). */
const char *relay_event_header(const struct relay_event *ev, const char *name);

#endif
