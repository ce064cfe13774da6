/* Unit tests of domain/shop, the business rules as a pure function, on plain structs:
 * each command's event (type, schema, stream version, the values after it), each refusal
 * (status, code, the id it names, the field of an overflow), the order life cycle as a
 * table (every action from every status: only the legal transitions pass), the boundaries
 * that keep the invariants of domain/state.h (no overselling: quantity == available passes,
 * one more is refused; no negative wallet: balance == amount passes, one cent short is
 * refused), the per-state invariant predicates of state.h, and a random walk that folds
 * the decided events into a model and checks those invariants after every step. */
#include <config.h>

#include <check.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/shop.h"

static struct shop_view *view;
static struct command *cmd;
static struct event *ev;
static struct problem prob;

static void setup(void)
{
    view = calloc(1, sizeof *view);
    cmd = calloc(1, sizeof *cmd);
    ev = calloc(1, sizeof *ev);
    ck_assert(view && cmd && ev);
    problem_init(&prob);
}

static void teardown(void)
{
    free(view);
    free(cmd);
    free(ev);
}

static void set_cmd(enum cmd_kind kind, const char *id, int64_t amount)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->kind = kind;
    snprintf(cmd->id, sizeof cmd->id, "%s", id);
    cmd->amount = amount;
}

static void add_line(const char *item, int64_t quantity)
{
    struct cmd_line *l = &cmd->lines[cmd->nlines++];
    snprintf(l->item_id, sizeof l->item_id, "%s", item);
    l->quantity = quantity;
}

static int decide(void)
{
    problem_init(&prob);
    return shop_decide(cmd, view, ev, &prob);
}

/* The command must be refused with status and code; the detail must mention `names`. */
static void expect_problem(int status, const char *code, const char *names)
{
    ck_assert_int_eq(decide(), -1);
    ck_assert_int_eq(prob.status, status);
    ck_assert_str_eq(prob.code, code);
    if (names)
        ck_assert_msg(strstr(prob.detail, names) != NULL, "detail '%s' does not name '%s'",
                      prob.detail, names);
}

static void expect_field(const char *field)
{
    ck_assert_uint_ge(prob.nerrors, 1);
    ck_assert_str_eq(prob.errors[0].field, field);
}

static void expect_event(enum ev_type type, uint64_t version)
{
    ck_assert_msg(decide() == 0, "refused: %d %s %s", prob.status, prob.code, prob.detail);
    ck_assert_int_eq(ev->type, type);
    ck_assert_uint_eq(ev->schema, vocab_event_schema(type));
    ck_assert_uint_eq(ev->version, version);
    ck_assert_str_eq(ev->id, cmd->id);
}

START_TEST(test_users)
{
    shop_view_clear(view);
    set_cmd(CMD_REGISTER_USER, "u1", 0);
    strcpy(cmd->name, "Ada");
    cmd->has_email = 1;
    strcpy(cmd->email, "ada@example.org");
    ck_assert_uint_eq(shop_version(cmd, view), 0);
    expect_event(EV_USER_REGISTERED, 1);
    ck_assert_str_eq(ev->name, "Ada");
    ck_assert_int_eq(ev->has_email, 1);
    ck_assert_str_eq(ev->email, "ada@example.org");
    view->user_found = 1;
    view->user.version = 1;
    expect_problem(409, "already_exists", "u1");

    set_cmd(CMD_DEPOSIT, "u1", 500);
    view->user = (struct user_state){ .balance = 100, .version = 3 };
    view->deposited = 1000;
    ck_assert_uint_eq(shop_version(cmd, view), 3);
    expect_event(EV_FUNDS_DEPOSITED, 4);
    ck_assert_int_eq(ev->amount, 500);
    ck_assert_int_eq(ev->balance, 600);
    /* Overflow of the balance, and of the sum of all deposits (which bounds every total). */
    view->user.balance = INT64_MAX - 499;
    expect_problem(400, "validation_failed", "balance");
    expect_field("amount_cents");
    view->user.balance = 0;
    view->deposited = INT64_MAX - 499;
    expect_problem(400, "validation_failed", "deposits");
    expect_field("amount_cents");
    view->deposited = INT64_MAX - 500;
    expect_event(EV_FUNDS_DEPOSITED, 4);
    view->user_found = 0;
    expect_problem(404, "not_found", "u1");
    ck_assert_uint_eq(shop_version(cmd, view), 0);
}
END_TEST

START_TEST(test_items)
{
    shop_view_clear(view);
    set_cmd(CMD_ADD_ITEM, "i1", 250);
    strcpy(cmd->name, "Brick");
    strcpy(cmd->category, "toys");
    expect_event(EV_ITEM_ADDED, 1);
    ck_assert_int_eq(ev->price, 250);
    ck_assert_str_eq(ev->category, "toys");
    view->item_found = 1;
    expect_problem(409, "already_exists", "i1");

    set_cmd(CMD_RESTOCK, "i1", 10);
    view->item.available = 5;
    view->item.version = 2;
    ck_assert_uint_eq(shop_version(cmd, view), 2);
    expect_event(EV_ITEM_RESTOCKED, 3);
    ck_assert_int_eq(ev->quantity, 10);
    ck_assert_int_eq(ev->available, 15);
    view->item.available = INT64_MAX - 9;
    expect_problem(400, "validation_failed", "stock");
    expect_field("quantity");
    view->item_found = 0;
    expect_problem(404, "not_found", "i1");
}
END_TEST

/* A view for CreateOrder of o1 by u1 with two lines: i1 (price 300, available a1) and
 * i2 (price 50, available a2). */
static void order_view(int64_t a1, int64_t a2)
{
    shop_view_clear(view);
    view->user_found = 1;
    view->user.version = 1;
    set_cmd(CMD_CREATE_ORDER, "o1", 0);
    strcpy(cmd->user_id, "u1");
    add_line("i1", 2);
    add_line("i2", 3);
    view->line_found[0] = view->line_found[1] = 1;
    view->line_items[0] = (struct item_state){ .name = "One", .category = "c", .price = 300,
                                               .available = a1, .version = 1 };
    view->line_items[1] = (struct item_state){ .name = "Two", .category = "d", .price = 50,
                                               .available = a2, .version = 1 };
}

START_TEST(test_create_order)
{
    order_view(2, 3); /* exactly what is available: no overselling, but allowed */
    expect_event(EV_ORDER_CREATED, 1);
    ck_assert_str_eq(ev->user_id, "u1");
    ck_assert_uint_eq(ev->nlines, 2);
    ck_assert_int_eq(ev->amount, 2 * 300 + 3 * 50);
    ck_assert_str_eq(ev->lines[1].item_id, "i2");
    ck_assert_str_eq(ev->lines[1].name, "Two");
    ck_assert_str_eq(ev->lines[1].category, "d");
    ck_assert_int_eq(ev->lines[1].price, 50);
    ck_assert_int_eq(ev->lines[0].quantity, 2);

    order_view(2, 2); /* one unit short on the second line */
    expect_problem(409, "insufficient_stock", "i2");
    order_view(1, 0); /* the first short line is named */
    expect_problem(409, "insufficient_stock", "i1");
    order_view(0, 0);
    view->line_items[0].available = -1; /* never sell from a negative count either */
    expect_problem(409, "insufficient_stock", "i1");

    order_view(5, 5);
    view->order_found = 1;
    expect_problem(409, "already_exists", "o1");
    order_view(5, 5);
    view->user_found = 0;
    expect_problem(404, "not_found", "u1");
    order_view(5, 5);
    view->line_found[1] = 0;
    expect_problem(404, "not_found", "i2");

    order_view(INT64_MAX, 5);
    view->line_items[0].price = INT64_MAX / 2 + 1; /* 2 units overflow */
    expect_problem(400, "validation_failed", "amount");
    expect_field("items");
    order_view(INT64_MAX, 5);
    view->line_items[0].price = INT64_MAX / 2; /* the lines together overflow */
    expect_problem(400, "validation_failed", "amount");
}
END_TEST

enum action { PAY, SHIP, DELIVER, CANCEL, ACTIONS };
static const enum cmd_kind action_kind[ACTIONS] = { CMD_PAY, CMD_SHIP, CMD_DELIVER, CMD_CANCEL };
static const enum ev_type action_event[ACTIONS] = { EV_PAYMENT_PROCESSED, EV_ORDER_SHIPPED,
                                                    EV_ORDER_DELIVERED, EV_ORDER_CANCELLED };

/* An existing order o1 of u1 (amount 700, version 4) in status st; u1 has 1000 cents. */
static void action_view(enum action a, enum order_status st)
{
    shop_view_clear(view);
    set_cmd(action_kind[a], "o1", 0);
    view->order_found = 1;
    view->order.status = st;
    view->order.amount = 700;
    view->order.version = 4;
    view->order.nlines = 1;
    strcpy(view->order.user_id, "u1");
    view->user_found = 1;
    view->user.balance = 1000;
    view->user.version = 2;
}

START_TEST(test_transition_table)
{
    /* The only legal moves: created -> paid -> shipped -> delivered, and cancel from
     * created or paid. */
    static const int legal[ACTIONS][ORDER_CANCELLED + 1] = {
        [PAY] = { [ORDER_CREATED] = 1 },
        [SHIP] = { [ORDER_PAID] = 1 },
        [DELIVER] = { [ORDER_SHIPPED] = 1 },
        [CANCEL] = { [ORDER_CREATED] = 1, [ORDER_PAID] = 1 },
    };
    int passed = 0;
    for (int a = 0; a < ACTIONS; a++) {
        for (int st = ORDER_CREATED; st <= ORDER_CANCELLED; st++) {
            action_view(a, st);
            ck_assert_uint_eq(shop_version(cmd, view), 4);
            if (legal[a][st]) {
                expect_event(action_event[a], 5);
                passed++;
            } else {
                expect_problem(409, "invalid_transition", order_status_name(st));
                ck_assert_ptr_nonnull(strstr(prob.detail, "o1"));
            }
        }
        /* Every action on a missing order: 404 naming the order. */
        action_view(a, ORDER_CREATED);
        view->order_found = 0;
        expect_problem(404, "not_found", "o1");
        ck_assert_uint_eq(shop_version(cmd, view), 0);
    }
    ck_assert_int_eq(passed, 5);
}
END_TEST

START_TEST(test_pay_and_cancel_money)
{
    action_view(PAY, ORDER_CREATED);
    expect_event(EV_PAYMENT_PROCESSED, 5);
    ck_assert_int_eq(ev->amount, 700);
    ck_assert_int_eq(ev->balance, 300);
    ck_assert_str_eq(ev->user_id, "u1");
    view->user.balance = 700; /* exactly enough: the wallet ends at 0, not below */
    expect_event(EV_PAYMENT_PROCESSED, 5);
    ck_assert_int_eq(ev->balance, 0);
    view->user.balance = 699;
    expect_problem(409, "insufficient_funds", "u1");
    view->user_found = 0;
    expect_problem(404, "not_found", "u1");

    action_view(CANCEL, ORDER_CREATED); /* nothing paid, nothing refunded */
    cmd->has_reason = 1;
    strcpy(cmd->reason, "changed my mind");
    expect_event(EV_ORDER_CANCELLED, 5);
    ck_assert_int_eq(ev->refunded, 0);
    ck_assert_int_eq(ev->previous_status, ORDER_CREATED);
    ck_assert_str_eq(ev->reason, "changed my mind");
    action_view(CANCEL, ORDER_PAID);
    expect_event(EV_ORDER_CANCELLED, 5);
    ck_assert_int_eq(ev->refunded, 700);
    ck_assert_int_eq(ev->previous_status, ORDER_PAID);
    view->user.balance = INT64_MAX - 699;
    expect_problem(400, "validation_failed", "refunded");
    expect_field("refunded_cents");
    action_view(CANCEL, ORDER_PAID);
    view->user_found = 0; /* the refund needs the user */
    expect_problem(404, "not_found", "u1");
    action_view(CANCEL, ORDER_CREATED);
    view->user_found = 0; /* no refund: the user is not needed */
    expect_event(EV_ORDER_CANCELLED, 5);
}
END_TEST

START_TEST(test_state_predicates)
{
    struct user_state u = { 0, 1 };
    ck_assert(user_state_ok(&u));
    u.balance = -1;
    ck_assert(!user_state_ok(&u));
    u = (struct user_state){ 5, 0 }; /* exists, so version >= 1 */
    ck_assert(!user_state_ok(&u));

    struct item_state it = { .price = 1, .version = 1 };
    ck_assert(item_state_ok(&it));
    it.available = -1;
    ck_assert(!item_state_ok(&it));
    it.available = 0, it.reserved = -1;
    ck_assert(!item_state_ok(&it));
    it.reserved = 0, it.sold = -1;
    ck_assert(!item_state_ok(&it));
    it.sold = 0, it.version = 0;
    ck_assert(!item_state_ok(&it));

    struct order_state *o = &view->order;
    memset(o, 0, sizeof *o);
    o->status = ORDER_DELIVERED;
    o->version = 4;
    o->nlines = 2;
    o->lines[0].quantity = o->lines[1].quantity = 1;
    ck_assert(order_state_ok(o));
    o->lines[1].quantity = 0;
    ck_assert(!order_state_ok(o));
    o->lines[1].quantity = 1, o->nlines = 0;
    ck_assert(!order_state_ok(o));
    o->nlines = STATE_LINES_MAX + 1;
    ck_assert(!order_state_ok(o));
    o->nlines = 2, o->status = 0;
    ck_assert(!order_state_ok(o));
    o->status = ORDER_CANCELLED + 1;
    ck_assert(!order_state_ok(o));
    o->status = ORDER_PAID, o->amount = -1;
    ck_assert(!order_state_ok(o));
    o->amount = 0, o->version = 0;
    ck_assert(!order_state_ok(o));
}
END_TEST

START_TEST(test_view_clear)
{
    memset(view, 0xff, sizeof *view);
    strcpy(view->line_items[0].name, "kept");
    shop_view_clear(view);
    ck_assert_int_eq(view->user_found, 0);
    ck_assert_int_eq(view->item_found, 0);
    ck_assert_int_eq(view->order_found, 0);
    ck_assert_int_eq(view->deposited, 0);
    for (size_t i = 0; i < STATE_LINES_MAX; i++)
        ck_assert_int_eq(view->line_found[i], 0);
    ck_assert_str_eq(view->line_items[0].name, "kept"); /* documented: left alone */
}
END_TEST

/* A random walk: 3 users, 3 items, up to 40 orders. Each step picks a command, builds the
 * view from the model as the write side would, decides, and folds an accepted event into
 * the model; after every step the invariants of domain/state.h must hold. */
#define W_USERS 3
#define W_ITEMS 3
#define W_ORDERS 40
/* A check inside the walk: Check's own assertions record every passing check (a write
 * to the runner per call in fork mode), too slow for tens of thousands of them. */
#define WALK(cond, ...)                 \
    do {                                \
        if (!(cond))                    \
            ck_abort_msg(__VA_ARGS__);  \
    } while (0)

struct world {
    struct user_state users[W_USERS];
    int user_exists[W_USERS];
    struct item_state items[W_ITEMS];
    int item_exists[W_ITEMS];
    struct order_state orders[W_ORDERS];
    int order_exists[W_ORDERS];
    int64_t deposited;
    unsigned accepted, refused;
};

static void name_of(char *out, char kind, int i)
{
    sprintf(out, "%c%d", kind, i);
}

static int index_of(const char *id)
{
    return atoi(id + 1);
}

static void load_view(const struct world *w)
{
    shop_view_clear(view);
    view->deposited = w->deposited;
    int u = -1;
    if (cmd->kind == CMD_REGISTER_USER || cmd->kind == CMD_DEPOSIT)
        u = index_of(cmd->id);
    if (cmd->kind == CMD_ADD_ITEM || cmd->kind == CMD_RESTOCK) {
        int i = index_of(cmd->id);
        view->item_found = w->item_exists[i];
        view->item = w->items[i];
    }
    if (cmd->kind >= CMD_CREATE_ORDER) {
        int o = index_of(cmd->id);
        view->order_found = w->order_exists[o];
        view->order = w->orders[o];
        u = index_of(cmd->kind == CMD_CREATE_ORDER ? cmd->user_id : w->orders[o].user_id);
    }
    if (cmd->kind == CMD_CREATE_ORDER)
        for (size_t l = 0; l < cmd->nlines; l++) {
            int i = index_of(cmd->lines[l].item_id);
            view->line_found[l] = w->item_exists[i];
            view->line_items[l] = w->items[i];
        }
    if (u >= 0) {
        view->user_found = w->user_exists[u];
        view->user = w->users[u];
    }
}

/* Moves each line's quantity between an item's counters (the write model's apply). */
static void move(struct world *w, const struct order_state *o, int d_avail, int d_res, int d_sold)
{
    for (size_t l = 0; l < o->nlines; l++) {
        struct item_state *it = &w->items[index_of(o->lines[l].item_id)];
        it->available += d_avail * o->lines[l].quantity;
        it->reserved += d_res * o->lines[l].quantity;
        it->sold += d_sold * o->lines[l].quantity;
    }
}

static void fold(struct world *w)
{
    int k = index_of(ev->id);
    struct order_state *o = &w->orders[k];
    switch (ev->type) {
    case EV_USER_REGISTERED:
        w->user_exists[k] = 1;
        w->users[k] = (struct user_state){ 0, 1 };
        return;
    case EV_FUNDS_DEPOSITED:
        WALK(ev->balance == w->users[k].balance + ev->amount, "deposit balance %" PRId64, ev->balance);
        w->users[k].balance = ev->balance;
        w->users[k].version = ev->version;
        w->deposited += ev->amount;
        return;
    case EV_ITEM_ADDED:
        w->item_exists[k] = 1;
        w->items[k] = (struct item_state){ .price = ev->price, .version = 1 };
        return;
    case EV_ITEM_RESTOCKED:
        w->items[k].available = ev->available;
        w->items[k].version = ev->version;
        return;
    case EV_ORDER_CREATED:
        w->order_exists[k] = 1;
        memset(o, 0, sizeof *o);
        strcpy(o->user_id, ev->user_id);
        o->status = ORDER_CREATED;
        o->amount = ev->amount;
        o->nlines = ev->nlines;
        for (size_t l = 0; l < ev->nlines; l++) {
            strcpy(o->lines[l].item_id, ev->lines[l].item_id);
            o->lines[l].quantity = ev->lines[l].quantity;
            o->lines[l].price = ev->lines[l].price;
        }
        move(w, o, -1, +1, 0);
        break;
    case EV_PAYMENT_PROCESSED:
        w->users[index_of(o->user_id)].balance = ev->balance;
        w->users[index_of(o->user_id)].version++;
        o->status = ORDER_PAID;
        break;
    case EV_ORDER_SHIPPED:
        move(w, o, 0, -1, +1);
        o->status = ORDER_SHIPPED;
        break;
    case EV_ORDER_DELIVERED:
        o->status = ORDER_DELIVERED;
        break;
    case EV_ORDER_CANCELLED:
        move(w, o, +1, -1, 0);
        w->users[index_of(o->user_id)].balance += ev->refunded;
        o->status = ORDER_CANCELLED;
        break;
    default:
        ck_abort_msg("unexpected event type %d", ev->type);
    }
    o->version = ev->version;
}

static void check_invariants(const struct world *w, unsigned step)
{
    int64_t reserved[W_ITEMS] = { 0 }, sold[W_ITEMS] = { 0 };
    for (int o = 0; o < W_ORDERS; o++) {
        if (!w->order_exists[o])
            continue;
        const struct order_state *os = &w->orders[o];
        int64_t amount = 0;

        for (size_t l = 0; l < os->nlines; l++) {
            int i = index_of(os->lines[l].item_id);
            amount += os->lines[l].quantity * os->lines[l].price;
            if (os->status == ORDER_CREATED || os->status == ORDER_PAID)
                reserved[i] += os->lines[l].quantity;
            if (os->status == ORDER_SHIPPED || os->status == ORDER_DELIVERED)
                sold[i] += os->lines[l].quantity;
        }
        WALK(os->amount == amount, "step %u: order %d amount %" PRId64 ", lines %" PRId64, step, o,
             os->amount, amount);
    }
    for (int o = 0; o < W_ORDERS; o++)
        WALK(!w->order_exists[o] || order_state_ok(&w->orders[o]), "step %u: order %d", step, o);
    for (int u = 0; u < W_USERS; u++) {
        WALK(w->users[u].balance >= 0, "step %u: user %d balance %" PRId64, step, u,
             w->users[u].balance);
        WALK(!w->user_exists[u] || user_state_ok(&w->users[u]), "step %u: user %d", step, u);
    }
    for (int i = 0; i < W_ITEMS; i++) {
        WALK(w->items[i].available >= 0, "step %u: item %d oversold (%" PRId64 ")", step, i,
             w->items[i].available);
        WALK(!w->item_exists[i] || item_state_ok(&w->items[i]), "step %u: item %d", step, i);
        WALK(w->items[i].reserved == reserved[i] && w->items[i].sold == sold[i],
             "step %u: item %d reserved %" PRId64 " sold %" PRId64 ", its orders say %" PRId64
             " and %" PRId64, step, i, w->items[i].reserved, w->items[i].sold, reserved[i], sold[i]);
    }
}

static void random_command(unsigned *seed)
{
    char id[8];
    int r = rand_r(seed) % 100;
    if (r < 8) {
        name_of(id, 'u', rand_r(seed) % W_USERS);
        set_cmd(CMD_REGISTER_USER, id, 0);
    } else if (r < 20) {
        name_of(id, 'u', rand_r(seed) % W_USERS);
        set_cmd(CMD_DEPOSIT, id, 1 + rand_r(seed) % 2000);
    } else if (r < 28) {
        name_of(id, 'i', rand_r(seed) % W_ITEMS);
        set_cmd(CMD_ADD_ITEM, id, 1 + rand_r(seed) % 500);
    } else if (r < 38) {
        name_of(id, 'i', rand_r(seed) % W_ITEMS);
        set_cmd(CMD_RESTOCK, id, 1 + rand_r(seed) % 5);
    } else if (r < 60) {
        name_of(id, 'o', rand_r(seed) % W_ORDERS);
        set_cmd(CMD_CREATE_ORDER, id, 0);
        name_of(cmd->user_id, 'u', rand_r(seed) % W_USERS);
        /* Distinct items, as the request parser guarantees. */
        int lines = 1 + rand_r(seed) % W_ITEMS, first = rand_r(seed) % W_ITEMS;
        for (int l = 0; l < lines; l++) {
            name_of(id, 'i', (first + l) % W_ITEMS);
            add_line(id, 1 + rand_r(seed) % 4);
        }
    } else {
        name_of(id, 'o', rand_r(seed) % W_ORDERS);
        set_cmd(CMD_PAY + rand_r(seed) % 4, id, 0);
    }
}

START_TEST(test_random_walk_keeps_invariants)
{
    static struct world w;
    for (unsigned seed0 = 1; seed0 <= 20; seed0++) {
        memset(&w, 0, sizeof w);
        unsigned seed = seed0;
        for (unsigned step = 0; step < 2000; step++) {
            random_command(&seed);
            load_view(&w);
            problem_init(&prob);
            if (shop_decide(cmd, view, ev, &prob) == 0) {
                fold(&w);
                w.accepted++;
            } else {
                WALK(prob.status == 404 || prob.status == 409, "step %u: %d %s", step,
                     prob.status, prob.code);
                w.refused++;
            }
            check_invariants(&w, step);
        }
        /* The walk must exercise both sides of the rules, not only refusals. */
        ck_assert_uint_gt(w.accepted, 200);
        ck_assert_uint_gt(w.refused, 200);
    }
}
END_TEST

static Suite *shop_suite(void)
{
    Suite *s = suite_create("shop");
    TCase *tc = tcase_create("shop");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_users);
    tcase_add_test(tc, test_items);
    tcase_add_test(tc, test_create_order);
    tcase_add_test(tc, test_transition_table);
    tcase_add_test(tc, test_pay_and_cancel_money);
    tcase_add_test(tc, test_state_predicates);
    tcase_add_test(tc, test_view_clear);
    tcase_add_test(tc, test_random_walk_keeps_invariants);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(shop_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
