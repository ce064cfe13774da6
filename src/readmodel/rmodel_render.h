/* rmodel_render: the API's JSON of one log record (API.md's EVENT).
 *
 * {"position","stream","version","type","schema_version","at","data"}: what GET
 * /api/events and /api/orders/{id}/events list, what the relay publishes and what the mirror
 * checks a relayed message against. It needs no transaction: it reads the record only.
 *
 * Guarantee: data is copied verbatim (it was validated JSON when written), so the same
 * record always renders to the same bytes.
 */
#ifndef EF_RMODEL_RENDER_H
#define EF_RMODEL_RENDER_H

#include "log/record.h"
#include "util/sbuf.h"

/* Appends the JSON EVENT of rec to out. Data is appended verbatim even when empty (no
 * command writes such a record): the mirror renders a record without data to learn the
 * prefix that precedes a relayed message's data (mirror/mcheck.c). */
void rmodel_render_event(const struct log_record *rec, struct sbuf *out);
/* The EVENT as eventfoldctl dump writes it: "data": null for a record without data, and
 * "meta" (stored JSON, copied as it is) when the record has one other than {}. */
void rmodel_render_event_meta(const struct log_record *rec, struct sbuf *out);

#endif
