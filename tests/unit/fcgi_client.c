#include <config.h>

#include "fcgi_client.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

enum {
    FCGI_VERSION_1 = 1,
    FCGI_BEGIN_REQUEST = 1,
    FCGI_END_REQUEST = 3,
    FCGI_PARAMS = 4,
    FCGI_STDIN = 5,
    FCGI_STDOUT = 6,
    FCGI_STDERR = 7,
    FCGI_RESPONDER = 1,
    FCGI_KEEP_CONN = 1,
    FCGI_MAX_CONTENT = 65535,
};

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

static int set_timeouts(int fd, int timeout_ms)
{
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        return -1;
    return 0;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int connect_tcp(const char *spec)
{
    char host[128];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof host) {
        errno = EINVAL;
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        int e = errno;
        close(fd);
        fd = -1;
        errno = e;
    }
    freeaddrinfo(res);
    return fd;
}

int fcgi_connect(const char *spec, int timeout_ms)
{
    int fd = strncmp(spec, "unix:", 5) == 0 ? connect_unix(spec + 5) : connect_tcp(spec);
    if (fd >= 0 && set_timeouts(fd, timeout_ms) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int put_record(int fd, int type, uint16_t id, const void *content, size_t len)
{
    unsigned char h[8] = { FCGI_VERSION_1, (unsigned char)type, (unsigned char)(id >> 8),
                           (unsigned char)id, (unsigned char)(len >> 8), (unsigned char)len, 0, 0 };
    if (write_all(fd, h, sizeof h) < 0)
        return -1;
    return len ? write_all(fd, content, len) : 0;
}

/* Writes a stream (PARAMS or STDIN) in records of at most 65535 bytes, then its end. */
static int put_stream(int fd, int type, uint16_t id, const unsigned char *p, size_t n)
{
    while (n > 0) {
        size_t chunk = n > FCGI_MAX_CONTENT ? FCGI_MAX_CONTENT : n;
        if (put_record(fd, type, id, p, chunk) < 0)
            return -1;
        p += chunk;
        n -= chunk;
    }
    return put_record(fd, type, id, NULL, 0);
}

static size_t put_len(unsigned char *out, size_t len)
{
    if (len < 128) {
        out[0] = (unsigned char)len;
        return 1;
    }
    out[0] = (unsigned char)(0x80 | (len >> 24));
    out[1] = (unsigned char)(len >> 16);
    out[2] = (unsigned char)(len >> 8);
    out[3] = (unsigned char)len;
    return 4;
}

int fcgi_send(int fd, uint16_t id, int keep_conn, const struct fcgi_param *params, size_t nparams,
              const void *body, size_t body_len)
{
    unsigned char begin[8] = { 0, FCGI_RESPONDER, keep_conn ? FCGI_KEEP_CONN : 0, 0, 0, 0, 0, 0 };
    size_t cap = 64;
    for (size_t i = 0; i < nparams; i++)
        cap += strlen(params[i].name) + strlen(params[i].value) + 8;
    unsigned char *pb = malloc(cap), *p = pb;
    if (!pb)
        return -1;
    for (size_t i = 0; i < nparams; i++) {
        size_t nl = strlen(params[i].name), vl = strlen(params[i].value);
        p += put_len(p, nl);
        p += put_len(p, vl);
        memcpy(p, params[i].name, nl);
        p += nl;
        memcpy(p, params[i].value, vl);
        p += vl;
    }
    int rc = put_record(fd, FCGI_BEGIN_REQUEST, id, begin, sizeof begin) < 0 ||
                     put_stream(fd, FCGI_PARAMS, id, pb, (size_t)(p - pb)) < 0 ||
                     put_stream(fd, FCGI_STDIN, id, body, body_len) < 0
                 ? -1
                 : 0;
    free(pb);
    return rc;
}

/* Splits the STDOUT text into header block and body and reads "Status: N". */
static int parse_cgi(char *raw, size_t len, struct fcgi_response *out)
{
    char *sep = NULL;
    for (size_t i = 0; i + 3 < len; i++)
        if (memcmp(raw + i, "\r\n\r\n", 4) == 0) {
            sep = raw + i;
            break;
        }
    if (!sep)
        return -1;
    size_t hlen = (size_t)(sep - raw) + 2;
    out->headers = malloc(hlen + 1);
    out->body_len = len - hlen - 2;
    out->body = malloc(out->body_len + 1);
    if (!out->headers || !out->body)
        return -1;
    memcpy(out->headers, raw, hlen);
    out->headers[hlen] = '\0';
    memcpy(out->body, sep + 4, out->body_len);
    out->body[out->body_len] = '\0';
    char st[16];
    out->status = fcgi_header(out, "Status", st, sizeof st) ? atoi(st) : 200;
    return 0;
}

int fcgi_recv(int fd, uint16_t id, struct fcgi_response *out)
{
    memset(out, 0, sizeof *out);
    char *raw = NULL;
    size_t len = 0;
    int rc = -1;
    for (;;) {
        unsigned char h[8], content[FCGI_MAX_CONTENT + 255];
        if (read_all(fd, h, sizeof h) < 0)
            goto fail;
        size_t clen = (size_t)h[4] << 8 | h[5], plen = h[6];
        uint16_t rid = (uint16_t)(h[2] << 8 | h[3]);
        if (h[0] != FCGI_VERSION_1 || read_all(fd, content, clen + plen) < 0)
            goto fail;
        if (rid != id)
            continue;
        if (h[1] == FCGI_STDOUT && clen > 0) {
            char *n = realloc(raw, len + clen + 1);
            if (!n)
                goto fail;
            raw = n;
            memcpy(raw + len, content, clen);
            len += clen;
        } else if (h[1] == FCGI_END_REQUEST && clen >= 8) {
            out->app_status = (uint32_t)content[0] << 24 | (uint32_t)content[1] << 16 |
                              (uint32_t)content[2] << 8 | content[3];
            break;
        }
    }
    if (raw && parse_cgi(raw, len, out) == 0)
        rc = 0;
fail:
    free(raw);
    if (rc < 0)
        fcgi_response_free(out);
    return rc;
}

int fcgi_request(const char *spec, const struct fcgi_param *params, size_t nparams,
                 const void *body, size_t body_len, int timeout_ms, struct fcgi_response *out)
{
    memset(out, 0, sizeof *out);
    int fd = fcgi_connect(spec, timeout_ms);
    if (fd < 0)
        return -1;
    int rc = fcgi_send(fd, 1, 0, params, nparams, body, body_len);
    if (rc == 0)
        rc = fcgi_recv(fd, 1, out);
    close(fd);
    return rc;
}

const char *fcgi_header(const struct fcgi_response *r, const char *name, char *buf, size_t buflen)
{
    size_t n = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *end = strstr(line, "\r\n");
        if (!end)
            break;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(end - v);
            if (vl >= buflen)
                vl = buflen - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        line = end + 2;
    }
    return NULL;
}

void fcgi_response_free(struct fcgi_response *r)
{
    free(r->headers);
    free(r->body);
    r->headers = NULL;
    r->body = NULL;
    r->body_len = 0;
}
