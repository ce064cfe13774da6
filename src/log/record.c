#include <config.h>

#include "log/record.h"

#include <assert.h>
#include <endian.h>
#include <string.h>

#include "util/crc32c.h"

/* Field offsets of the header (see record.h). */
enum {
    OFF_MAGIC = 0,
    OFF_LENGTH = 4,
    OFF_CRC = 8,
    OFF_FORMAT = 12,
    OFF_SCHEMA = 14,
    OFF_POSITION = 16,
    OFF_VERSION = 24,
    OFF_TIME = 32,
    OFF_STREAM_LEN = 40,
    OFF_TYPE_LEN = 42,
    OFF_META_LEN = 44,
    OFF_DATA_LEN = 48,
    OFF_RESERVED = 52,
    CRC_START = 12,
};

/* Unaligned little-endian access through memcpy: records sit at 8-byte aligned file
 * offsets, but buffers handed to record_decode need not be aligned. */
static void put16(unsigned char *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void put32(unsigned char *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static uint16_t get16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

/* The one CRC32C implementation lives in util (snapshots use it too). */
uint32_t log_crc32c(uint32_t crc, const void *p, size_t n)
{
    return ef_crc32c(crc, p, n);
}

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

size_t record_encoded_size(const struct log_event *ev)
{
    if (ev->stream_len == 0 || ev->stream_len > LOG_STREAM_MAX)
        return 0;
    if (ev->type_len == 0 || ev->type_len > LOG_TYPE_MAX)
        return 0;
    /* Compare before adding so that huge lengths cannot wrap around. */
    size_t room = LOG_RECORD_MAX - LOG_HEADER_SIZE - ev->stream_len - ev->type_len;
    if (ev->meta_len > room || ev->data_len > room - ev->meta_len)
        return 0;
    size_t n = align8(LOG_HEADER_SIZE + ev->stream_len + ev->type_len + ev->meta_len + ev->data_len);
    return n <= LOG_RECORD_MAX ? n : 0;
}

void record_encode(const struct log_event *ev, uint64_t position, void *buf)
{
    size_t len = record_encoded_size(ev);
    assert(len > 0);
    unsigned char *b = buf;
    size_t body = LOG_HEADER_SIZE + ev->stream_len + ev->type_len + ev->meta_len + ev->data_len;

    put32(b + OFF_MAGIC, LOG_RECORD_MAGIC);
    put32(b + OFF_LENGTH, (uint32_t)len);
    put16(b + OFF_FORMAT, LOG_RECORD_FORMAT);
    put16(b + OFF_SCHEMA, ev->schema_version);
    put64(b + OFF_POSITION, position);
    put64(b + OFF_VERSION, ev->stream_version);
    put64(b + OFF_TIME, (uint64_t)ev->timestamp_ms);
    put16(b + OFF_STREAM_LEN, (uint16_t)ev->stream_len);
    put16(b + OFF_TYPE_LEN, (uint16_t)ev->type_len);
    put32(b + OFF_META_LEN, (uint32_t)ev->meta_len);
    put32(b + OFF_DATA_LEN, (uint32_t)ev->data_len);
    put32(b + OFF_RESERVED, 0);
    unsigned char *p = b + LOG_HEADER_SIZE;
    memcpy(p, ev->stream, ev->stream_len);
    p += ev->stream_len;
    memcpy(p, ev->type, ev->type_len);
    p += ev->type_len;
    if (ev->meta_len > 0)
        memcpy(p, ev->meta, ev->meta_len);
    p += ev->meta_len;
    if (ev->data_len > 0)
        memcpy(p, ev->data, ev->data_len);
    memset(b + body, 0, len - body);
    put32(b + OFF_CRC, log_crc32c(0, b + CRC_START, body - CRC_START));
}

/* Checks the framing that the CRC already vouches for, so that a record written by a buggy
 * (or hostile) encoder with a matching CRC still cannot make us read out of bounds. */
static enum record_status check_body(const unsigned char *b, uint32_t len, struct log_record *rec)
{
    size_t s = get16(b + OFF_STREAM_LEN), t = get16(b + OFF_TYPE_LEN);
    size_t m = get32(b + OFF_META_LEN), d = get32(b + OFF_DATA_LEN);
    if (s == 0 || s > LOG_STREAM_MAX || t == 0 || t > LOG_TYPE_MAX)
        return RECORD_BAD;
    if (m > len || d > len || LOG_HEADER_SIZE + s + t + m + d > len)
        return RECORD_BAD;
    size_t body = LOG_HEADER_SIZE + s + t + m + d;
    if (align8(body) != len || get32(b + OFF_RESERVED) != 0)
        return RECORD_BAD;
    for (size_t i = body; i < len; i++)
        if (b[i] != 0)
            return RECORD_BAD;

    const char *p = (const char *)b + LOG_HEADER_SIZE;
    memset(rec, 0, sizeof *rec);
    rec->position = get64(b + OFF_POSITION);
    rec->stream_version = get64(b + OFF_VERSION);
    rec->timestamp_ms = (int64_t)get64(b + OFF_TIME);
    rec->schema_version = get16(b + OFF_SCHEMA);
    rec->stream = p;
    rec->stream_len = s;
    rec->type = p + s;
    rec->type_len = t;
    rec->meta = p + s + t;
    rec->meta_len = m;
    rec->data = p + s + t + m;
    rec->data_len = d;
    rec->length = len;
    return RECORD_OK;
}

enum record_status record_decode(const void *buf, size_t avail, struct log_record *rec)
{
    const unsigned char *b = buf;
    if (avail < 4) {
        /* Too few bytes to tell; all-zero counts as the zero tail already. */
        for (size_t i = 0; i < avail; i++)
            if (b[i] != 0)
                return RECORD_SHORT;
        return avail == 0 ? RECORD_SHORT : RECORD_ZERO;
    }
    uint32_t magic = get32(b + OFF_MAGIC);
    if (magic == 0)
        return RECORD_ZERO;
    if (magic != LOG_RECORD_MAGIC)
        return RECORD_BAD;
    if (avail < 8)
        return RECORD_SHORT;
    uint32_t len = get32(b + OFF_LENGTH);
    if (len < LOG_HEADER_SIZE || len > LOG_RECORD_MAX || len % 8 != 0)
        return RECORD_BAD;
    if (avail < len)
        return RECORD_SHORT;
    /* The CRC covers [12, end of data); the data length is needed to find that end and is
     * itself covered, so bound it first and let the CRC decide. */
    size_t body = LOG_HEADER_SIZE + (size_t)get16(b + OFF_STREAM_LEN) + get16(b + OFF_TYPE_LEN) +
                  get32(b + OFF_META_LEN) + get32(b + OFF_DATA_LEN);
    if (body > len)
        return RECORD_BAD;
    if (log_crc32c(0, b + CRC_START, body - CRC_START) != get32(b + OFF_CRC))
        return RECORD_BAD;
    uint16_t format = get16(b + OFF_FORMAT);
    if (format > LOG_RECORD_FORMAT)
        return RECORD_VERSION;
    if (format != LOG_RECORD_FORMAT)
        return RECORD_BAD;
    return check_body(b, len, rec);
}
