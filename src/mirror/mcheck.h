/* mcheck: turns one relayed message back into the exact log record, or says why not.
 *
 * The relay (src/relay/sink.h) sends each durable record as EVENT JSON (as /api/events
 * renders it, "data" last and verbatim) with headers carrying the rest of the record and
 * its CRC32C. mcheck rebuilds the record from the headers, renders the body's prefix
 * itself with the same renderer as /api/events (rmodel_render_event) and checks that the body
 * starts with exactly that prefix; the data is what lies between the prefix and the final
 * '}'. It then encodes the record at the expected position and compares its CRC32C with
 * the relay's: a record the mirror appends is therefore byte for byte the leader's.
 *
 * Pure (no I/O, no NATS), so that tests can feed it any message.
 */
#ifndef EF_MCHECK_H
#define EF_MCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "log/record.h"
#include "util/sbuf.h"

/* The mirror's codes (its range in util/ef_error.h): these, mnats.h's and mirror.h's;
 * mirror_strerror() (mirror_error.h) names them. */
enum {
    MIRROR_EGAP = -14001,      /* the message is past the expected position: one is missing */
    MIRROR_EDISAGREE = -14002, /* the message is not the record it claims to be */
};

/* The relay's headers, in sink.h's order. */
enum mirror_hdr {
    MH_POSITION,
    MH_STREAM,
    MH_TYPE,
    MH_SCHEMA,
    MH_STREAM_VERSION,
    MH_TIMESTAMP,
    MH_META,
    MH_CRC,
    MH_COUNT
};
extern const char *const mcheck_header_names[MH_COUNT];

/* One message as the consumer got it. hdr[i] is the value of header mcheck_header_names[i]
 * (NUL-terminated), or NULL when absent; pointers owned by the caller. */
struct mirror_msg {
    uint64_t seq; /* the message's stream sequence */
    const char *hdr[MH_COUNT];
    const char *body;
    size_t body_len;
};

/* Scratch memory reused across messages; zero-initialize, free with mcheck_free. */
struct mcheck {
    uint32_t crc; /* the CRC32C of the last record mcheck_rebuild accepted */
    struct sbuf prefix;
    unsigned char *enc;
    size_t enc_cap;
};
void mcheck_free(struct mcheck *c);

/* Rebuilds the record that must be at position `expect` from m. Returns 0 with *ev filled
 * (pointers into m and c, valid until the next call or until m's memory goes);
 * MIRROR_EGAP when m->seq > expect; MIRROR_EDISAGREE when m->seq < expect (the caller
 * drops redeliveries before calling) or anything about the message is wrong. On error err
 * holds one line naming the position. */
int mcheck_rebuild(struct mcheck *c, const struct mirror_msg *m, uint64_t expect,
                   struct log_event *ev, char *err, size_t errlen);

/* The CRC32C a record of ev at position would carry (what Eventfold-Crc32c states). 0 on
 * success, MIRROR_EDISAGREE when ev is over a record limit. */
int mcheck_record_crc(struct mcheck *c, const struct log_event *ev, uint64_t position,
                      uint32_t *crc);

#endif
