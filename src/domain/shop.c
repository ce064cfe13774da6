#include <config.h>

#include "domain/shop.h"

#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <string.h>

void shop_view_clear(struct shop_view *v)
{
    memset(v, 0, offsetof(struct shop_view, line_items));
}

uint64_t shop_version(const struct command *cmd, const struct shop_view *v)
{
    switch (cmd->kind) {
    case CMD_REGISTER_USER:
    case CMD_DEPOSIT:
        return v->user_found ? v->user.version : 0;
    case CMD_ADD_ITEM:
    case CMD_RESTOCK:
        return v->item_found ? v->item.version : 0;
    default:
        return v->order_found ? v->order.version : 0;
    }
}

static int not_found(struct problem *p, const char *what, const char *id)
{
    problem_set(p, 404, "not_found", "%s '%s' does not exist", what, id);
    return -1;
}

static int overflow(struct problem *p, const char *field, const char *what)
{
    problem_set(p, 400, "validation_failed", "%s would overflow", what);
    problem_add_error(p, field, "%s would overflow a 64-bit integer", what);
    return -1;
}

static void begin(struct event *ev, enum ev_type type, const struct command *cmd, uint64_t version)
{
    event_clear(ev);
    ev->type = type;
    ev->schema = vocab_event_schema(type);
    ev->version = version + 1;
    memcpy(ev->id, cmd->id, sizeof ev->id);
}

static int decide_register(const struct command *c, const struct shop_view *v, struct event *ev,
                           struct problem *p)
{
    if (v->user_found) {
        problem_set(p, 409, "already_exists", "user '%s' already exists", c->id);
        return -1;
    }
    begin(ev, EV_USER_REGISTERED, c, 0);
    memcpy(ev->name, c->name, sizeof ev->name);
    ev->has_email = c->has_email;
    memcpy(ev->email, c->email, sizeof ev->email);
    return 0;
}

static int decide_deposit(const struct command *c, const struct shop_view *v, struct event *ev,
                          struct problem *p)
{
    if (!v->user_found)
        return not_found(p, "user", c->id);
    /* Every money total of the read models is bounded by the sum of all deposits
     * (doc/events.md, "Money"): keeping that sum in 64 bits keeps them all there. */
    int64_t after, total;
    if (__builtin_add_overflow(v->deposited, c->amount, &total))
        return overflow(p, "amount_cents", "the total of all deposits");
    if (__builtin_add_overflow(v->user.balance, c->amount, &after))
        return overflow(p, "amount_cents", "the balance");
    begin(ev, EV_FUNDS_DEPOSITED, c, v->user.version);
    ev->amount = c->amount;
    ev->balance = after;
    return 0;
}

static int decide_add_item(const struct command *c, const struct shop_view *v, struct event *ev,
                           struct problem *p)
{
    if (v->item_found) {
        problem_set(p, 409, "already_exists", "item '%s' already exists", c->id);
        return -1;
    }
    begin(ev, EV_ITEM_ADDED, c, 0);
    memcpy(ev->name, c->name, sizeof ev->name);
    memcpy(ev->category, c->category, sizeof ev->category);
    ev->price = c->amount;
    return 0;
}

static int decide_restock(const struct command *c, const struct shop_view *v, struct event *ev,
                          struct problem *p)
{
    if (!v->item_found)
        return not_found(p, "item", c->id);
    int64_t after;
    if (__builtin_add_overflow(v->item.available, c->amount, &after))
        return overflow(p, "quantity", "the stock");
    begin(ev, EV_ITEM_RESTOCKED, c, v->item.version);
    ev->quantity = c->amount;
    ev->available = after;
    return 0;
}

/* Checks order: the order id is free, the user exists, every item exists (first missing
 * one named), every line is in stock (first short one named), the amount fits. */
static int decide_create_order(const struct command *c, const struct shop_view *v,
                               struct event *ev, struct problem *p)
{
    assert(c->id[0] && c->nlines >= 1 && c->nlines <= STATE_LINES_MAX);
    if (v->order_found) {
        problem_set(p, 409, "already_exists", "order '%s' already exists", c->id);
        return -1;
    }
    if (!v->user_found)
        return not_found(p, "user", c->user_id);
    for (size_t i = 0; i < c->nlines; i++)
        if (!v->line_found[i])
            return not_found(p, "item", c->lines[i].item_id);
    int64_t amount = 0;
    for (size_t i = 0; i < c->nlines; i++) {
        const struct item_state *it = &v->line_items[i];
        if (c->lines[i].quantity > it->available) {
            problem_set(p, 409, "insufficient_stock",
                        "item '%s': %" PRId64 " requested, %" PRId64 " available",
                        c->lines[i].item_id, c->lines[i].quantity, it->available);
            return -1;
        }
        int64_t line;
        if (__builtin_mul_overflow(it->price, c->lines[i].quantity, &line) ||
            __builtin_add_overflow(amount, line, &amount))
            return overflow(p, "items", "the order amount");
    }
    begin(ev, EV_ORDER_CREATED, c, 0);
    memcpy(ev->user_id, c->user_id, sizeof ev->user_id);
    ev->nlines = c->nlines;
    for (size_t i = 0; i < c->nlines; i++) {
        struct ev_line *l = &ev->lines[i];
        memcpy(l->item_id, c->lines[i].item_id, sizeof l->item_id);
        memcpy(l->name, v->line_items[i].name, sizeof l->name);
        memcpy(l->category, v->line_items[i].category, sizeof l->category);
        l->quantity = c->lines[i].quantity;
        l->price = v->line_items[i].price;
    }
    ev->amount = amount;
    return 0;
}

static int bad_transition(struct problem *p, const struct command *c, const char *action,
                          enum order_status st)
{
    problem_set(p, 409, "invalid_transition", "cannot %s order '%s': it is %s", action, c->id,
                order_status_name(st));
    return -1;
}

static int decide_pay(const struct command *c, const struct shop_view *v, struct event *ev,
                      struct problem *p)
{
    const struct order_state *o = &v->order;
    if (o->status != ORDER_CREATED)
        return bad_transition(p, c, "pay", o->status);
    if (!v->user_found)
        return not_found(p, "user", o->user_id);
    if (v->user.balance < o->amount) {
        problem_set(p, 409, "insufficient_funds",
                    "user '%s' has %" PRId64 " cents, the order costs %" PRId64,
                    o->user_id, v->user.balance, o->amount);
        return -1;
    }
    begin(ev, EV_PAYMENT_PROCESSED, c, o->version);
    memcpy(ev->user_id, o->user_id, sizeof ev->user_id);
    ev->amount = o->amount;
    ev->balance = v->user.balance - o->amount;
    return 0;
}

static int decide_ship(const struct command *c, const struct shop_view *v, struct event *ev,
                       struct problem *p)
{
    if (v->order.status != ORDER_PAID)
        return bad_transition(p, c, "ship", v->order.status);
    begin(ev, EV_ORDER_SHIPPED, c, v->order.version);
    return 0;
}

static int decide_deliver(const struct command *c, const struct shop_view *v, struct event *ev,
                          struct problem *p)
{
    if (v->order.status != ORDER_SHIPPED)
        return bad_transition(p, c, "deliver", v->order.status);
    begin(ev, EV_ORDER_DELIVERED, c, v->order.version);
    return 0;
}

static int decide_cancel(const struct command *c, const struct shop_view *v, struct event *ev,
                         struct problem *p)
{
    const struct order_state *o = &v->order;
    if (o->status != ORDER_CREATED && o->status != ORDER_PAID)
        return bad_transition(p, c, "cancel", o->status);
    int64_t refund = o->status == ORDER_PAID ? o->amount : 0;
    if (refund) {
        int64_t after;
        if (!v->user_found)
            return not_found(p, "user", o->user_id);
        if (__builtin_add_overflow(v->user.balance, refund, &after))
            return overflow(p, "refunded_cents", "the refunded balance");
    }
    begin(ev, EV_ORDER_CANCELLED, c, o->version);
    memcpy(ev->user_id, o->user_id, sizeof ev->user_id);
    ev->has_reason = c->has_reason;
    memcpy(ev->reason, c->reason, sizeof ev->reason);
    ev->refunded = refund;
    ev->previous_status = o->status;
    return 0;
}

typedef int (*decide_fn)(const struct command *, const struct shop_view *, struct event *,
                         struct problem *);

static const decide_fn deciders[CMD_KIND_COUNT] = {
    [CMD_REGISTER_USER] = decide_register,
    [CMD_DEPOSIT] = decide_deposit,
    [CMD_ADD_ITEM] = decide_add_item,
    [CMD_RESTOCK] = decide_restock,
    [CMD_CREATE_ORDER] = decide_create_order,
    [CMD_PAY] = decide_pay,
    [CMD_SHIP] = decide_ship,
    [CMD_DELIVER] = decide_deliver,
    [CMD_CANCEL] = decide_cancel,
};

int shop_decide(const struct command *cmd, const struct shop_view *v, struct event *ev,
                struct problem *p)
{
    assert(cmd->kind < CMD_KIND_COUNT);
    /* The order actions all need the order: one check here instead of one per action. */
    if (cmd->kind >= CMD_PAY && !v->order_found)
        return not_found(p, "order", cmd->id);
    int rc = deciders[cmd->kind](cmd, v, ev, p);
    /* What the rules promise of every event they let through (state.h): no wallet below
     * zero after a payment, no order without lines or with a negative amount. */
    assert(rc != 0 || ev->version >= 1);
    assert(rc != 0 || ev->type != EV_PAYMENT_PROCESSED || ev->balance >= 0);
    assert(rc != 0 || ev->type != EV_ORDER_CREATED ||
           (ev->nlines >= 1 && ev->nlines <= STATE_LINES_MAX && ev->amount >= 0));
    return rc;
}
