#include <config.h>

#include "util/sbuf.h"

#include "util/clock.h"
#include "util/xalloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

void sbuf_init(struct sbuf *sb)
{
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
}

void sbuf_free(struct sbuf *sb)
{
    free(sb->data);
    sbuf_init(sb);
}

void sbuf_reset(struct sbuf *sb)
{
    sb->len = 0;
    if (sb->data)
        sb->data[0] = '\0';
}

void sbuf_reserve(struct sbuf *sb, size_t n)
{
    /* A size past SIZE_MAX comes from a length gone wrong, never from data: like out of
     * memory it is not survived (xalloc.h), and it must not wrap into a small size that
     * passes the check below and is then written past. */
    if (n > SIZE_MAX - 1 - sb->len) {
        fprintf(stderr, "eventfold: a buffer of %zu + %zu bytes cannot be represented\n",
                sb->len, n);
        abort();
    }
    size_t need = sb->len + n + 1;
    if (need <= sb->cap)
        return;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    sb->data = xrealloc(sb->data, cap);
    sb->cap = cap;
}

void sbuf_append(struct sbuf *sb, const void *p, size_t n)
{
    sbuf_reserve(sb, n);
    if (n)
        memcpy(sb->data + sb->len, p, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void sbuf_puts(struct sbuf *sb, const char *s) { sbuf_append(sb, s, strlen(s)); }

void sbuf_putc(struct sbuf *sb, char c)
{
    sbuf_reserve(sb, 1);
    sb->data[sb->len++] = c;
    sb->data[sb->len] = '\0';
}

void sbuf_vprintf(struct sbuf *sb, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        sbuf_append(sb, small, (size_t)n);
        return;
    }
    sbuf_reserve(sb, (size_t)n);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
}

void sbuf_printf(struct sbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sbuf_vprintf(sb, fmt, ap);
    va_end(ap);
}

const char *sbuf_str(struct sbuf *sb) { return sb->data ? sb->data : ""; }

void sbuf_json_str(struct sbuf *sb, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    sbuf_reserve(sb, n + 2);
    sb->data[sb->len++] = '"';
    size_t run = 0; /* start of the current run of bytes copied as they are */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sbuf_append(sb, s + run, i - run);
        run = i + 1;
        char esc[7] = { '\\', 0 };
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        sbuf_append(sb, esc, elen);
    }
    sbuf_append(sb, s + run, n - run);
    sbuf_putc(sb, '"');
}

void sbuf_json_cstr(struct sbuf *sb, const char *s)
{
    if (!s)
        sbuf_append(sb, "null", 4);
    else
        sbuf_json_str(sb, s, strlen(s));
}

void sbuf_json_i64(struct sbuf *sb, int64_t v) { sbuf_printf(sb, "%" PRId64, v); }

void sbuf_json_u64(struct sbuf *sb, uint64_t v) { sbuf_printf(sb, "%" PRIu64, v); }

void sbuf_json_key(struct sbuf *sb, const char *key)
{
    if (sb->len && sb->data[sb->len - 1] != '{' && sb->data[sb->len - 1] != '[')
        sbuf_putc(sb, ',');
    sbuf_putc(sb, '"');
    sbuf_puts(sb, key);
    sbuf_append(sb, "\":", 2);
}

void sbuf_json_time(struct sbuf *sb, int64_t ms)
{
    char t[EF_TIME_RFC3339_LEN];
    ef_format_time(ms, t);
    sbuf_putc(sb, '"');
    sbuf_puts(sb, t);
    sbuf_putc(sb, '"');
}
