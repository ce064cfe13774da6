/* relay_state: a relay's progress, as the relay writes it and status/metrics read it.
 *
 * Files in the data directory, one pair per sink (SINK = "nats", "kafka", ...):
 *   DATA/relay-SINK.lock   held by the running relay: an open-file-description (OFD) write
 *                          lock on the whole file (fcntl F_OFD_SETLK). It dies with the
 *                          relay's last descriptor, also on kill -9. Readers test it with
 *                          F_OFD_GETLK, which takes no lock, so looking never disturbs a
 *                          relay that is starting.
 *   DATA/relay-SINK.state  the progress, a few `key=value` lines, replaced whole (written
 *                          under a temporary name, renamed over):
 *                            sink=nats
 *                            position=1234        highest position the sink confirmed
 *                            pid=4321
 *                            updated_ms=1765000000000   wall clock of the last update
 *                          It is advisory (not fsync'd): after a crash the relay asks the
 *                          destination where it stands, never this file.
 *
 * A relay is "running" when its lock is held; only running relays are listed in
 * /api/status ("relays": [{"sink", "position", "lag_events"}]) and /metrics
 * (eventfold_relay_position{sink="..."}, eventfold_relay_lag_events{sink="..."}).
 */
#ifndef EF_RELAY_STATE_H
#define EF_RELAY_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "util/sbuf.h"

#define RELAY_SINK_NAME_MAX 32
#define RELAY_STATE_MAX 16 /* sinks listed at most */

struct relay_state {
    char sink[RELAY_SINK_NAME_MAX];
    uint64_t position;
    int64_t pid;
    int64_t updated_ms;
};

/* Takes DATA/relay-SINK.lock (creating it). Returns 0 with *fd set (keep it open while
 * running; closing it releases the lock), -EBUSY when another process holds it, or a
 * negative errno. */
int relay_state_lock(const char *data_dir, const char *sink, int *fd);

/* Replaces DATA/relay-SINK.state with st's values. 0 or a negative errno. */
int relay_state_write(const char *data_dir, const struct relay_state *st);

/* Reads DATA/relay-SINK.state into *st. 0, -ENOENT when there is none, -EINVAL when it is
 * malformed, or a negative errno. */
int relay_state_read(const char *data_dir, const char *sink, struct relay_state *st);

/* 1 if a process holds DATA/relay-SINK.lock, 0 if not (or there is no lock file). */
int relay_state_running(const char *data_dir, const char *sink);

/* The running relays' states (from the state files whose lock is held), sorted by sink
 * name, at most max. Returns how many were stored; problems are skipped (a status page
 * shows what it can). */
size_t relay_state_list(const char *data_dir, struct relay_state *out, size_t max);

/* Appends ,"relays":[{"sink","position","lag_events"}...] to a JSON object being written
 * (head = the log head, for the lag). */
void relay_state_render_status(const char *data_dir, uint64_t head, struct sbuf *out);

/* Appends the Prometheus gauges eventfold_relay_position and eventfold_relay_lag_events,
 * one sample per running relay labelled {sink="..."}. */
void relay_state_render_metrics(const char *data_dir, uint64_t head, struct sbuf *out);

#endif
