#include <config.h>

#include "read/rm_layout.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "read/rm.h"
#include "util/xalloc.h"

static const char *const status_names[] = { NULL, "created", "paid", "shipped", "delivered",
                                            "cancelled" };

const char *rm_status_name(int status)
{
    if (status < RM_CREATED || status > RM_CANCELLED)
        return NULL;
    return status_names[status];
}

void rm_put_u8(struct sbuf *sb, uint8_t v) { sbuf_append(sb, &v, 1); }

void rm_put_u64(struct sbuf *sb, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    sbuf_append(sb, b, 8);
}

void rm_put_str(struct sbuf *sb, struct rm_str s)
{
    assert(s.n <= UINT16_MAX);
    unsigned char b[2] = { (unsigned char)(s.n & 0xff), (unsigned char)(s.n >> 8) };
    sbuf_append(sb, b, 2);
    sbuf_append(sb, s.p, s.n);
}

void rm_put_be64(unsigned char out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(v >> (56 - 8 * i));
}

uint64_t rm_get_be64(const unsigned char in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

/* The reader never reads past n: a short value sets bad and yields zeros, so a decoder can
 * read every field and check bad once at the end. */
static const unsigned char *take(struct rm_reader *r, size_t k)
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

uint8_t rm_read_u8(struct rm_reader *r)
{
    const unsigned char *p = take(r, 1);
    return p ? p[0] : 0;
}

uint16_t rm_read_u16(struct rm_reader *r)
{
    const unsigned char *p = take(r, 2);
    return p ? (uint16_t)(p[0] | (p[1] << 8)) : 0;
}

uint64_t rm_read_u64(struct rm_reader *r)
{
    const unsigned char *p = take(r, 8);
    uint64_t v = 0;
    if (p)
        for (int i = 7; i >= 0; i--)
            v = (v << 8) | p[i];
    return v;
}

struct rm_str rm_read_str(struct rm_reader *r)
{
    struct rm_str s = { "", 0 };
    size_t n = rm_read_u16(r);
    const unsigned char *p = take(r, n);
    if (p) {
        s.p = (const char *)p;
        s.n = n;
    }
    return s;
}

static void put_i64(struct sbuf *sb, int64_t v) { rm_put_u64(sb, (uint64_t)v); }
static int64_t read_i64(struct rm_reader *r) { return (int64_t)rm_read_u64(r); }

/* Opens a reader on a value and checks its version byte. */
static struct rm_reader reader_open(const void *p, size_t n)
{
    struct rm_reader r = { p, n, 0 };
    if (rm_read_u8(&r) != RM_VAL_V1)
        r.bad = 1;
    return r;
}

void rm_order_clear(struct rm_order *o)
{
    free(o->lines);
    memset(o, 0, sizeof *o);
}

void rm_order_encode(const struct rm_order *o, struct sbuf *out)
{
    assert(rm_status_name(o->status) != NULL && o->nlines <= RM_MAX_LINES);
    rm_put_u8(out, RM_VAL_V1);
    rm_put_u8(out, (uint8_t)o->status);
    rm_put_u64(out, o->version);
    put_i64(out, o->created_at);
    put_i64(out, o->updated_at);
    put_i64(out, o->amount);
    rm_put_u64(out, o->created_position);
    rm_put_str(out, o->user);
    unsigned char b[2] = { (unsigned char)(o->nlines & 0xff), (unsigned char)(o->nlines >> 8) };
    sbuf_append(out, b, 2);
    for (size_t i = 0; i < o->nlines; i++) {
        const struct rm_line *l = &o->lines[i];
        rm_put_str(out, l->item);
        rm_put_str(out, l->name);
        rm_put_str(out, l->category);
        put_i64(out, l->quantity);
        put_i64(out, l->price);
    }
}

/* On success o->lines is allocated (rm_order_clear frees it); on failure o is cleared. */
int rm_order_decode(const void *p, size_t n, struct rm_order *o)
{
    memset(o, 0, sizeof *o);
    struct rm_reader r = reader_open(p, n);
    o->status = rm_read_u8(&r);
    o->version = rm_read_u64(&r);
    o->created_at = read_i64(&r);
    o->updated_at = read_i64(&r);
    o->amount = read_i64(&r);
    o->created_position = rm_read_u64(&r);
    o->user = rm_read_str(&r);
    o->nlines = rm_read_u16(&r);
    if (r.bad || o->nlines > RM_MAX_LINES || rm_status_name(o->status) == NULL)
        goto fail;
    o->lines = xcalloc(o->nlines ? o->nlines : 1, sizeof *o->lines);
    for (size_t i = 0; i < o->nlines; i++) {
        struct rm_line *l = &o->lines[i];
        l->item = rm_read_str(&r);
        l->name = rm_read_str(&r);
        l->category = rm_read_str(&r);
        l->quantity = read_i64(&r);
        l->price = read_i64(&r);
    }
    if (r.bad)
        goto fail;
    return 0;
fail:
    rm_order_clear(o);
    return RM_EFORMAT;
}

void rm_user_encode(const struct rm_user *u, struct sbuf *out)
{
    rm_put_u8(out, RM_VAL_V1);
    rm_put_u8(out, (uint8_t)(u->registered != 0));
    rm_put_str(out, u->name);
    put_i64(out, u->balance);
    rm_put_u64(out, u->order_count);
    put_i64(out, u->total_spent);
    rm_put_u64(out, u->spent_orders);
    put_i64(out, u->last_order_at);
}

int rm_user_decode(const void *p, size_t n, struct rm_user *u)
{
    struct rm_reader r = reader_open(p, n);
    u->registered = rm_read_u8(&r);
    u->name = rm_read_str(&r);
    u->balance = read_i64(&r);
    u->order_count = rm_read_u64(&r);
    u->total_spent = read_i64(&r);
    u->spent_orders = rm_read_u64(&r);
    u->last_order_at = read_i64(&r);
    return r.bad ? RM_EFORMAT : 0;
}

void rm_item_encode(const struct rm_item *it, struct sbuf *out)
{
    rm_put_u8(out, RM_VAL_V1);
    rm_put_u8(out, (uint8_t)(it->registered != 0));
    rm_put_str(out, it->name);
    rm_put_str(out, it->category);
    put_i64(out, it->price);
    put_i64(out, it->restocked);
    put_i64(out, it->reserved);
    put_i64(out, it->sold);
}

int rm_item_decode(const void *p, size_t n, struct rm_item *it)
{
    struct rm_reader r = reader_open(p, n);
    it->registered = rm_read_u8(&r);
    it->name = rm_read_str(&r);
    it->category = rm_read_str(&r);
    it->price = read_i64(&r);
    it->restocked = read_i64(&r);
    it->reserved = read_i64(&r);
    it->sold = read_i64(&r);
    return r.bad ? RM_EFORMAT : 0;
}

void rm_daily_encode(const struct rm_daily *d, struct sbuf *out)
{
    rm_put_u8(out, RM_VAL_V1);
    rm_put_u64(out, d->created);
    rm_put_u64(out, d->paid);
    rm_put_u64(out, d->cancelled);
    put_i64(out, d->revenue);
}

int rm_daily_decode(const void *p, size_t n, struct rm_daily *d)
{
    struct rm_reader r = reader_open(p, n);
    d->created = rm_read_u64(&r);
    d->paid = rm_read_u64(&r);
    d->cancelled = rm_read_u64(&r);
    d->revenue = read_i64(&r);
    return r.bad ? RM_EFORMAT : 0;
}
