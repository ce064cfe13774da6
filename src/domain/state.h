/* state: what the command side knows about each user, item and order.
 *
 * These are the values of the write model (src/write/model.h stores them in LMDB) and the
 * inputs of the shop rules (shop.h). Invariants, kept by the rules and checked by apply:
 *  - user.balance >= 0
 *  - item.available, item.reserved, item.sold >= 0; an item's reserved equals the summed
 *    quantity of its lines in created or paid orders, sold that of shipped or delivered ones
 *  - order.amount = sum of quantity * price over its lines; 1 <= nlines <= STATE_LINES_MAX
 *  - version >= 1 for anything that exists: the number of events in its stream
 */
#ifndef EF_STATE_H
#define EF_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "domain/command.h"
#include "domain/vocab.h" /* enum order_status */

/* "created", "paid", ...; "unknown" for anything else. */
const char *order_status_name(int status);
/* Parses a status name; returns 0 or -1. */
int order_status_parse(const char *s, enum order_status *out);

struct user_state {
    int64_t balance;
    uint64_t version;
};

struct item_state {
    char name[CMD_STR_MAX + 1];
    char category[CMD_STR_MAX + 1];
    int64_t price;
    int64_t available;
    int64_t reserved;
    int64_t sold;
    uint64_t version;
};

struct order_line_state {
    char item_id[CMD_ID_MAX + 1];
    int64_t quantity;
    int64_t price; /* unit price at the time the order was created */
};

#define STATE_LINES_MAX CMD_LINES_MAX

struct order_state {
    char user_id[CMD_ID_MAX + 1];
    enum order_status status;
    int64_t amount;
    uint64_t version;
    size_t nlines;
    struct order_line_state lines[STATE_LINES_MAX];
};

/* The invariants above that a state satisfies by itself, for assert(): the write model
 * stores no state that fails them (write/model.c), since apply refuses every event that
 * would break them. Not included: an item's reserved and sold against its orders (they span
 * records: apply keeps them, the torture's log checker and the unit tests check them), and
 * an order's amount against its lines (a schema-1 line takes its price from the item when
 * applied, so an old log need not match: the shop computes the amount of every new order). */
static inline int user_state_ok(const struct user_state *u)
{
    return u->balance >= 0 && u->version >= 1;
}

static inline int item_state_ok(const struct item_state *it)
{
    return it->available >= 0 && it->reserved >= 0 && it->sold >= 0 && it->version >= 1;
}

static inline int order_state_ok(const struct order_state *o)
{
    if (o->nlines < 1 || o->nlines > STATE_LINES_MAX || o->version < 1 || o->amount < 0 ||
        o->status < ORDER_CREATED || o->status > ORDER_CANCELLED)
        return 0;
    for (size_t i = 0; i < o->nlines; i++)
        if (o->lines[i].quantity < 1)
            return 0;
    return 1;
}

#endif
