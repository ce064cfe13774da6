#include <config.h>

#include "log_testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/xalloc.h"

char *lt_mkdtemp(const char *name)
{
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/eflog-%s-XXXXXX", name);
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        abort();
    }
    return xstrdup(tmpl);
}

struct log *lt_open(const char *dir, uint64_t segment_bytes)
{
    struct log_options opt = { .segment_bytes = segment_bytes };
    struct log *lg = NULL;
    int err = log_open(dir, &opt, &lg);
    ck_assert_msg(err == 0, "log_open(%s): %s: %s", dir, log_strerror(err), log_last_error(NULL));
    return lg;
}

void lt_event(uint64_t i, size_t pad, char *buf, struct log_event *ev)
{
    memset(ev, 0, sizeof *ev);
    char *stream = buf, *type = buf + 32, *data = buf + 64;
    ev->stream_len = (size_t)snprintf(stream, 32, "s-%" PRIu64, i % 7);
    ev->type_len = (size_t)snprintf(type, 32, "T%" PRIu64, i % 3);
    int n = snprintf(data, 64, "{\"i\":%" PRIu64 ",\"pad\":\"", i);
    size_t extra = pad ? (size_t)((i * 37) % pad) : 0;
    memset(data + n, 'x', extra);
    memcpy(data + n + extra, "\"}", 2);
    ev->stream = stream;
    ev->type = type;
    ev->data = data;
    ev->data_len = (size_t)n + extra + 2;
    ev->schema_version = 1;
    ev->stream_version = i;
    ev->timestamp_ms = 1700000000000 + (int64_t)i;
}

void lt_append_n(struct log *lg, uint64_t first, uint64_t n, size_t pad)
{
    char *buf = xmalloc(512 + pad);
    for (uint64_t i = first; i < first + n; i++) {
        struct log_event ev;
        uint64_t pos = 0;
        lt_event(i, pad, buf, &ev);
        int err = log_append(lg, &ev, &pos);
        ck_assert_msg(err == 0, "append %" PRIu64 ": %s: %s", i, log_strerror(err), log_last_error(lg));
        ck_assert_uint_eq(pos, i);
    }
    free(buf);
}

void lt_append_batch(struct log *lg, uint64_t first, uint64_t n, size_t pad)
{
    char *buf = xmalloc(512 + pad);
    ck_assert_int_eq(log_append_begin(lg), 0);
    uint64_t pos = 0;
    for (uint64_t i = first; i < first + n; i++) {
        struct log_event ev;
        lt_event(i, pad, buf, &ev);
        int err = log_append_record(lg, &ev, &pos);
        ck_assert_msg(err == 0, "append %" PRIu64 ": %s: %s", i, log_strerror(err), log_last_error(lg));
        ck_assert_uint_eq(pos, i);
    }
    log_append_end(lg);
    ck_assert_int_eq(log_sync(lg, pos), 0);
    free(buf);
}

unsigned char *lt_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 65536;
            buf = xrealloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

uint64_t lt_data_size(const char *path)
{
    size_t len;
    unsigned char *buf = lt_slurp(path, &len);
    ck_assert_msg(buf != NULL, "cannot read %s", path);
    while (len > 0 && buf[len - 1] == 0)
        len--;
    free(buf);
    return ((uint64_t)len + 7) & ~(uint64_t)7;
}

void lt_write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

const char *lt_seg(const char *dir, uint64_t first)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/%020" PRIu64 ".seg", dir, first);
    return path;
}

size_t lt_count_segments(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '\\.seg$'", dir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = 0;
    ck_assert_int_eq(fscanf(p, "%zu", &n), 1);
    pclose(p);
    return n;
}

int lt_run(char *const argv[], char *out, size_t cap, int timeout_s)
{
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t n = 0;
    time_t deadline = time(NULL) + timeout_s;
    int flags = fcntl(pipefd[0], F_GETFL);
    fcntl(pipefd[0], F_SETFL, flags | O_NONBLOCK);
    int status = 0;
    for (;;) {
        ssize_t r = read(pipefd[0], out + n, cap - 1 - n);
        if (r > 0) {
            n += (size_t)r;
            if (n < cap - 1)
                continue;
        }
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            while (n < cap - 1 && (r = read(pipefd[0], out + n, cap - 1 - n)) > 0)
                n += (size_t)r;
            break;
        }
        if (time(NULL) > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        usleep(2000);
    }
    close(pipefd[0]);
    out[n] = '\0';
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const char *lt_program(const char *name)
{
    static char path[4200];
    const char *b = getenv("EF_BUILDDIR");
    snprintf(path, sizeof path, "%s/%s", b && *b ? b : ".", name);
    return path;
}

static int saved_stderr = -1;
static char capture_path[64];

void lt_stderr_begin(void)
{
    snprintf(capture_path, sizeof capture_path, "/tmp/eflog-stderr-XXXXXX");
    int fd = mkstemp(capture_path);
    ck_assert_int_ge(fd, 0);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

const char *lt_stderr_end(void)
{
    static char text[65536];
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    size_t n = 0;
    unsigned char *b = lt_slurp(capture_path, &n);
    unlink(capture_path);
    n = n < sizeof text - 1 ? n : sizeof text - 1;
    if (b)
        memcpy(text, b, n);
    text[n] = '\0';
    free(b);
    /* Show it anyway, so the test log keeps what the library reported (best effort). */
    ssize_t w = write(STDERR_FILENO, text, n);
    (void)w;
    return text;
}
