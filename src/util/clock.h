/* clock: the one source of time.
 *
 * Wall-clock time (event timestamps, created_at) comes from ef_now_ms(); tests fix it with
 * ef_clock_set_fixed() so timestamps are reproducible. Durations use the monotonic clock.
 */
#ifndef EF_CLOCK_H
#define EF_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch, UTC. */
int64_t ef_now_ms(void);
/* Fix the wall clock at ms (tests only); a negative value returns to the real clock. */
void ef_clock_set_fixed(int64_t ms);
/* Monotonic nanoseconds, for durations and deadlines. */
uint64_t ef_mono_ns(void);

#define EF_TIME_RFC3339_LEN 25 /* "2026-11-26T23:08:03.123Z" plus NUL */
/* Formats ms as RFC 3339 UTC with milliseconds into out (at least EF_TIME_RFC3339_LEN bytes). */
void ef_format_time(int64_t ms, char *out);
/* Formats the UTC day of ms as "YYYY-MM-DD" into out (at least 11 bytes). */
void ef_format_day(int64_t ms, char *out);
/* Parses "YYYY-MM-DD" strictly; returns 0 and the day's midnight in ms, or -1. */
int ef_parse_day(const char *s, int64_t *ms_out);

#endif
