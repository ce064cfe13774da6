#include <config.h>

#include "relay/relay_state.h"
#include "util/durable.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/config.h"

static int state_path(char *out, size_t cap, const char *data_dir, const char *sink, const char *ext)
{
    int n = snprintf(out, cap, "%s/relay-%s.%s", data_dir, sink, ext);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static void whole_file_lock(struct flock *fl, short type)
{
    memset(fl, 0, sizeof *fl);
    fl->l_type = type;
    fl->l_whence = SEEK_SET;
    fl->l_start = 0;
    fl->l_len = 0; /* to the end, whatever the size */
}

int relay_state_lock(const char *data_dir, const char *sink, int *fd)
{
    char path[EF_PATH_MAX];
    int rc = state_path(path, sizeof path, data_dir, sink, "lock");
    if (rc)
        return rc;
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0)
        return -errno;
    struct flock fl;
    whole_file_lock(&fl, F_WRLCK);
    if (fcntl(f, F_OFD_SETLK, &fl) < 0) {
        rc = errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
        close(f);
        return rc;
    }
    *fd = f;
    return 0;
}

int relay_state_running(const char *data_dir, const char *sink)
{
    char path[EF_PATH_MAX];
    if (state_path(path, sizeof path, data_dir, sink, "lock"))
        return 0;
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0)
        return 0;
    struct flock fl;
    whole_file_lock(&fl, F_WRLCK);
    int running = fcntl(f, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    close(f);
    return running;
}

int relay_state_write(const char *data_dir, const struct relay_state *st)
{
    char name[128], buf[256];
    int k = snprintf(name, sizeof name, "relay-%s.state", st->sink);
    if (k < 0 || (size_t)k >= sizeof name)
        return -ENAMETOOLONG;
    int n = snprintf(buf, sizeof buf, "sink=%s\nposition=%" PRIu64 "\npid=%" PRId64 "\nupdated_ms=%" PRId64 "\n",
                     st->sink, st->position, st->pid, st->updated_ms);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -EINVAL;
    return ef_replace_file(data_dir, name, buf, (size_t)n);
}

/* Parses one "key=value" line into st; unknown keys are ignored (newer writers). */
static int parse_line(char *line, struct relay_state *st, unsigned *seen)
{
    char *eq = strchr(line, '=');
    if (!eq)
        return -EINVAL;
    *eq = '\0';
    const char *v = eq + 1;
    char *end;
    errno = 0;
    if (strcmp(line, "sink") == 0) {
        if (strlen(v) == 0 || strlen(v) >= sizeof st->sink)
            return -EINVAL;
        strcpy(st->sink, v);
        *seen |= 1;
    } else if (strcmp(line, "position") == 0) {
        st->position = strtoull(v, &end, 10);
        if (errno || end == v || *end)
            return -EINVAL;
        *seen |= 2;
    } else if (strcmp(line, "pid") == 0) {
        st->pid = strtoll(v, &end, 10);
        if (errno || end == v || *end)
            return -EINVAL;
    } else if (strcmp(line, "updated_ms") == 0) {
        st->updated_ms = strtoll(v, &end, 10);
        if (errno || end == v || *end)
            return -EINVAL;
    }
    return 0;
}

int relay_state_read(const char *data_dir, const char *sink, struct relay_state *st)
{
    char path[EF_PATH_MAX];
    int rc = state_path(path, sizeof path, data_dir, sink, "state");
    if (rc)
        return rc;
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0)
        return -errno;
    char buf[512];
    ssize_t n = read(f, buf, sizeof buf - 1);
    rc = n < 0 ? -errno : 0;
    close(f);
    if (rc)
        return rc;
    buf[n] = '\0';
    memset(st, 0, sizeof *st);
    unsigned seen = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if ((rc = parse_line(line, st, &seen)) != 0)
            return rc;
    /* Both needed, and the file must be the sink's own. */
    return seen == 3 && strcmp(st->sink, sink) == 0 ? 0 : -EINVAL;
}

/* "relay-NAME.state" -> NAME in out; 0 if the entry is not a state file. */
static int sink_of_entry(const char *name, char *out, size_t cap)
{
    static const char pre[] = "relay-", suf[] = ".state";
    size_t n = strlen(name);
    if (n <= strlen(pre) + strlen(suf) || strncmp(name, pre, strlen(pre)) != 0 ||
        strcmp(name + n - strlen(suf), suf) != 0)
        return 0;
    size_t len = n - strlen(pre) - strlen(suf);
    if (len >= cap)
        return 0;
    memcpy(out, name + strlen(pre), len);
    out[len] = '\0';
    return 1;
}

static int by_sink(const void *a, const void *b)
{
    return strcmp(((const struct relay_state *)a)->sink, ((const struct relay_state *)b)->sink);
}

size_t relay_state_list(const char *data_dir, struct relay_state *out, size_t max)
{
    DIR *d = opendir(data_dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    char sink[RELAY_SINK_NAME_MAX];
    while (n < max && (e = readdir(d)) != NULL) {
        if (!sink_of_entry(e->d_name, sink, sizeof sink))
            continue;
        if (relay_state_running(data_dir, sink) && relay_state_read(data_dir, sink, &out[n]) == 0)
            n++;
    }
    closedir(d);
    qsort(out, n, sizeof *out, by_sink);
    return n;
}

static uint64_t lag(uint64_t head, uint64_t position)
{
    return head > position ? head - position : 0;
}

void relay_state_render_status(const char *data_dir, uint64_t head, struct sbuf *out)
{
    struct relay_state st[RELAY_STATE_MAX];
    size_t n = relay_state_list(data_dir, st, RELAY_STATE_MAX);
    sbuf_json_key(out, "relays");
    sbuf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            sbuf_putc(out, ',');
        sbuf_putc(out, '{');
        sbuf_json_key(out, "sink");
        sbuf_json_cstr(out, st[i].sink);
        sbuf_json_key(out, "position");
        sbuf_json_u64(out, st[i].position);
        sbuf_json_key(out, "lag_events");
        sbuf_json_u64(out, lag(head, st[i].position));
        sbuf_putc(out, '}');
    }
    sbuf_putc(out, ']');
}

/* Sink names come from our own file names; only [a-z0-9_] ones are shown as labels, so
 * no escaping is ever needed. */
static int label_safe(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

void relay_state_render_metrics(const char *data_dir, uint64_t head, struct sbuf *out)
{
    struct relay_state st[RELAY_STATE_MAX];
    size_t n = relay_state_list(data_dir, st, RELAY_STATE_MAX);
    sbuf_puts(out, "# HELP eventfold_relay_position Highest log position the relay's sink confirmed.\n"
                   "# TYPE eventfold_relay_position gauge\n");
    for (size_t i = 0; i < n; i++)
        if (label_safe(st[i].sink))
            sbuf_printf(out, "eventfold_relay_position{sink=\"%s\"} %" PRIu64 "\n", st[i].sink,
                        st[i].position);
    sbuf_puts(out, "# HELP eventfold_relay_lag_events Durable events not yet confirmed by the relay's sink.\n"
                   "# TYPE eventfold_relay_lag_events gauge\n");
    for (size_t i = 0; i < n; i++)
        if (label_safe(st[i].sink))
            sbuf_printf(out, "eventfold_relay_lag_events{sink=\"%s\"} %" PRIu64 "\n", st[i].sink,
                        lag(head, st[i].position));
}
