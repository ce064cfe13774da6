/* eflog: the one logging macro.
 *
 * One line per event worth knowing, to stderr (journald reads it):
 *   eventfold-command[1234]: info: worker started pid=1240
 *   eventfold-tailer[99]: error: checksum mismatch segment=... offset=... (src/fold/tailer.c:120)
 * Level first, then a short message and key=value pairs; errors add file:line.
 * Lines are written with one write(2) so concurrent processes do not interleave them.
 */
#ifndef EF_EFLOG_H
#define EF_EFLOG_H

#include <stddef.h>
#include <string.h>

enum ef_level { EF_DEBUG = 0, EF_INFO = 1, EF_WARN = 2, EF_ERROR = 3 };

/* prog is kept by pointer: pass a string literal or argv[0]-lifetime string. */
void eflog_init(const char *prog, enum ef_level min_level);
void eflog_set_level(enum ef_level min_level);
enum ef_level eflog_level(void);
/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int eflog_parse_level(const char *s);

void eflog_write(enum ef_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Client-supplied bytes (paths, ids, methods, header values) go into a log line only
 * through eflog_esc, so that a client cannot forge lines (a newline), hide text (control
 * characters, terminal escapes) or make a line huge: bytes outside printable ASCII, and
 * the backslash and the double quote, become \xNN; at most EFLOG_FIELD_MAX input bytes are
 * kept, followed by "..." when there were more. NULL becomes "-". Writes into out (cap
 * bytes, at least EFLOG_ESC_CAP for an uncut result) and returns it, NUL-terminated. */
#define EFLOG_FIELD_MAX 256
#define EFLOG_ESC_CAP (EFLOG_FIELD_MAX * 4 + 4)
const char *eflog_esc(const char *s, size_t n, char *out, size_t cap);
/* eflog_esc of a NUL-terminated string into a buffer that lives until the end of the
 * enclosing block (a compound literal): for one LOG_* call's arguments. */
static inline size_t eflog_len(const char *s) { return s ? strlen(s) : 0; }
#define EFLOG_S(s) eflog_esc((s), eflog_len(s), (char[EFLOG_ESC_CAP]){ 0 }, EFLOG_ESC_CAP)

#define EF_LOG(level, ...) eflog_write((level), __FILE__, __LINE__, __VA_ARGS__)
#define EFLOG_DEBUG(...) EF_LOG(EF_DEBUG, __VA_ARGS__)
#define EFLOG_INFO(...) EF_LOG(EF_INFO, __VA_ARGS__)
#define EFLOG_WARN(...) EF_LOG(EF_WARN, __VA_ARGS__)
#define EFLOG_ERROR(...) EF_LOG(EF_ERROR, __VA_ARGS__)

#endif
