/* rmodel_event: parses the data of an event (doc/events.md) into typed fields for the folds.
 *
 * One table describes every event type: its name, the schema versions it understands, the
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

#include "log/record.h"
#include "readmodel/rmodel_layout.h"
#include "util/sbuf.h"

enum rmodel_ev_type {
    RMODEL_EV_USER_REGISTERED,
    RMODEL_EV_FUNDS_DEPOSITED,
    RMODEL_EV_ITEM_ADDED,
    RMODEL_EV_ITEM_RESTOCKED,
    RMODEL_EV_ORDER_CREATED,
    RMODEL_EV_PAYMENT_PROCESSED,
    RMODEL_EV_ORDER_SHIPPED,
    RMODEL_EV_ORDER_DELIVERED,
    RMODEL_EV_ORDER_CANCELLED,
    RMODEL_EV_COUNT
};

struct rmodel_ev {
    enum rmodel_ev_type type;
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

/* The current schema version of each type (what events written today carry). */
int rmodel_ev_current_schema(enum rmodel_ev_type type);

/* Tests only: makes schema versions up to max acceptable for type (parsed as the current
 * one), standing in for an upgrade that ships an upcaster; returns the previous maximum.
 * Not thread-safe. */
int rmodel_ev_set_max_schema(enum rmodel_ev_type type, int max);

/* Parses rec into ev with yajl's streaming parser (no tree; no allocation once warm),
 * reusing ev's memory from a previous parse; a zeroed rmodel_ev is ready for use. Returns 0,
 * or 1 with a one-line reason in reason (unknown type, unknown schema, bad JSON, missing
 * or mistyped field, nesting over 32). Strings in ev point into rec's data or into ev's
 * memory: they are valid until the next parse or rmodel_ev_free, and while rec's data is. */
int rmodel_ev_parse(struct rmodel_ev *ev, const struct log_record *rec, struct sbuf *reason);
void rmodel_ev_free(struct rmodel_ev *ev);

#endif
