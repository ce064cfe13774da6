/* eflog: the one logging macro.
 *
 * One line per event worth knowing, to stderr (journald reads it):
 *   eventfold-command[1234]: info: worker started pid=1240
 *   eventfold-tailer[99]: error: checksum mismatch segment=... offset=... (src/read/tailer.c:120)
 * Level first, then a short message and key=value pairs; errors add file:line.
 * Lines are written with one write(2) so concurrent processes do not interleave them.
 */
#ifndef EF_EFLOG_H
#define EF_EFLOG_H

enum ef_level { EF_DEBUG = 0, EF_INFO = 1, EF_WARN = 2, EF_ERROR = 3 };

/* prog is kept by pointer: pass a string literal or argv[0]-lifetime string. */
void eflog_init(const char *prog, enum ef_level min_level);
void eflog_set_level(enum ef_level min_level);
enum ef_level eflog_level(void);
/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int eflog_parse_level(const char *s);

void eflog_write(enum ef_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define EF_LOG(level, ...) eflog_write((level), __FILE__, __LINE__, __VA_ARGS__)
#define LOG_DEBUG(...) EF_LOG(EF_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) EF_LOG(EF_INFO, __VA_ARGS__)
#define LOG_WARN(...) EF_LOG(EF_WARN, __VA_ARGS__)
#define LOG_ERROR(...) EF_LOG(EF_ERROR, __VA_ARGS__)

#endif
