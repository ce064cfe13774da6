/* vocab: the words both sides of eventfold share: event types and their schema versions,
 * order statuses, and the grammar of an id.
 *
 * The command side writes events in these words (domain/event.c), the folds read them
 * (readmodel/rmodel_event.c), the query routes check ids with the same grammar as the
 * command parser. The lists below are the only place they are spelled: the tables of both
 * sides are generated from them.
 *
 * This header is the whole module: data (X-macro lists) and small lookups over it, with no
 * code to link. The read side includes it and nothing else of src/domain, so the folds and
 * the query program depend on the shop's words, never on the command side's code.
 *
 * Everything here is a persistent format. Type names and schema versions are in every log
 * record; status names are in the log (OrderCancelled.previous_status) and the API; status
 * numbers are stored in both LMDB models; the id grammar is API.md's. Append to the lists;
 * never rename, renumber or reorder an entry. A new schema version of a type raises its
 * number here, and every reader of older versions must upcast them (doc/events.md).
 */
#ifndef EF_VOCAB_H
#define EF_VOCAB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* X(ENUM, NAME, SCHEMA), one per event type: SCHEMA is the version this build writes;
 * versions VOCAB_SCHEMA_MIN..SCHEMA are read. */
#define VOCAB_EVENTS(X)                             \
    X(EV_USER_REGISTERED, "UserRegistered", 1)     \
    X(EV_FUNDS_DEPOSITED, "FundsDeposited", 1)     \
    X(EV_ITEM_ADDED, "ItemAdded", 1)               \
    X(EV_ITEM_RESTOCKED, "ItemRestocked", 1)       \
    X(EV_ORDER_CREATED, "OrderCreated", 2)         \
    X(EV_PAYMENT_PROCESSED, "PaymentProcessed", 1) \
    X(EV_ORDER_SHIPPED, "OrderShipped", 1)         \
    X(EV_ORDER_DELIVERED, "OrderDelivered", 1)     \
    X(EV_ORDER_CANCELLED, "OrderCancelled", 1)

#define VOCAB_SCHEMA_MIN 1

enum ev_type {
#define VOCAB_X_(e, name, schema) e,
    VOCAB_EVENTS(VOCAB_X_)
#undef VOCAB_X_
    EV_TYPE_COUNT
};

/* X(ENUM, NUMBER, NAME), one per order status, numbered 1.. without gaps (0 is "no
 * order" in the models). */
#define VOCAB_STATUSES(X)              \
    X(ORDER_CREATED, 1, "created")     \
    X(ORDER_PAID, 2, "paid")           \
    X(ORDER_SHIPPED, 3, "shipped")     \
    X(ORDER_DELIVERED, 4, "delivered") \
    X(ORDER_CANCELLED, 5, "cancelled")

enum order_status {
#define VOCAB_X_(e, num, name) e = num,
    VOCAB_STATUSES(VOCAB_X_)
#undef VOCAB_X_
};
#define ORDER_STATUS_MIN ORDER_CREATED
#define ORDER_STATUS_MAX ORDER_CANCELLED
#define VOCAB_X_(e, num, name) +1
_Static_assert(ORDER_STATUS_MIN == 1 && ORDER_STATUS_MAX == 0 VOCAB_STATUSES(VOCAB_X_),
               "order statuses are numbered 1..ORDER_STATUS_MAX without gaps");
#undef VOCAB_X_

/* An id: 1 to VOCAB_ID_MAX bytes of VOCAB_ID_PATTERN (API.md); the pattern is also the text
 * of the API's validation messages. */
#define VOCAB_ID_MAX 64
#define VOCAB_ID_PATTERN "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"

/* The name of type ("UserRegistered", ...). type must be a valid enum ev_type. */
static inline const char *vocab_event_name(enum ev_type type)
{
    static const char *const names[EV_TYPE_COUNT] = {
#define VOCAB_X_(e, name, schema) [e] = name,
        VOCAB_EVENTS(VOCAB_X_)
#undef VOCAB_X_
    };
    return names[type];
}

/* The schema version this build writes for type (the newest it reads). */
static inline uint16_t vocab_event_schema(enum ev_type type)
{
    static const uint16_t schemas[EV_TYPE_COUNT] = {
#define VOCAB_X_(e, name, schema) [e] = schema,
        VOCAB_EVENTS(VOCAB_X_)
#undef VOCAB_X_
    };
    return schemas[type];
}

/* The type named by the n bytes at s (not NUL-terminated), or -1 for no shop event. */
static inline int vocab_event_find(const char *s, size_t n)
{
    /* Every record's type goes through here (the fold's and the write model's replay):
     * the lengths are known at compile time, and most names differ in length or first byte. */
    static const uint8_t lens[EV_TYPE_COUNT] = {
#define VOCAB_X_(e, name, schema) [e] = sizeof name - 1,
        VOCAB_EVENTS(VOCAB_X_)
#undef VOCAB_X_
    };
    for (int t = 0; t < EV_TYPE_COUNT; t++) {
        const char *name = vocab_event_name((enum ev_type)t);
        if (lens[t] == n && name[0] == s[0] && memcmp(name, s, n) == 0)
            return t;
    }
    return -1;
}

/* The name of status ("created", ...), or NULL for a number that is no status. */
static inline const char *vocab_status_name(int status)
{
    static const char *const names[ORDER_STATUS_MAX + 1] = {
#define VOCAB_X_(e, num, name) [e] = name,
        VOCAB_STATUSES(VOCAB_X_)
#undef VOCAB_X_
    };
    if (status < ORDER_STATUS_MIN || status > ORDER_STATUS_MAX)
        return NULL;
    return names[status];
}

/* The status named by the NUL-terminated s, or 0 for none. */
static inline int vocab_status_find(const char *s)
{
    for (int st = ORDER_STATUS_MIN; st <= ORDER_STATUS_MAX; st++)
        if (strcmp(s, vocab_status_name(st)) == 0)
            return st;
    return 0;
}

/* 1 if the n bytes at s are an id (VOCAB_ID_PATTERN), else 0. ASCII only, whatever the
 * locale: a byte that is not a letter, a digit or one of "_.:-" (NUL included) fails. */
static inline int vocab_valid_id(const char *s, size_t n)
{
    if (n == 0 || n > VOCAB_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        int punct = c == '_' || c == '.' || c == ':' || c == '-';
        if (!alnum && (i == 0 || !punct))
            return 0;
    }
    return 1;
}

#endif
