#include <config.h>

#include "util/eflog.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *log_prog = "eventfold";
static enum ef_level log_min = EF_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void eflog_init(const char *prog, enum ef_level min_level)
{
    const char *slash = strrchr(prog, '/');
    log_prog = slash ? slash + 1 : prog;
    log_min = min_level;
}

void eflog_set_level(enum ef_level min_level) { log_min = min_level; }

enum ef_level eflog_level(void) { return log_min; }

int eflog_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return EF_WARN;
    return -1;
}

void eflog_write(enum ef_level level, const char *file, int line, const char *fmt, ...)
{
    if (level < log_min)
        return;
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "%s[%ld]: %s: ", log_prog, (long)getpid(), level_names[level]);
    if (n < 0)
        return;
    size_t len = (size_t)n;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + len, sizeof buf - len, fmt, ap);
    va_end(ap);
    if (m > 0)
        len += (size_t)m < sizeof buf - len ? (size_t)m : sizeof buf - len - 1;
    if (level >= EF_ERROR && len < sizeof buf - 1) {
        m = snprintf(buf + len, sizeof buf - len, " (%s:%d)", file, line);
        if (m > 0)
            len += (size_t)m < sizeof buf - len ? (size_t)m : sizeof buf - len - 1;
    }
    if (len >= sizeof buf - 1)
        len = sizeof buf - 2;
    buf[len++] = '\n';
    /* Best effort: there is nowhere else to report a failed write to stderr. */
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

const char *eflog_esc(const char *s, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    if (cap == 0)
        return "";
    if (!s) {
        snprintf(out, cap, "-");
        return out;
    }
    size_t o = 0, i = 0, keep = n < EFLOG_FIELD_MAX ? n : EFLOG_FIELD_MAX;
    for (; i < keep; i++) {
        unsigned char c = (unsigned char)s[i];
        int plain = c >= 0x20 && c < 0x7f && c != '\\' && c != '"';
        if (o + (plain ? 1 : 4) + 4 > cap) /* room for this, "..." and the NUL */
            break;
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (i < n && o + 4 <= cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o < cap ? o : cap - 1] = '\0';
    return out;
}
