#include <config.h>

#include "util/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t fixed_ms = -1;

void ef_clock_set_fixed(int64_t ms) { fixed_ms = ms; }

int64_t ef_now_ms(void)
{
    if (fixed_ms >= 0)
        return fixed_ms;
    struct timespec ts;
    /* CLOCK_REALTIME cannot fail with a valid clock id and pointer. */
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t ef_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void split_ms(int64_t ms, struct tm *tm, int *millis)
{
    int64_t secs = ms / 1000;
    int64_t rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    gmtime_r(&t, tm);
    *millis = (int)rem;
}

void ef_format_time(int64_t ms, char *out)
{
    struct tm tm;
    int millis;
    split_ms(ms, &tm, &millis);
    /* Formatted into a buffer sized for any int values (so -Wformat-truncation can prove
     * no truncation), then copied: with fields in range the text is always 24 characters. */
    char tmp[96];
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec, millis);
    memcpy(out, tmp, EF_TIME_RFC3339_LEN - 1);
    out[EF_TIME_RFC3339_LEN - 1] = '\0';
}

void ef_format_day(int64_t ms, char *out)
{
    struct tm tm;
    int millis;
    split_ms(ms, &tm, &millis);
    char tmp[48]; /* as in ef_format_time: always 10 characters */
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02d", (tm.tm_year + 1900) % 10000, tm.tm_mon + 1,
             tm.tm_mday);
    memcpy(out, tmp, 10);
    out[10] = '\0';
}

int ef_parse_day(const char *s, int64_t *ms_out)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    struct tm tm = { 0 };
    tm.tm_year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0') - 1900;
    tm.tm_mon = (s[5] - '0') * 10 + (s[6] - '0') - 1;
    tm.tm_mday = (s[8] - '0') * 10 + (s[9] - '0');
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31)
        return -1;
    int mday = tm.tm_mday, mon = tm.tm_mon;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != mday || tm.tm_mon != mon) /* rejects 2026-02-30 */
        return -1;
    *ms_out = (int64_t)t * 1000;
    return 0;
}
