/* fuzz_record: libFuzzer harness for the log record codec (src/log/record.c).
 *
 * The first input byte picks a mode:
 *  - even: the rest is handed to record_decode() as it is, in a heap buffer of exactly that
 *    size (so ASan traps any read past avail). A record that decodes must be framed
 *    consistently (length, field lengths, pointers inside the record), must re-encode to
 *    the same bytes, and must not decode from fewer bytes than its length.
 *  - odd: the rest is split into stream, type, meta and data, encoded with record_encode()
 *    and decoded again: the round trip must give back every field. Then one byte of the
 *    checksummed part (chosen by the input) is changed: the damaged record must never
 *    decode as valid (CRC32C detects every error burst up to 32 bits, and the framing
 *    fields are either covered by the CRC or checked against it).
 * Any violated property aborts (a crash for libFuzzer), so the input is kept as an artifact.
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/record.h"
#include "util/eflog.h"

#define FUZZ_NAME "fuzz_record"
#include "fuzz.h"

#define HDR LOG_HEADER_SIZE

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    eflog_init("fuzz_record", EF_ERROR);
    return 0;
}

static int is_status(enum record_status st)
{
    return st == RECORD_OK || st == RECORD_SHORT || st == RECORD_ZERO || st == RECORD_BAD ||
           st == RECORD_VERSION;
}

/* p[0, n) lies inside [lo, hi). */
static int inside(const char *p, size_t n, const unsigned char *lo, const unsigned char *hi)
{
    const unsigned char *q = (const unsigned char *)p;
    return q >= lo && q <= hi && n <= (size_t)(hi - q);
}

static struct log_event event_of(const struct log_record *r)
{
    struct log_event ev = {
        .stream = r->stream, .stream_len = r->stream_len,
        .type = r->type, .type_len = r->type_len,
        .schema_version = r->schema_version, .stream_version = r->stream_version,
        .timestamp_ms = r->timestamp_ms,
        .meta = r->meta, .meta_len = r->meta_len,
        .data = r->data, .data_len = r->data_len,
    };
    return ev;
}

static int same_fields(const struct log_record *a, const struct log_record *b)
{
    return a->position == b->position && a->stream_version == b->stream_version &&
           a->timestamp_ms == b->timestamp_ms && a->schema_version == b->schema_version &&
           a->length == b->length && a->stream_len == b->stream_len &&
           a->type_len == b->type_len && a->meta_len == b->meta_len &&
           a->data_len == b->data_len &&
           memcmp(a->stream, b->stream, a->stream_len) == 0 &&
           memcmp(a->type, b->type, a->type_len) == 0 &&
           (a->meta_len == 0 || memcmp(a->meta, b->meta, a->meta_len) == 0) &&
           (a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0);
}

/* Checks a record that decoded from buf[0, avail). */
static void check_decoded(const unsigned char *buf, size_t avail, const struct log_record *r)
{
    PROP(r->length >= HDR && r->length % 8 == 0 && r->length <= avail);
    PROP(r->length <= LOG_RECORD_MAX);
    PROP(r->stream_len >= 1 && r->stream_len <= LOG_STREAM_MAX);
    PROP(r->type_len >= 1 && r->type_len <= LOG_TYPE_MAX);
    const unsigned char *end = buf + r->length;
    PROP(inside(r->stream, r->stream_len, buf + HDR, end));
    PROP(inside(r->type, r->type_len, buf + HDR, end));
    PROP(r->meta_len == 0 || inside(r->meta, r->meta_len, buf + HDR, end));
    PROP(inside(r->data, r->data_len, buf + HDR, end));
    size_t body = HDR + r->stream_len + r->type_len + r->meta_len + r->data_len;
    /* Exact framing: the length is the body rounded up to 8, nothing more. A looser rule
     * would let a damaged length field (outside the CRC) move the next record's offset. */
    PROP(r->length == ((body + 7) & ~(size_t)7));

    /* Re-encoding gives the same record. */
    struct log_event ev = event_of(r);
    size_t n = record_encoded_size(&ev);
    PROP(n == r->length);
    unsigned char *out = malloc(n);
    PROP(out != NULL);
    record_encode(&ev, r->position, out);
    PROP(memcmp(out, buf, 8) == 0);            /* magic, length */
    PROP(memcmp(out + 12, buf + 12, 40) == 0); /* format .. data_len */
    PROP(memcmp(out + HDR, buf + HDR, body - HDR) == 0);
    for (size_t i = body; i < n; i++)
        PROP(out[i] == 0);
    struct log_record again;
    PROP(record_decode(out, n, &again) == RECORD_OK);
    PROP(same_fields(r, &again));
    free(out);

    /* A record never decodes from fewer bytes than it is long. */
    unsigned char *cut = malloc(r->length - 1);
    PROP(cut != NULL);
    memcpy(cut, buf, r->length - 1);
    struct log_record tmp;
    PROP(record_decode(cut, r->length - 1, &tmp) != RECORD_OK);
    free(cut);
}

static void mode_decode(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size ? size : 1);
    PROP(buf != NULL);
    if (size)
        memcpy(buf, data, size);
    struct log_record r;
    memset(&r, 0xA5, sizeof r);
    enum record_status st = record_decode(buf, size, &r);
    PROP(is_status(st));
    if (st == RECORD_OK)
        check_decoded(buf, size, &r);
    free(buf);
}

/* Reads a little-endian u16 from the input, or 0 past its end. */
static size_t take16(const uint8_t **p, size_t *n)
{
    size_t v = 0;
    for (int i = 0; i < 2 && *n > 0; i++, (*p)++, (*n)--)
        v |= (size_t)**p << (8 * i);
    return v;
}

static void mode_roundtrip(const uint8_t *data, size_t size)
{
    /* Layout: u16 stream_len, u16 type_len, u16 meta_len, u16 flip offset, u8 flip xor,
     * then bytes shared by the four fields (they may overlap: only lengths matter). */
    size_t sl = take16(&data, &size) % (LOG_STREAM_MAX + 2);
    size_t tl = take16(&data, &size) % (LOG_TYPE_MAX + 2);
    size_t ml = take16(&data, &size);
    size_t flip_at = take16(&data, &size);
    uint8_t flip = size ? *data : 0;
    if (size) {
        data++;
        size--;
    }
    static const char zeros[LOG_STREAM_MAX + 2];
    const char *src = size ? (const char *)data : zeros;
    size_t avail = size ? size : sizeof zeros;
    struct log_event ev = {
        .stream = src, .stream_len = sl < avail ? sl : avail,
        .type = src, .type_len = tl < avail ? tl : avail,
        .schema_version = (uint16_t)(flip_at ^ 0x5a5a),
        .stream_version = (uint64_t)flip_at * 7919u,
        .timestamp_ms = -(int64_t)flip_at,
        .meta = src, .meta_len = ml < avail ? ml : avail,
        .data = src, .data_len = avail,
    };
    size_t n = record_encoded_size(&ev);
    if (ev.stream_len == 0 || ev.stream_len > LOG_STREAM_MAX || ev.type_len == 0 ||
        ev.type_len > LOG_TYPE_MAX) {
        PROP(n == 0);
        return;
    }
    PROP(n >= HDR && n % 8 == 0);
    unsigned char *buf = malloc(n);
    PROP(buf != NULL);
    uint64_t pos = 1 + (uint64_t)flip_at * 1000003u;
    record_encode(&ev, pos, buf);
    struct log_record r;
    PROP(record_decode(buf, n, &r) == RECORD_OK);
    check_decoded(buf, n, &r);
    PROP(r.position == pos && r.stream_version == ev.stream_version &&
         r.timestamp_ms == ev.timestamp_ms && r.schema_version == ev.schema_version);
    PROP(r.stream_len == ev.stream_len && memcmp(r.stream, ev.stream, ev.stream_len) == 0);
    PROP(r.type_len == ev.type_len && memcmp(r.type, ev.type, ev.type_len) == 0);
    PROP(r.meta_len == ev.meta_len && (ev.meta_len == 0 || memcmp(r.meta, ev.meta, ev.meta_len) == 0));
    PROP(r.data_len == ev.data_len && memcmp(r.data, ev.data, ev.data_len) == 0);

    /* One damaged byte before the end of the data must be caught. Bytes of the padding are
     * outside the CRC by design (record.h), so they are not damaged here. */
    size_t body = HDR + ev.stream_len + ev.type_len + ev.meta_len + ev.data_len;
    if (flip != 0) {
        size_t at = flip_at % body;
        buf[at] ^= flip;
        struct log_record bad;
        enum record_status st = record_decode(buf, n, &bad);
        if (st == RECORD_OK)
            fprintf(stderr, "fuzz_record: damaged byte %zu (xor 0x%02x) of %zu decoded as valid\n",
                    at, flip, n);
        PROP(st != RECORD_OK);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        mode_roundtrip(data + 1, size - 1);
    else
        mode_decode(data + 1, size - 1);
    return 0;
}
