/* event: the shop's events (doc/events.md) as plain data, their JSON encoding in the log,
 * and the answer a command gets for the event it appended.
 *
 * One struct event carries any event type (enum ev_type; names and schema versions are in
 * domain/vocab.h); which fields are meaningful depends on type (see event_encode_data).
 * The command path encodes an event and applies it as it is; the catch-up and rebuild
 * paths decode the record and apply that. Decoding gives back exactly the event that was
 * encoded (the write tests compare a live model with a rebuilt one; tests/unit/check_vocab
 * checks every type and edge value), so the write model is a function of the log records
 * alone.
 *
 * event_response() is the answer to the command that appended an event: its status, body,
 * ETag version and Log-Position are functions of the event, so an idempotent repeat, even
 * one answered from an idempotency table rebuilt from the log, is byte-identical.
 */
#ifndef EF_EVENT_H
#define EF_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "domain/state.h"
#include "domain/vocab.h"
#include "log/record.h"
#include "util/sbuf.h"

#define EV_IDEM_KEY_MAX 128
#define EV_FINGERPRINT_LEN 16

struct ev_line {
    char item_id[CMD_ID_MAX + 1];
    char name[CMD_STR_MAX + 1];     /* schema 2; "" when decoded from schema 1 */
    char category[CMD_STR_MAX + 1]; /* schema 2 */
    int64_t quantity;
    int64_t price;                  /* schema 2; -1 when decoded from schema 1 */
};

struct event {
    enum ev_type type;
    uint16_t schema;
    uint64_t position;   /* log position (0 until known) */
    uint64_t version;    /* stream version after the event */
    int64_t at_ms;
    char id[CMD_ID_MAX + 1];      /* the stream's resource: user, item or order id */
    char user_id[CMD_ID_MAX + 1]; /* order events that name the user */
    char name[CMD_STR_MAX + 1];
    char email[CMD_STR_MAX + 1];
    char category[CMD_STR_MAX + 1];
    char reason[CMD_STR_MAX + 1];
    int has_email;
    int has_reason;
    int64_t amount;    /* amount_cents (deposit, order, payment) */
    int64_t balance;   /* balance_cents after (deposit, payment) */
    int64_t price;     /* price_cents (item added) */
    int64_t quantity;  /* restock quantity */
    int64_t available; /* available after restock */
    int64_t refunded;  /* refunded_cents (cancel) */
    enum order_status previous_status; /* cancel */
    /* meta: the command's Idempotency-Key and request fingerprint, when it had one. */
    int has_idem;
    char idem_key[EV_IDEM_KEY_MAX + 1];
    unsigned char fingerprint[EV_FINGERPRINT_LEN];
    size_t nlines;
    /* Last, and only lines[0..nlines) are meaningful: event_clear() leaves the rest alone
     * (the array is 60 KiB; zeroing it per command was a tenth of the CPU time). */
    struct ev_line lines[STATE_LINES_MAX];
};

/* Zeroes every field of ev except the unused tail of lines. */
void event_clear(struct event *ev);

/* "user-ID", "item-ID" or "order-ID" into out (at least 7 + CMD_ID_MAX + 1 bytes). */
void event_stream(const struct event *ev, char *out, size_t cap);
#define EV_STREAM_MAX (7 + CMD_ID_MAX + 1)

/* JSON data and meta of ev, appended to out, exactly as doc/events.md says. */
void event_encode_data(const struct event *ev, struct sbuf *out);
void event_encode_meta(const struct event *ev, struct sbuf *out);

/* Decodes a log record into *ev (type, schema, data, meta, position, version, time).
 * Returns 0; EVENT_UNKNOWN_TYPE for a type that is not a shop event (err says which); or
 * -1 with a one-line reason in err (unsupported schema, missing or malformed field). */
#define EVENT_UNKNOWN_TYPE (-2)
int event_decode(const struct log_record *rec, struct event *ev, char *err, size_t errlen);

/* The answer to the command that appended ev (ev->position and ev->version set):
 * *status is 201 or 200, the JSON body is appended to body. */
void event_response(const struct event *ev, int *status, struct sbuf *body);

#endif
