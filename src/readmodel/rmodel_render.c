#include <config.h>

#include "readmodel/rmodel_render.h"

void rmodel_render_event(const struct log_record *rec, struct sbuf *out)
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
    sbuf_append(out, rec->data, rec->data_len);
    sbuf_putc(out, '}');
}
