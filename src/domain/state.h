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

#endif
