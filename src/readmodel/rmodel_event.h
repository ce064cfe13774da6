/* rmodel_event: parses the data of an event (doc/events.md) into typed fields for the folds.
 *
 * Event types, their names and schema versions are domain/vocab.h's (the command side
 * writes with the same list). One table here adds what the folds need of each type: the
 * projection it belongs to (named in dead letters) and its required fields. Parsing checks
 * the schema and the presence and JSON type of every required field, so a fold handler
 * never meets a missing field: whatever fails here becomes a dead letter with the reason.
 * OrderCreated schema 1 lines carry only item_id and quantity: name, category and price
 * are left empty for the caller to upcast from the item (rmodel_order_apply).
 */
#ifndef EF_RM_EVENT_H
#define EF_RM_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "domain/vocab.h" /* enum ev_type */
#include "log/record.h"
#include "readmodel/rmodel_layout.h"
#include "util/sbuf.h"

struct rmodel_ev {
    enum ev_type type;
    int schema;
    const char *projection;
    struct rmodel_str order_id, user_id, item_id, name, category;
    int64_t amount, balance, price, quantity, available, refunded;
    size_t nlines;
    struct rmodel_line *lines; /* capacity kept across parses */
    size_t lines_cap;
    int upcast; /* 1: lines lack name/category/price (OrderCreated v1) */
    struct sbuf arena; /* the decoded strings point into it */
};

/* Tests only: makes schema versions up to max acceptable for type (parsed as the current
 * one), standing in for an upgrade that ships an upcaster; returns the previous maximum.
 * Not thread-safe. */
int rmodel_ev_set_max_schema(enum ev_type type, int max);

/* Parses rec into ev with yajl's streaming parser (no tree; no allocation once warm),
 * reusing ev's memory from a previous parse; a zeroed rmodel_ev is ready for use. Returns 0,
 * or 1 with a one-line reason in reason (unknown type, unknown schema, bad JSON, missing
 * or mistyped field, nesting over 32). Strings in ev point into rec's data or into ev's
 * memory: they are valid until the next parse or rmodel_ev_free, and while rec's data is. */
int rmodel_ev_parse(struct rmodel_ev *ev, const struct log_record *rec, struct sbuf *reason);

/* The parsers behind rmodel_ev_parse: a fast path for the JSON eventfold writes (ASCII
 * strings without escapes, integers of up to 18 digits), which gives up on anything else,
 * and yajl, which then parses the whole document again. Both must give the same result;
 * tests and the fuzz harness call each alone to check that. */
enum rmodel_ev_parser {
    RMODEL_EV_PARSE_AUTO, /* the fast path, and yajl where it gives up (rmodel_ev_parse) */
    RMODEL_EV_PARSE_FAST, /* the fast path alone */
    RMODEL_EV_PARSE_YAJL, /* yajl alone */
};
#define RMODEL_EV_GAVE_UP 2
/* As rmodel_ev_parse with the parser chosen. With RMODEL_EV_PARSE_FAST, returns
 * RMODEL_EV_GAVE_UP (reason empty, ev's fields meaningless) where the fast path gives up. */
int rmodel_ev_parse_with(struct rmodel_ev *ev, const struct log_record *rec, struct sbuf *reason,
                         enum rmodel_ev_parser parser);
void rmodel_ev_free(struct rmodel_ev *ev);

#endif
