/* rmodel_layout: the binary values of the read model's databases (internal to src/read).
 *
 * Every value starts with a layout version byte: RMODEL_VAL_V1 (fixed-size integers,
 * little-endian; str is a u16 length and bytes, no NUL) or, for the two largest trees,
 * RMODEL_VAL_V2 (integers as varints: unsigned LEB128, at most 10 bytes; signed ones
 * zigzag-coded first, so that small magnitudes of either sign are short; vstr is a varint
 * length up to 65535 and bytes). A value of another version, one that is shorter or longer
 * than its fields say, or (V2) with a varint of more than 64 bits, decodes as
 * RMODEL_EFORMAT. Keys that must sort by number (positions, versions) are big-endian so
 * LMDB's default byte order is numeric order.
 *
 *   order  V2, u8 status (enum order_status), varint version, zigzag created_at, zigzag
 *          (updated_at - created_at, modulo 2^64), zigzag amount, varint created_position,
 *          vstr user, varint nlines, nlines x (vstr item, vstr name, vstr category,
 *          zigzag quantity, zigzag price). About 40% shorter than fixed fields: the orders
 *          are half of a model, and every byte of theirs is written, synced and copied.
 *   user   v, u8 registered, str name, i64 balance, u64 order_count (placed),
 *          i64 total_spent, u64 spent_orders (paid/shipped/delivered), i64 last_order_at
 *          (INT64_MIN: none)
 *   item   v, u8 registered, str name, str category, i64 price, i64 restocked,
 *          i64 reserved, i64 sold
 *   daily  v, u64 created, u64 paid, u64 cancelled, i64 revenue
 *   stream V2, n x (u8 slot, varint position): where versions first + slot of the stream are,
 *          slots ascending, each once; the key is stream NUL first (u64 big-endian), first
 *          1, 1 + RMODEL_STREAM_CHUNK, ... (rmodel_stream_chunk). The fold puts single
 *          entries (no version byte), which the flush merges into the row (rmodel_cache.c).
 *   ploc   v, n x entry: where positions first .. first + n - 1 are in the local log (the
 *          positions dbi; key: first, u64 big-endian, 1, 1 + RMODEL_POS_CHUNK, ...,
 *          rmodel_pos_chunk; n <= RMODEL_POS_CHUNK, every row but the last one full). An
 *          entry is a varint d > 0 (the segment before it, offset + d: the next record of
 *          a segment), or 0, varint segment, varint offset (the first entry of a row, and
 *          any other). Varints are unsigned LEB128. About 2 bytes a record.
 *   dlq    v, u64 position, u64 segment, u64 offset, i64 at, str projection, str reason
 *   user_cat: i64 quantity (no version byte: a bare counter); user_orders: the order id.
 *
 * Decoded views hold pointers into the buffer they were decoded from: callers decode from a
 * private copy (rmodel_get copies) so that later writes to the same txn cannot move them.
 */
#ifndef EF_RM_LAYOUT_H
#define EF_RM_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "domain/vocab.h" /* enum order_status: the u8 status of an order value */
#include "util/sbuf.h"

#define RMODEL_VAL_V1 1
#define RMODEL_VAL_V2 2 /* varint fields: order values and stream index rows */
/* Versions per row of the stream index: most order streams fit one row, and a row of a
 * long user or item stream is rewritten with at most 32 entries of 9 bytes. */
#define RMODEL_STREAM_CHUNK 32

/* The stream index row of a version: the first version of its row, and its slot there.
 * Version 0 (which the write side never writes) shares version 1's slot. */
static inline void rmodel_stream_chunk(uint64_t version, uint64_t *first, uint64_t *slot)
{
    uint64_t i = version ? version - 1 : 0;
    *slot = i % RMODEL_STREAM_CHUNK;
    *first = i - *slot + 1;
}

/* Positions per row of the position index: a row of about 130 bytes instead of 64 rows
 * of 36 (8 of them LMDB's node header). The live fold rewrites the last row per commit. */
#define RMODEL_POS_CHUNK 64

/* The position index row of a position: its first position, and the position's slot. */
static inline void rmodel_pos_chunk(uint64_t position, uint64_t *first, uint64_t *slot)
{
    uint64_t i = position ? position - 1 : 0;
    *slot = i % RMODEL_POS_CHUNK;
    *first = i - *slot + 1;
}

#define RMODEL_NO_TIME INT64_MIN
#define RMODEL_MAX_LINES 1000 /* more than the API allows (100); a sanity bound when decoding */

struct rmodel_str {
    const char *p;
    size_t n;
};

struct rmodel_line {
    struct rmodel_str item, name, category;
    int64_t quantity, price;
};

#define RMODEL_FEW_LINES 4

struct rmodel_order {
    int status;
    uint64_t version;
    int64_t created_at, updated_at, amount;
    uint64_t created_position;
    struct rmodel_str user;
    size_t nlines;
    /* The order's: few_lines, or an array rmodel_order_clear() frees. An order is decoded
     * once or more per event a fold or a query meets, and most have a few lines: those
     * cost no allocation. So an order is not copied by value (lines would point into the
     * copied-from order). */
    struct rmodel_line *lines;
    struct rmodel_line few_lines[RMODEL_FEW_LINES];
};

struct rmodel_user {
    int registered;
    struct rmodel_str name;
    int64_t balance;
    uint64_t order_count;
    int64_t total_spent;
    uint64_t spent_orders;
    int64_t last_order_at;
};

struct rmodel_item {
    int registered;
    struct rmodel_str name, category;
    int64_t price, restocked, reserved, sold;
};

struct rmodel_daily {
    uint64_t created, paid, cancelled;
    int64_t revenue;
};

void rmodel_order_clear(struct rmodel_order *o);
/* Room for n lines in o (which holds none): o->lines, cleared. */
struct rmodel_line *rmodel_order_lines(struct rmodel_order *o, size_t n);

void rmodel_order_encode(const struct rmodel_order *o, struct sbuf *out);
int rmodel_order_decode(const void *p, size_t n, struct rmodel_order *o);
void rmodel_user_encode(const struct rmodel_user *u, struct sbuf *out);
int rmodel_user_decode(const void *p, size_t n, struct rmodel_user *u);
void rmodel_item_encode(const struct rmodel_item *it, struct sbuf *out);
int rmodel_item_decode(const void *p, size_t n, struct rmodel_item *it);
void rmodel_daily_encode(const struct rmodel_daily *d, struct sbuf *out);
int rmodel_daily_decode(const void *p, size_t n, struct rmodel_daily *d);

/* The position index's rows. put appends the entry of the record at `at` to row (which
 * holds the version byte and the entries before it; prev: the last of them, NULL for
 * none). walk reads the entries of a row (n bytes at p) up to `upto` of them: *count
 * read, *bytes the row's length up to the end of the last one read, *last that entry (set
 * only when *count > 0): 0, or RMODEL_EFORMAT (no version byte, torn, more than
 * RMODEL_POS_CHUNK). */
struct rmodel_ploc {
    uint64_t segment, offset;
};
void rmodel_ploc_put(struct sbuf *row, const struct rmodel_ploc *prev, struct rmodel_ploc at);
int rmodel_ploc_walk(const void *p, size_t n, uint64_t upto, uint64_t *count, size_t *bytes,
                     struct rmodel_ploc *last);

/* The stream index's rows. An entry is what the fold puts (slot < RMODEL_STREAM_CHUNK, position
 * > 0). merge reads the entries of n bytes at p (row: 1 when they are a row, with its
 * version byte) into pos, indexed by slot (a later entry replaces an earlier one of its
 * slot): 0, or RMODEL_EFORMAT. encode writes the row of pos (its non-zero slots). */
void rmodel_stream_entry(struct sbuf *out, uint64_t slot, uint64_t position);
int rmodel_stream_merge(const void *p, size_t n, int row, uint64_t pos[RMODEL_STREAM_CHUNK]);
void rmodel_stream_encode(const uint64_t pos[RMODEL_STREAM_CHUNK], struct sbuf *out);

/* Primitive writers and a bounds-checked reader. */
void rmodel_put_u8(struct sbuf *sb, uint8_t v);
void rmodel_put_u64(struct sbuf *sb, uint64_t v);
void rmodel_put_str(struct sbuf *sb, struct rmodel_str s); /* s.n <= UINT16_MAX (asserted) */
void rmodel_put_be64(unsigned char out[8], uint64_t v);
uint64_t rmodel_get_be64(const unsigned char in[8]);

struct rmodel_reader {
    const unsigned char *p;
    size_t n;
    int bad; /* set on the first read past the end; later reads return zeros */
};
uint8_t rmodel_read_u8(struct rmodel_reader *r);
uint16_t rmodel_read_u16(struct rmodel_reader *r);
uint64_t rmodel_read_u64(struct rmodel_reader *r);
struct rmodel_str rmodel_read_str(struct rmodel_reader *r);

#endif
