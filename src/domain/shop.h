/* shop: the business rules of API.md section 4, as a pure function.
 *
 * shop_decide() takes a parsed command and the state it names (loaded by the write model
 * under the append lock, so nothing changes underneath) and either produces the one event
 * the command appends, or a problem: 404 not_found naming the missing user/item/order, 409
 * already_exists / insufficient_stock / insufficient_funds / invalid_transition, or 400
 * validation_failed when an amount would overflow int64 (balance + deposit, stock + restock,
 * the order amount, a refund). It does no I/O and touches no global state, so every rule is
 * unit-testable on plain structs.
 *
 * If-Match is not a rule of the shop: the write side compares it with shop_version() first.
 */
#ifndef EF_SHOP_H
#define EF_SHOP_H

#include "domain/command.h"
#include "domain/event.h"
#include "domain/problem.h"
#include "domain/state.h"

/* The state a command is decided on. A *_found of 0 means "does not exist". Which parts are
 * loaded depends on the command (shop_needs_*). */
struct shop_view {
    int user_found;
    struct user_state user;     /* RegisterUser/Deposit: the id; Pay/Cancel/CreateOrder: the order's user */
    int64_t deposited;          /* Deposit: the sum of all deposits so far (write/model.h) */
    int item_found;
    struct item_state item;     /* AddItem/Restock */
    int order_found;
    struct order_state order;   /* CreateOrder (the id, if given) and the order actions */
    int line_found[STATE_LINES_MAX];
    /* Last: line_items[i] is meaningful only when line_found[i] (shop_view_clear leaves
     * the 56 KiB array alone). */
    struct item_state line_items[STATE_LINES_MAX]; /* CreateOrder: item of each line */
};

/* Marks everything absent without touching line_items. */
void shop_view_clear(struct shop_view *v);

/* The version of the stream the command names, as the view holds it (0: not created). */
uint64_t shop_version(const struct command *cmd, const struct shop_view *v);

/* Decides cmd on v. Returns 0 and fills *ev (type, schema, stream version, data; the caller
 * sets position, time and meta), or -1 with *p set. */
int shop_decide(const struct command *cmd, const struct shop_view *v, struct event *ev,
                struct problem *p);

#endif
