#include <config.h>

#include "readmodel/rmodel_layout.h"

#include <assert.h>
#include <endian.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "readmodel/rmodel.h"
#include "util/xalloc.h"

void rmodel_put_u8(struct sbuf *sb, uint8_t v) { sbuf_append(sb, &v, 1); }

void rmodel_put_u64(struct sbuf *sb, uint64_t v)
{
    v = htole64(v);
    sbuf_append(sb, &v, 8);
}

void rmodel_put_str(struct sbuf *sb, struct rmodel_str s)
{
    assert(s.n <= UINT16_MAX);
    unsigned char b[2] = { (unsigned char)(s.n & 0xff), (unsigned char)(s.n >> 8) };
    sbuf_append(sb, b, 2);
    sbuf_append(sb, s.p, s.n);
}

void rmodel_put_be64(unsigned char out[8], uint64_t v)
{
    v = htobe64(v);
    memcpy(out, &v, 8);
}

uint64_t rmodel_get_be64(const unsigned char in[8])
{
    uint64_t v;
    memcpy(&v, in, 8);
    return be64toh(v);
}

/* The fold encodes and decodes a user, an item or an order several times per event, so
 * the value codecs below do not go through the checked per-field functions of rmodel_layout.h: an
 * encoder reserves its whole value once and stores the fields with the unchecked w_*
 * helpers; a decoder reads with the inline rd_* helpers (the same bounds rule as
 * rmodel_reader: a short value sets bad and yields zeros). Same bytes as those functions; the readers among them wrap rd_*. */
static inline unsigned char *w_u8(unsigned char *p, uint8_t v)
{
    *p = v;
    return p + 1;
}

static inline unsigned char *w_u64(unsigned char *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
    return p + 8;
}

static inline unsigned char *w_u16(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)(v >> 8);
    return p + 2;
}

static inline unsigned char *w_bytes(unsigned char *p, struct rmodel_str s)
{
    if (s.n)
        memcpy(p, s.p, s.n);
    return p + s.n;
}

static inline unsigned char *w_str(unsigned char *p, struct rmodel_str s)
{
    assert(s.n <= UINT16_MAX);
    return w_bytes(w_u16(p, s.n), s);
}

/* Reserves n bytes at the end of out; returns where they start. w_end() closes. */
static inline unsigned char *w_begin(struct sbuf *out, size_t n)
{
    sbuf_reserve(out, n);
    return (unsigned char *)out->data + out->len;
}

static inline void w_end(struct sbuf *out, unsigned char *end)
{
    out->len = (size_t)((char *)end - out->data);
    assert(out->len < out->cap);
    out->data[out->len] = '\0';
}

/* The reader never reads past n: a short value sets bad and yields zeros, so a decoder can
 * read every field and check bad once at the end. */
static inline const unsigned char *rd_take(struct rmodel_reader *r, size_t k)
{
    if (r->bad || r->n < k) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *p = r->p;
    r->p += k;
    r->n -= k;
    return p;
}

static inline uint8_t rd_u8(struct rmodel_reader *r)
{
    const unsigned char *p = rd_take(r, 1);
    return p ? p[0] : 0;
}

static inline uint16_t rd_u16(struct rmodel_reader *r)
{
    const unsigned char *p = rd_take(r, 2);
    return p ? (uint16_t)(p[0] | (p[1] << 8)) : 0;
}

static inline uint64_t rd_u64(struct rmodel_reader *r)
{
    const unsigned char *p = rd_take(r, 8);
    uint64_t v = 0;
    if (p)
        memcpy(&v, p, 8);
    return le64toh(v);
}

static inline int64_t read_i64(struct rmodel_reader *r) { return (int64_t)rd_u64(r); }

/* The next n bytes as a string (empty, and bad set, when fewer are left). */
static inline struct rmodel_str rd_bytes(struct rmodel_reader *r, size_t n)
{
    struct rmodel_str s = { "", 0 };
    const unsigned char *p = rd_take(r, n);
    if (p) {
        s.p = (const char *)p;
        s.n = n;
    }
    return s;
}

static inline struct rmodel_str rd_str(struct rmodel_reader *r) { return rd_bytes(r, rd_u16(r)); }

/* The checked per-field readers of rmodel_layout.h, for the index values the queries read. */
uint8_t rmodel_read_u8(struct rmodel_reader *r) { return rd_u8(r); }
uint16_t rmodel_read_u16(struct rmodel_reader *r) { return rd_u16(r); }
uint64_t rmodel_read_u64(struct rmodel_reader *r) { return rd_u64(r); }
struct rmodel_str rmodel_read_str(struct rmodel_reader *r) { return rd_str(r); }

/* Unsigned LEB128: seven bits a byte, the low ones first, the top bit set on all bytes but
 * the last; at most VARINT_MAX bytes for a u64. */
#define VARINT_MAX 10

static inline unsigned char *w_varint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

static uint64_t rd_varint_long(struct rmodel_reader *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && r->n; shift += 7) {
        unsigned char b = *r->p++;
        r->n--;
        if (shift == 63 && (b & 0x7e))
            break; /* more than 64 bits */
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    r->bad = 1;
    return 0;
}

/* Inline for the one-byte varints that most fields of an order are (the fold decodes an
 * order per order event). */
static inline uint64_t rd_varint(struct rmodel_reader *r)
{
    if (r->n && !(r->p[0] & 0x80)) {
        r->n--;
        return *r->p++;
    }
    return rd_varint_long(r);
}

/* Zigzag: signed integers near zero, either side, as small unsigned ones (then varints). */
static inline uint64_t zz(int64_t v) { return ((uint64_t)v << 1) ^ (0 - ((uint64_t)v >> 63)); }
static inline int64_t unzz(uint64_t v) { return (int64_t)((v >> 1) ^ (0 - (v & 1))); }

static inline unsigned char *w_vstr(unsigned char *p, struct rmodel_str s)
{
    assert(s.n <= UINT16_MAX);
    return w_bytes(w_varint(p, s.n), s);
}

static inline struct rmodel_str rd_vstr(struct rmodel_reader *r)
{
    uint64_t n = rd_varint(r);
    if (n > UINT16_MAX) {
        r->bad = 1;
        return (struct rmodel_str){ "", 0 };
    }
    return rd_bytes(r, (size_t)n);
}

/* Opens a reader on a value and checks its version byte. */
static struct rmodel_reader reader_open(const void *p, size_t n)
{
    struct rmodel_reader r = { p, n, 0 };
    if (rd_u8(&r) != RMODEL_VAL_V1)
        r.bad = 1;
    return r;
}

void rmodel_order_clear(struct rmodel_order *o)
{
    if (o->lines != o->few_lines)
        free(o->lines);
    memset(o, 0, offsetof(struct rmodel_order, few_lines));
}

struct rmodel_line *rmodel_order_lines(struct rmodel_order *o, size_t n)
{
    if (n <= RMODEL_FEW_LINES) {
        memset(o->few_lines, 0, n * sizeof *o->few_lines);
        o->lines = o->few_lines;
    } else {
        o->lines = xcalloc(n, sizeof *o->lines);
    }
    return o->lines;
}

void rmodel_order_encode(const struct rmodel_order *o, struct sbuf *out)
{
    assert(vocab_status_name(o->status) != NULL && o->nlines <= RMODEL_MAX_LINES);
    size_t n = 2 + 6 * VARINT_MAX + 3 + o->user.n;
    for (size_t i = 0; i < o->nlines; i++)
        n += 3 * 3 + o->lines[i].item.n + o->lines[i].name.n + o->lines[i].category.n + 2 * VARINT_MAX;
    unsigned char *p = w_begin(out, n);
    p = w_u8(p, RMODEL_VAL_V2);
    p = w_u8(p, (uint8_t)o->status);
    p = w_varint(p, o->version);
    p = w_varint(p, zz(o->created_at));
    p = w_varint(p, zz((int64_t)((uint64_t)o->updated_at - (uint64_t)o->created_at)));
    p = w_varint(p, zz(o->amount));
    p = w_varint(p, o->created_position);
    p = w_vstr(p, o->user);
    p = w_varint(p, o->nlines);
    for (size_t i = 0; i < o->nlines; i++) {
        const struct rmodel_line *l = &o->lines[i];
        p = w_vstr(p, l->item);
        p = w_vstr(p, l->name);
        p = w_vstr(p, l->category);
        p = w_varint(p, zz(l->quantity));
        p = w_varint(p, zz(l->price));
    }
    w_end(out, p);
}

/* On success o holds its lines (rmodel_order_clear frees them); on failure o is cleared. */
int rmodel_order_decode(const void *p, size_t n, struct rmodel_order *o)
{
    memset(o, 0, offsetof(struct rmodel_order, few_lines));
    struct rmodel_reader r = { p, n, 0 };
    if (rd_u8(&r) != RMODEL_VAL_V2)
        r.bad = 1;
    o->status = rd_u8(&r);
    o->version = rd_varint(&r);
    o->created_at = unzz(rd_varint(&r));
    o->updated_at = (int64_t)((uint64_t)o->created_at + (uint64_t)unzz(rd_varint(&r)));
    o->amount = unzz(rd_varint(&r));
    o->created_position = rd_varint(&r);
    o->user = rd_vstr(&r);
    uint64_t nlines = rd_varint(&r);
    if (r.bad || nlines > RMODEL_MAX_LINES || vocab_status_name(o->status) == NULL)
        goto fail;
    o->nlines = (size_t)nlines;
    rmodel_order_lines(o, o->nlines);
    for (size_t i = 0; i < o->nlines; i++) {
        struct rmodel_line *l = &o->lines[i];
        l->item = rd_vstr(&r);
        l->name = rd_vstr(&r);
        l->category = rd_vstr(&r);
        l->quantity = unzz(rd_varint(&r));
        l->price = unzz(rd_varint(&r));
    }
    if (r.bad || r.n)
        goto fail;
    return 0;
fail:
    rmodel_order_clear(o);
    return RMODEL_EFORMAT;
}

void rmodel_user_encode(const struct rmodel_user *u, struct sbuf *out)
{
    unsigned char *p = w_begin(out, 2 + 2 + u->name.n + 5 * 8);
    p = w_u8(p, RMODEL_VAL_V1);
    p = w_u8(p, (uint8_t)(u->registered != 0));
    p = w_str(p, u->name);
    p = w_u64(p, (uint64_t)u->balance);
    p = w_u64(p, u->order_count);
    p = w_u64(p, (uint64_t)u->total_spent);
    p = w_u64(p, u->spent_orders);
    p = w_u64(p, (uint64_t)u->last_order_at);
    w_end(out, p);
}

int rmodel_user_decode(const void *p, size_t n, struct rmodel_user *u)
{
    struct rmodel_reader r = reader_open(p, n);
    u->registered = rd_u8(&r);
    u->name = rd_str(&r);
    u->balance = read_i64(&r);
    u->order_count = rd_u64(&r);
    u->total_spent = read_i64(&r);
    u->spent_orders = rd_u64(&r);
    u->last_order_at = read_i64(&r);
    return r.bad || r.n ? RMODEL_EFORMAT : 0;
}

void rmodel_item_encode(const struct rmodel_item *it, struct sbuf *out)
{
    unsigned char *p = w_begin(out, 2 + 4 + it->name.n + it->category.n + 4 * 8);
    p = w_u8(p, RMODEL_VAL_V1);
    p = w_u8(p, (uint8_t)(it->registered != 0));
    p = w_str(p, it->name);
    p = w_str(p, it->category);
    p = w_u64(p, (uint64_t)it->price);
    p = w_u64(p, (uint64_t)it->restocked);
    p = w_u64(p, (uint64_t)it->reserved);
    p = w_u64(p, (uint64_t)it->sold);
    w_end(out, p);
}

int rmodel_item_decode(const void *p, size_t n, struct rmodel_item *it)
{
    struct rmodel_reader r = reader_open(p, n);
    it->registered = rd_u8(&r);
    it->name = rd_str(&r);
    it->category = rd_str(&r);
    it->price = read_i64(&r);
    it->restocked = read_i64(&r);
    it->reserved = read_i64(&r);
    it->sold = read_i64(&r);
    return r.bad || r.n ? RMODEL_EFORMAT : 0;
}

void rmodel_daily_encode(const struct rmodel_daily *d, struct sbuf *out)
{
    unsigned char *p = w_begin(out, 1 + 4 * 8);
    p = w_u8(p, RMODEL_VAL_V1);
    p = w_u64(p, d->created);
    p = w_u64(p, d->paid);
    p = w_u64(p, d->cancelled);
    p = w_u64(p, (uint64_t)d->revenue);
    w_end(out, p);
}

int rmodel_daily_decode(const void *p, size_t n, struct rmodel_daily *d)
{
    struct rmodel_reader r = reader_open(p, n);
    d->created = rd_u64(&r);
    d->paid = rd_u64(&r);
    d->cancelled = rd_u64(&r);
    d->revenue = read_i64(&r);
    return r.bad || r.n ? RMODEL_EFORMAT : 0;
}

void rmodel_ploc_put(struct sbuf *row, const struct rmodel_ploc *prev, struct rmodel_ploc at)
{
    unsigned char *p = w_begin(row, 1 + 2 * 10);
    if (prev && at.segment == prev->segment && at.offset > prev->offset) {
        p = w_varint(p, at.offset - prev->offset);
    } else {
        *p++ = 0;
        p = w_varint(p, at.segment);
        p = w_varint(p, at.offset);
    }
    w_end(row, p);
}

int rmodel_ploc_walk(const void *p, size_t n, uint64_t upto, uint64_t *count, size_t *bytes,
                     struct rmodel_ploc *last)
{
    struct rmodel_reader r = { p, n, 0 };
    *count = 0;
    *bytes = 0;
    if (rd_u8(&r) != RMODEL_VAL_V1 || r.bad)
        return RMODEL_EFORMAT;
    struct rmodel_ploc at = { 0, 0 };
    while (*count < upto && r.n) {
        if (*count == RMODEL_POS_CHUNK)
            return RMODEL_EFORMAT;
        uint64_t d = rd_varint(&r);
        if (d) {
            if (*count == 0 || at.offset > UINT64_MAX - d)
                return RMODEL_EFORMAT; /* a step from nothing, or past 2^64 */
            at.offset += d;
        } else {
            at.segment = rd_varint(&r);
            at.offset = rd_varint(&r);
        }
        if (r.bad)
            return RMODEL_EFORMAT;
        ++*count;
        *last = at;
    }
    *bytes = n - r.n;
    return 0;
}

void rmodel_stream_entry(struct sbuf *out, uint64_t slot, uint64_t position)
{
    assert(slot < RMODEL_STREAM_CHUNK && position > 0);
    unsigned char *p = w_begin(out, 1 + VARINT_MAX);
    p = w_u8(p, (uint8_t)slot);
    p = w_varint(p, position);
    w_end(out, p);
}

int rmodel_stream_merge(const void *p, size_t n, int row, uint64_t pos[RMODEL_STREAM_CHUNK])
{
    struct rmodel_reader r = { p, n, 0 };
    if (row && rd_u8(&r) != RMODEL_VAL_V2)
        return RMODEL_EFORMAT;
    if (r.bad)
        return RMODEL_EFORMAT;
    while (r.n) {
        uint8_t slot = rd_u8(&r);
        uint64_t position = rd_varint(&r);
        if (r.bad || slot >= RMODEL_STREAM_CHUNK || position == 0)
            return RMODEL_EFORMAT;
        pos[slot] = position;
    }
    return 0;
}

void rmodel_stream_encode(const uint64_t pos[RMODEL_STREAM_CHUNK], struct sbuf *out)
{
    sbuf_reset(out);
    rmodel_put_u8(out, RMODEL_VAL_V2);
    for (uint64_t slot = 0; slot < RMODEL_STREAM_CHUNK; slot++)
        if (pos[slot])
            rmodel_stream_entry(out, slot, pos[slot]);
}
