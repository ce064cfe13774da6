/* fuzz_value: libFuzzer harness for the decoders of the read model's stored values
 * (src/readmodel/rmodel_codec.c, layouts in rmodel_layout.h): what a damaged or foreign
 * data.mdb can hand them.
 *
 * Input: byte 0 picks the decoder (mod 7: order, user, item, day, stream row, stream
 * entries, position row); the rest is the value, in a heap buffer of exactly its size.
 * Properties checked:
 *  - a decoder answers 0 or RMODEL_EFORMAT, and reads nothing outside the value (ASan);
 *  - what it accepts, encoded again, decodes to the same fields, and encoding that gives
 *    the same bytes (the encoders' output is a fixed point: a value written by the fold
 *    reads back as it was written, whatever bytes it was decoded from);
 *  - an order has at most RMODEL_MAX_LINES lines and a status with a name; a position row
 *    at most RMODEL_POS_CHUNK entries, each entry rebuilt by rmodel_ploc_put walking back
 *    to the same locations;
 *  - no crash, leak or undefined behaviour (ASan, UBSan).
 */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/vocab.h"
#include "readmodel/rmodel.h"
#include "readmodel/rmodel_layout.h"
#include "util/eflog.h"
#include "util/sbuf.h"

#define FUZZ_NAME "fuzz_value"
#include "fuzz.h"

static struct sbuf once, twice;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    eflog_init("fuzz_value", EF_ERROR);
    return 0;
}

static int same_str(struct rmodel_str a, struct rmodel_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static int same_bytes(const struct sbuf *a, const struct sbuf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static int same_order(const struct rmodel_order *a, const struct rmodel_order *b)
{
    if (a->status != b->status || a->version != b->version || a->created_at != b->created_at ||
        a->updated_at != b->updated_at || a->amount != b->amount ||
        a->created_position != b->created_position || !same_str(a->user, b->user) ||
        a->nlines != b->nlines)
        return 0;
    for (size_t i = 0; i < a->nlines; i++) {
        const struct rmodel_line *x = &a->lines[i], *y = &b->lines[i];
        if (!same_str(x->item, y->item) || !same_str(x->name, y->name) ||
            !same_str(x->category, y->category) || x->quantity != y->quantity || x->price != y->price)
            return 0;
    }
    return 1;
}

static void check_order(const uint8_t *v, size_t n)
{
    struct rmodel_order a, b;
    int rc = rmodel_order_decode(v, n, &a);
    PROP(rc == 0 || rc == RMODEL_EFORMAT);
    if (rc)
        return;
    PROP(a.nlines <= RMODEL_MAX_LINES && vocab_status_name(a.status) != NULL);
    sbuf_reset(&once);
    rmodel_order_encode(&a, &once);
    PROP(rmodel_order_decode(once.data, once.len, &b) == 0);
    PROP(same_order(&a, &b));
    sbuf_reset(&twice);
    rmodel_order_encode(&b, &twice);
    PROP(same_bytes(&once, &twice));
    rmodel_order_clear(&a);
    rmodel_order_clear(&b);
}

static int same_user(const struct rmodel_user *a, const struct rmodel_user *b)
{
    return !a->registered == !b->registered && same_str(a->name, b->name) && a->balance == b->balance &&
           a->order_count == b->order_count && a->total_spent == b->total_spent &&
           a->spent_orders == b->spent_orders && a->last_order_at == b->last_order_at;
}

static int same_item(const struct rmodel_item *a, const struct rmodel_item *b)
{
    return !a->registered == !b->registered && same_str(a->name, b->name) &&
           same_str(a->category, b->category) && a->price == b->price && a->restocked == b->restocked &&
           a->reserved == b->reserved && a->sold == b->sold;
}

static int same_daily(const struct rmodel_daily *a, const struct rmodel_daily *b)
{
    return a->created == b->created && a->paid == b->paid && a->cancelled == b->cancelled &&
           a->revenue == b->revenue;
}

/* The properties of a fixed-field value of type T (its codec: decode, encode; same: its
 * fields compare equal; a flag compares as a truth value): what decode accepts encodes
 * into `once`, which decodes to the same fields and encodes to the same bytes again. */
#define FIXED_POINT(T, decode, encode, same, v, n)                                       \
    do {                                                                                 \
        T a_, b_;                                                                        \
        int rc_ = decode(v, n, &a_);                                                     \
        PROP(rc_ == 0 || rc_ == RMODEL_EFORMAT);                                         \
        if (rc_ == 0) {                                                                  \
            sbuf_reset(&once);                                                           \
            encode(&a_, &once);                                                          \
            PROP(decode(once.data, once.len, &b_) == 0 && same(&a_, &b_));               \
            sbuf_reset(&twice);                                                          \
            encode(&b_, &twice);                                                         \
            PROP(same_bytes(&once, &twice));                                             \
        }                                                                                \
    } while (0)

static void check_daily(const uint8_t *v, size_t n)
{
    sbuf_reset(&once);
    FIXED_POINT(struct rmodel_daily, rmodel_daily_decode, rmodel_daily_encode, same_daily, v, n);
    if (once.len) /* accepted: its fields are fixed, so it was written as the encoder writes */
        PROP(same_bytes(&once, &(struct sbuf){ .data = (char *)v, .len = n }));
}

/* A stream row (row: its version byte first) or the entries the fold buffers for one. */
static void check_stream(const uint8_t *v, size_t n, int row)
{
    uint64_t a[RMODEL_STREAM_CHUNK] = { 0 }, b[RMODEL_STREAM_CHUNK] = { 0 };
    int rc = rmodel_stream_merge(v, n, row, a);
    PROP(rc == 0 || rc == RMODEL_EFORMAT);
    if (rc)
        return;
    rmodel_stream_encode(a, &once);
    PROP(rmodel_stream_merge(once.data, once.len, 1, b) == 0);
    PROP(memcmp(a, b, sizeof a) == 0);
    rmodel_stream_encode(b, &twice);
    PROP(same_bytes(&once, &twice));
}

static void check_positions(const uint8_t *v, size_t n)
{
    uint64_t count, again;
    size_t bytes;
    struct rmodel_ploc last, at[RMODEL_POS_CHUNK], back;
    int rc = rmodel_ploc_walk(v, n, UINT64_MAX, &count, &bytes, &last);
    PROP(rc == 0 || rc == RMODEL_EFORMAT);
    if (rc)
        return;
    PROP(count <= RMODEL_POS_CHUNK && bytes == n);
    for (uint64_t i = 0; i < count; i++) {
        PROP(rmodel_ploc_walk(v, n, i + 1, &again, &bytes, &at[i]) == 0 && again == i + 1 && bytes <= n);
    }
    sbuf_reset(&once);
    rmodel_put_u8(&once, RMODEL_VAL_V1);
    for (uint64_t i = 0; i < count; i++)
        rmodel_ploc_put(&once, i ? &at[i - 1] : NULL, at[i]);
    PROP(rmodel_ploc_walk(once.data, once.len, UINT64_MAX, &again, &bytes, &back) == 0 && again == count &&
         bytes == once.len);
    for (uint64_t i = 0; i < count; i++) {
        PROP(rmodel_ploc_walk(once.data, once.len, i + 1, &again, &bytes, &back) == 0);
        PROP(back.segment == at[i].segment && back.offset == at[i].offset);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = size - 1;
    uint8_t *v = malloc(n ? n : 1); /* exactly the value: ASan sees any read past it */
    if (!v)
        return 0;
    memcpy(v, data + 1, n);
    switch (data[0] % 7) {
    case 0: check_order(v, n); break;
    case 1: FIXED_POINT(struct rmodel_user, rmodel_user_decode, rmodel_user_encode, same_user, v, n); break;
    case 2: FIXED_POINT(struct rmodel_item, rmodel_item_decode, rmodel_item_encode, same_item, v, n); break;
    case 3: check_daily(v, n); break;
    case 4: check_stream(v, n, 1); break;
    case 5: check_stream(v, n, 0); break;
    default: check_positions(v, n); break;
    }
    free(v);
    return 0;
}
