/* record: the on-disk encoding of one log record.
 *
 * Little-endian, 8-byte aligned:
 *   0  u32 magic        "EFR1" (0x31524645)
 *   4  u32 length       whole record in bytes, padding included, multiple of 8
 *   8  u32 crc          CRC32C (Castagnoli, ISA-L crc32_iscsi) of bytes [12, 12+body)
 *   12 u16 format       record format version, 1
 *   14 u16 schema       the event's schema_version
 *   16 u64 position
 *   24 u64 stream_version
 *   32 i64 timestamp_ms
 *   40 u16 stream_len   1..LOG_STREAM_MAX
 *   42 u16 type_len     1..LOG_TYPE_MAX
 *   44 u32 meta_len     0.. (JSON object: idempotency key, request fingerprint, ...)
 *   48 u32 data_len     JSON event data
 *   52 u32 reserved     0
 *   56 stream, type, meta, data bytes, then zero padding to a multiple of 8
 * The CRC covers everything from offset 12 to the end of data (padding excluded), so a
 * record is verified by its own bytes alone: records are self-describing and can be
 * carried elsewhere (e.g. a Kafka partition) and folded the same way.
 */
#ifndef EF_RECORD_H
#define EF_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define LOG_RECORD_MAGIC 0x31524645u /* "EFR1" */
#define LOG_RECORD_FORMAT 1
#define LOG_HEADER_SIZE 56
#define LOG_STREAM_MAX 512
#define LOG_TYPE_MAX 128
#define LOG_RECORD_MAX (16u << 20) /* 16 MiB, whole record */

/* An event to append. Strings need not be NUL-terminated. */
struct log_event {
    const char *stream;
    size_t stream_len;
    const char *type;
    size_t type_len;
    uint16_t schema_version;
    uint64_t stream_version;
    int64_t timestamp_ms;
    const char *meta; /* may be NULL when meta_len is 0 */
    size_t meta_len;
    const char *data;
    size_t data_len;
};

/* A decoded, verified record. Pointers are into a buffer owned by whoever decoded it. */
struct log_record {
    uint64_t position;
    uint64_t stream_version;
    int64_t timestamp_ms;
    uint16_t schema_version;
    const char *stream;
    size_t stream_len;
    const char *type;
    size_t type_len;
    const char *meta;
    size_t meta_len;
    const char *data;
    size_t data_len;
    /* Where the record lives (0/0 when it did not come from a local segment). */
    uint64_t segment; /* first position of its segment */
    uint64_t offset;  /* byte offset in the segment file */
    uint32_t length;  /* encoded length */
};

/* CRC32C of n bytes continuing from crc (start with 0). */
uint32_t log_crc32c(uint32_t crc, const void *p, size_t n);

/* Encoded size of ev, or 0 if it exceeds LOG_RECORD_MAX or a field limit. */
size_t record_encoded_size(const struct log_event *ev);
/* Encodes ev at `position` into buf (record_encoded_size(ev) bytes). */
void record_encode(const struct log_event *ev, uint64_t position, void *buf);

enum record_status {
    RECORD_OK = 0,
    RECORD_SHORT = 1,   /* fewer bytes than the header or the length says: maybe torn */
    RECORD_ZERO = 2,    /* a zero magic: end of data (pre-allocated or torn) */
    RECORD_BAD = 3,     /* bad magic, framing or checksum */
    RECORD_VERSION = 4, /* a format newer than this build understands */
};
/* Decodes the record at buf (avail bytes available). On RECORD_OK fills *rec (pointers into
 * buf; segment/offset left to the caller). Never reads past avail. */
enum record_status record_decode(const void *buf, size_t avail, struct log_record *rec);

#endif
