#include <config.h>

#include "server/server_int.h"

#include "util/xalloc.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* FastCGI record layout (FastCGI specification, section 3.3; fastcgi.h of libfcgi). */
#define FCGI_VERSION_1 1
#define FCGI_END_REQUEST 3
#define FCGI_STDOUT 6
#define FCGI_HEADER_LEN 8
#define FCGI_MAX_CONTENT 65535
#define FCGI_REQUEST_COMPLETE 0
/* A reused head buffer larger than this is freed after the answer. */
#define HEAD_KEEP (64 * 1024)

static void put_header(unsigned char *h, int type, uint16_t id, size_t len)
{
    assert(len <= FCGI_MAX_CONTENT);
    h[0] = FCGI_VERSION_1;
    h[1] = (unsigned char)type;
    h[2] = (unsigned char)(id >> 8);
    h[3] = (unsigned char)id;
    h[4] = (unsigned char)(len >> 8);
    h[5] = (unsigned char)len;
    h[6] = 0; /* no padding */
    h[7] = 0;
}

static size_t records_for(size_t n) { return (n + FCGI_MAX_CONTENT - 1) / FCGI_MAX_CONTENT; }

/* Appends the STDOUT records of buf[0..n) to o's iovecs, headers taken from *rec. */
static void frame_buffer(struct srv_out *o, unsigned char **rec, uint16_t id, const char *buf, size_t n)
{
    for (size_t off = 0; off < n; off += FCGI_MAX_CONTENT) {
        size_t len = n - off < FCGI_MAX_CONTENT ? n - off : FCGI_MAX_CONTENT;
        put_header(*rec, FCGI_STDOUT, id, len);
        o->iov[o->niov++] = (struct iovec){ *rec, FCGI_HEADER_LEN };
        o->iov[o->niov++] = (struct iovec){ (char *)buf + off, len };
        *rec += FCGI_HEADER_LEN;
        o->left += FCGI_HEADER_LEN + len;
    }
}

void srv_out_frame(struct srv_out *o, uint16_t request_id)
{
    size_t nrec = records_for(o->head.len) + records_for(o->body.len);
    free(o->recs);
    free(o->iov);
    /* Data records, then the empty STDOUT and END_REQUEST (header + 8-byte body). */
    o->recs = xmalloc((nrec + 3) * FCGI_HEADER_LEN);
    o->iov = xmalloc((2 * nrec + 1) * sizeof *o->iov);
    o->niov = o->cur = o->left = 0;
    unsigned char *rec = o->recs;
    frame_buffer(o, &rec, request_id, o->head.data, o->head.len);
    frame_buffer(o, &rec, request_id, o->body.data, o->body.len);
    unsigned char *tail = rec;
    put_header(rec, FCGI_STDOUT, request_id, 0);
    put_header(rec + 8, FCGI_END_REQUEST, request_id, 8);
    memset(rec + 16, 0, 8); /* appStatus 0, protocolStatus FCGI_REQUEST_COMPLETE */
    rec[16 + 4] = FCGI_REQUEST_COMPLETE;
    o->iov[o->niov++] = (struct iovec){ tail, 3 * FCGI_HEADER_LEN };
    o->left += 3 * FCGI_HEADER_LEN;
}

/* Moves past n sent bytes. */
static void advance(struct srv_out *o, size_t n)
{
    o->left -= n;
    while (n > 0) {
        struct iovec *v = &o->iov[o->cur];
        if (n < v->iov_len) {
            v->iov_base = (char *)v->iov_base + n;
            v->iov_len -= n;
            return;
        }
        n -= v->iov_len;
        o->cur++;
    }
}

int srv_out_send(struct srv_out *o, int fd)
{
    while (o->left > 0) {
        size_t n = o->niov - o->cur;
        struct msghdr m = { .msg_iov = &o->iov[o->cur], .msg_iovlen = n > IOV_MAX ? IOV_MAX : n };
        ssize_t w = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (w < 0)
            return -1;
        advance(o, (size_t)w);
    }
    return 1;
}

void srv_out_reset(struct srv_out *o)
{
    if (o->head.cap > HEAD_KEEP)
        sbuf_free(&o->head);
    sbuf_reset(&o->head);
    sbuf_free(&o->body);
    free(o->recs);
    free(o->iov);
    o->recs = NULL;
    o->iov = NULL;
    o->niov = o->cur = o->left = 0;
}

void srv_out_free(struct srv_out *o)
{
    if (!o)
        return;
    srv_out_reset(o);
    sbuf_free(&o->head);
}
