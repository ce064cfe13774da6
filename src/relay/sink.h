/* sink: what eventfold-relay publishes to (API.md section 9), one implementation per engine.
 *
 * The relay (relay.c) owns everything the sinks share: it reads durable records only (those
 * covered by a completed fdatasync, as the tailer does), renders each into a relay_event,
 * hands them to the sink in log order, tracks what the sink has confirmed, backs off on
 * errors, and reports progress (/api/status "relays", /metrics). A sink only knows its
 * engine: how to find where the destination stands, how to send, and what was confirmed.
 *
 * Protocol, as the relay drives it:
 *   open -> resume -> (publish* -> confirmed)* -> close
 *   - resume() connects (or reconnects) and returns the last position the destination
 *     holds, after checking that what it holds agrees with the log (the relay hands it a
 *     reader for that). The relay then publishes from that position + 1.
 *   - publish() queues one event; it may block while the sink's in-flight window is full,
 *     but never longer than timeout_ms. Events arrive in log order, each exactly once per
 *     resume.
 *   - confirmed() returns the highest position the destination has durably taken (all
 *     positions up to it are there, once each, in order).
 *   - After any error (RELAY_ERETRY) the relay backs off and calls resume() again: the sink
 *     must drop whatever it still had in flight and find out afresh where the destination
 *     stands. RELAY_EFATAL stops the relay with the sink's message (exit 1).
 *
 * Errors: 0 or a negative code; the sink's message for the last error is in the `err`
 * buffer the relay passes (one line, naming the position where there is one).
 */
#ifndef EF_RELAY_SINK_H
#define EF_RELAY_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "log/record.h"
#include "util/config.h"

struct log;

/* The relay's codes (its range in util/ef_error.h); the sinks and the relay also pass on the
 * log's codes and negative errno values. The cause goes to the caller's err buffer. */
enum {
    RELAY_ERETRY = -13001, /* transient (connection lost, timeout, leader moved): back off, resume */
    RELAY_EFATAL = -13002, /* the destination disagrees with the log, or bad configuration: stop */
};
/* Returns a static description of a code: the relay's own, or ef_strerror()'s for any other.
 * (Defined in relay.c, which every program with a sink links.) */
const char *relay_strerror(int err);

/* The headers every message carries, filled by the relay, in this order (values are ASCII
 * without CR/LF; numbers in decimal). The first four are the contract's (API.md section 9);
 * the rest let a replica rebuild the exact record and check it end to end:
 *   Eventfold-Position, Eventfold-Stream, Eventfold-Type, Eventfold-Schema-Version,
 *   Eventfold-Stream-Version, Eventfold-Timestamp-Ms,
 *   Eventfold-Meta      the record's meta bytes as they are (compact printable-ASCII JSON,
 *                       as the write side produces it; the relay stops on a record whose
 *                       meta has other bytes), "" when empty,
 *   Eventfold-Crc32c    the record's CRC32C, 8 lowercase hex digits.
 * The body is EVENT JSON, whose last member is always "data" written verbatim from the
 * record: a replica renders the prefix from the headers, checks the body starts with it,
 * takes the data bytes between it and the final '}', re-encodes the record and compares
 * its CRC32C with Eventfold-Crc32c. */
#define RELAY_HEADERS 8
struct relay_header {
    const char *name;
    const char *value; /* NUL-terminated */
};

/* One durable event, as the relay hands it to a sink. Valid until publish() returns: a
 * sink that keeps it longer (an async send) copies what it needs. */
struct relay_event {
    uint64_t position;
    const struct log_record *rec; /* the verified record (stream, type, meta, data, ...) */
    const char *body;             /* EVENT JSON exactly as /api/events renders it */
    size_t body_len;
    const char *category;         /* "user", "item" or "order": the stream's prefix */
    size_t category_len;
    uint32_t record_crc;          /* the record's CRC32C, for end-to-end integrity checks */
    struct relay_header headers[RELAY_HEADERS];
};

struct relay_sink_ops {
    const char *name; /* "nats", "kafka": the --sink value */
    /* Reads the sink's settings from cfg; connects lazily (resume). */
    int (*open)(const struct ef_config *cfg, void **sink, char *err, size_t errlen);
    /* (Re)connects, checks the destination against the log, sets *last. */
    int (*resume)(void *sink, struct log *lg, uint64_t *last, char *err, size_t errlen);
    int (*publish)(void *sink, const struct relay_event *ev, int timeout_ms, char *err,
                   size_t errlen);
    /* Waits up to timeout_ms for confirmations; sets *confirmed. */
    int (*confirmed)(void *sink, int timeout_ms, uint64_t *confirmed, char *err, size_t errlen);
    void (*close)(void *sink); /* accepts NULL */
};

extern const struct relay_sink_ops relay_sink_nats;
extern const struct relay_sink_ops relay_sink_kafka;

#endif
