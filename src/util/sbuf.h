/* sbuf: a growable byte buffer, and JSON text written into it.
 *
 * Used to build responses, log records and LMDB values. The buffer always keeps a NUL after
 * len bytes so data can be used as a C string when it holds text. Growth goes through
 * xrealloc (aborts on OOM). An sbuf owns its data; sbuf_free() releases it and may be called
 * on a zeroed sbuf.
 */
#ifndef EF_SBUF_H
#define EF_SBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct sbuf {
    char *data; /* NUL-terminated after len; NULL until the first append */
    size_t len;
    size_t cap;
};

#define SBUF_INIT { NULL, 0, 0 }

void sbuf_init(struct sbuf *sb);
void sbuf_free(struct sbuf *sb);
/* Empties the buffer, keeping its memory. */
void sbuf_reset(struct sbuf *sb);
/* Makes room for n more bytes. */
void sbuf_reserve(struct sbuf *sb, size_t n);
void sbuf_append(struct sbuf *sb, const void *p, size_t n);
void sbuf_puts(struct sbuf *sb, const char *s);
void sbuf_putc(struct sbuf *sb, char c);
void sbuf_printf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_vprintf(struct sbuf *sb, const char *fmt, va_list ap);
/* Returns the text (never NULL; "" when empty). Valid until the next change to sb. */
const char *sbuf_str(struct sbuf *sb);

/* JSON output. json_str writes a quoted, escaped string: control characters, '"', '\\' are
 * escaped; bytes >= 0x80 are copied as they are (callers only store validated UTF-8);
 * '/' is not escaped. */
void sbuf_json_str(struct sbuf *sb, const char *s, size_t n);
void sbuf_json_cstr(struct sbuf *sb, const char *s);
void sbuf_json_i64(struct sbuf *sb, int64_t v);
void sbuf_json_u64(struct sbuf *sb, uint64_t v);
/* Writes "key": (with the comma first unless the buffer's last byte is '{' or '[').
 * The key is written as-is, so it must not need escaping. */
void sbuf_json_key(struct sbuf *sb, const char *key);
/* Writes the RFC 3339 time of ms as a JSON string. */
void sbuf_json_time(struct sbuf *sb, int64_t ms);

#endif
