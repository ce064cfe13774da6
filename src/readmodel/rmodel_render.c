#include <config.h>

#include "readmodel/rmodel_render.h"

#include <string.h>

/* dump: the form of rmodel_render_event_meta (see the header). */
static void render(const struct log_record *rec, int dump, struct sbuf *out)
{
    sbuf_putc(out, '{');
    sbuf_json_key(out, "position");
    sbuf_json_u64(out, rec->position);
    sbuf_json_key(out, "stream");
    sbuf_json_str(out, rec->stream, rec->stream_len);
    sbuf_json_key(out, "version");
    sbuf_json_u64(out, rec->stream_version);
    sbuf_json_key(out, "type");
    sbuf_json_str(out, rec->type, rec->type_len);
    sbuf_json_key(out, "schema_version");
    sbuf_json_u64(out, rec->schema_version);
    sbuf_json_key(out, "at");
    sbuf_json_time(out, rec->timestamp_ms);
    sbuf_json_key(out, "data");
    if (rec->data_len || !dump)
        sbuf_append(out, rec->data, rec->data_len);
    else
        sbuf_puts(out, "null");
    if (dump && rec->meta_len > 0 && !(rec->meta_len == 2 && memcmp(rec->meta, "{}", 2) == 0)) {
        sbuf_json_key(out, "meta");
        sbuf_append(out, rec->meta, rec->meta_len);
    }
    sbuf_putc(out, '}');
}

void rmodel_render_event(const struct log_record *rec, struct sbuf *out)
{
    render(rec, 0, out);
}

void rmodel_render_event_meta(const struct log_record *rec, struct sbuf *out)
{
    render(rec, 1, out);
}
