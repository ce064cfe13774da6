#include <config.h>

#include "util/replica.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/durable.h"

int replica_marker_read(const char *data_dir, char *stream, size_t cap)
{
    char buf[REPLICA_STREAM_MAX + 2];
    int n = ef_read_small(data_dir, REPLICA_MARKER, buf, sizeof buf);
    if (n == -ENOENT)
        return 0;
    if (n < 0)
        return n;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (n == 0 || (size_t)n >= cap || strchr(buf, '\n'))
        return -EINVAL;
    memcpy(stream, buf, (size_t)n + 1);
    return 1;
}

int replica_marker_write(const char *data_dir, const char *stream)
{
    char buf[REPLICA_STREAM_MAX + 2];
    int n = snprintf(buf, sizeof buf, "%s\n", stream);
    if (n <= 1 || (size_t)n >= sizeof buf)
        return -EINVAL;
    return ef_write_durably(data_dir, REPLICA_MARKER, buf, (size_t)n);
}

int replica_state_write(const char *data_dir, const struct replica_state *st)
{
    char buf[REPLICA_STREAM_MAX + 160];
    int n = snprintf(buf, sizeof buf,
                     "stream=%s\nposition=%" PRIu64 "\nstream_last=%" PRIu64 "\npid=%ld\n"
                     "time_ms=%" PRId64 "\n",
                     st->stream, st->position, st->stream_last, (long)st->pid, st->time_ms);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -EINVAL;
    return ef_replace_file(data_dir, REPLICA_STATE, buf, (size_t)n);
}

/* One "key=value" line's value as a number; -EINVAL when absent or not a number. */
static int state_u64(const char *text, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(p + kl + 1, &end, 10);
            if (errno || end == p + kl + 1 || (*end != '\n' && *end != '\0'))
                return -EINVAL;
            *out = v;
            return 0;
        }
    }
    return -EINVAL;
}

int replica_state_read(const char *data_dir, struct replica_state *st)
{
    char buf[REPLICA_STREAM_MAX + 160];
    int n = ef_read_small(data_dir, REPLICA_STATE, buf, sizeof buf);
    if (n < 0)
        return n;
    memset(st, 0, sizeof *st);
    if (strncmp(buf, "stream=", 7) != 0)
        return -EINVAL;
    size_t sl = strcspn(buf + 7, "\n");
    if (sl == 0 || sl >= sizeof st->stream)
        return -EINVAL;
    memcpy(st->stream, buf + 7, sl);
    uint64_t pid = 0, t = 0;
    if (state_u64(buf, "position", &st->position) || state_u64(buf, "stream_last", &st->stream_last) ||
        state_u64(buf, "pid", &pid) || state_u64(buf, "time_ms", &t))
        return -EINVAL;
    st->pid = (pid_t)pid;
    st->time_ms = (int64_t)t;
    return 0;
}
