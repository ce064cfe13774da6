#include <config.h>

#include "mirror/mcheck.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readmodel/rmodel_render.h"
#include "util/xalloc.h"

const char *const mcheck_header_names[MH_COUNT] = {
    [MH_POSITION] = "Eventfold-Position",
    [MH_STREAM] = "Eventfold-Stream",
    [MH_TYPE] = "Eventfold-Type",
    [MH_SCHEMA] = "Eventfold-Schema-Version",
    [MH_STREAM_VERSION] = "Eventfold-Stream-Version",
    [MH_TIMESTAMP] = "Eventfold-Timestamp-Ms",
    [MH_META] = "Eventfold-Meta",
    [MH_CRC] = "Eventfold-Crc32c",
};

void mcheck_free(struct mcheck *c)
{
    if (!c)
        return;
    sbuf_free(&c->prefix);
    free(c->enc);
    c->enc = NULL;
    c->enc_cap = 0;
}

/* Decimal without sign, leading '+', spaces or trailing bytes. */
static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_crc(const char *s, uint32_t *out)
{
    if (!s || strlen(s) != 8)
        return -1;
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        char ch = s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

static int disagree(char *err, size_t errlen, uint64_t pos, const char *what)
{
    snprintf(err, errlen, "the stream's message at position %" PRIu64 " disagrees: %s", pos, what);
    return MIRROR_EDISAGREE;
}

int mcheck_record_crc(struct mcheck *c, const struct log_event *ev, uint64_t position,
                      uint32_t *crc)
{
    size_t n = record_encoded_size(ev);
    if (n == 0)
        return MIRROR_EDISAGREE;
    if (n > c->enc_cap) {
        free(c->enc);
        c->enc = xmalloc(n);
        c->enc_cap = n;
    }
    record_encode(ev, position, c->enc);
    /* The header's crc field (record.h: offset 8, little-endian). */
    const unsigned char *b = c->enc + 8;
    *crc = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

/* The header fields into ev (all but data); 0 or a disagreement. */
static int rebuild_fields(const struct mirror_msg *m, uint64_t expect, struct log_event *ev,
                          char *err, size_t errlen)
{
    uint64_t schema, sversion;
    for (int i = 0; i < MH_COUNT; i++)
        if (i != MH_META && !m->hdr[i]) {
            char what[96];
            snprintf(what, sizeof what, "no %s header", mcheck_header_names[i]);
            return disagree(err, errlen, expect, what);
        }
    if (parse_u64(m->hdr[MH_SCHEMA], &schema) || schema > UINT16_MAX)
        return disagree(err, errlen, expect, "bad Eventfold-Schema-Version");
    if (parse_u64(m->hdr[MH_STREAM_VERSION], &sversion))
        return disagree(err, errlen, expect, "bad Eventfold-Stream-Version");
    if (parse_i64(m->hdr[MH_TIMESTAMP], &ev->timestamp_ms))
        return disagree(err, errlen, expect, "bad Eventfold-Timestamp-Ms");
    ev->stream = m->hdr[MH_STREAM];
    ev->stream_len = strlen(ev->stream);
    ev->type = m->hdr[MH_TYPE];
    ev->type_len = strlen(ev->type);
    ev->schema_version = (uint16_t)schema;
    ev->stream_version = sversion;
    /* An empty meta may come as an empty header or none: the CRC settles what it was. */
    ev->meta = m->hdr[MH_META] ? m->hdr[MH_META] : "";
    ev->meta_len = strlen(ev->meta);
    if (ev->stream_len == 0 || ev->stream_len > LOG_STREAM_MAX || ev->type_len == 0 ||
        ev->type_len > LOG_TYPE_MAX)
        return disagree(err, errlen, expect, "bad Eventfold-Stream or Eventfold-Type");
    return 0;
}

/* The data bytes: the body after the prefix this build renders from ev, up to the last '}'. */
static int rebuild_data(struct mcheck *c, const struct mirror_msg *m, uint64_t expect,
                        struct log_event *ev, char *err, size_t errlen)
{
    struct log_record r = {
        .position = expect,
        .stream_version = ev->stream_version,
        .timestamp_ms = ev->timestamp_ms,
        .schema_version = ev->schema_version,
        .stream = ev->stream,
        .stream_len = ev->stream_len,
        .type = ev->type,
        .type_len = ev->type_len,
    };
    sbuf_reset(&c->prefix);
    rmodel_render_event(&r, &c->prefix); /* ends in "data":} with no data */
    size_t plen = c->prefix.len - 1;
    if (m->body_len < plen + 1 || memcmp(m->body, c->prefix.data, plen) != 0 ||
        m->body[m->body_len - 1] != '}')
        return disagree(err, errlen, expect, "the body is not the EVENT its headers describe");
    ev->data = m->body + plen;
    ev->data_len = m->body_len - plen - 1;
    return 0;
}

int mcheck_rebuild(struct mcheck *c, const struct mirror_msg *m, uint64_t expect,
                   struct log_event *ev, char *err, size_t errlen)
{
    memset(ev, 0, sizeof *ev);
    if (m->seq > expect) {
        snprintf(err, errlen,
                 "gap in the stream: position %" PRIu64 " is missing (the next message has "
                 "sequence %" PRIu64 ")", expect, m->seq);
        return MIRROR_EGAP;
    }
    if (m->seq < expect)
        return disagree(err, errlen, expect, "it came after later positions");
    uint64_t pos;
    if (parse_u64(m->hdr[MH_POSITION], &pos))
        return disagree(err, errlen, expect, "no valid Eventfold-Position header");
    if (pos != expect) {
        char what[96];
        snprintf(what, sizeof what, "its Eventfold-Position is %" PRIu64, pos);
        return disagree(err, errlen, expect, what);
    }
    int rc = rebuild_fields(m, expect, ev, err, errlen);
    if (rc == 0)
        rc = rebuild_data(c, m, expect, ev, err, errlen);
    if (rc)
        return rc;
    uint32_t want, got;
    if (parse_crc(m->hdr[MH_CRC], &want))
        return disagree(err, errlen, expect, "bad Eventfold-Crc32c");
    if (mcheck_record_crc(c, ev, expect, &got))
        return disagree(err, errlen, expect, "the record is over a size limit");
    if (got != want) {
        char what[96];
        snprintf(what, sizeof what, "the rebuilt record's CRC32C is %08" PRIx32 ", the relay's %08" PRIx32,
                 got, want);
        return disagree(err, errlen, expect, what);
    }
    c->crc = got;
    return 0;
}
