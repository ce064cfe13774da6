#include <config.h>

#include "query/rstatus.h"

#include "log/log.h"
#include "readmodel/rmodel_dlq.h"
#include "readmodel/rmodel_env.h"
#include "readmodel/rsnap.h"
#include "relay/relay_state.h"
#include "util/path.h"
#include "util/replica.h"
#include "util/snapdir.h"

#define SNAP_LIST_MAX 64

/* The replica's figures; a missing or unreadable mirror.state leaves them 0 (the mirror has
 * not run yet, or is writing it). */
static void collect_replica(const char *data_dir, struct rstatus *st)
{
    st->replica = replica_marker_read(data_dir, st->replica_stream, sizeof st->replica_stream) == 1;
    st->mirror_position = st->stream_last = st->replica_lag = 0;
    struct replica_state rs;
    if (!st->replica || replica_state_read(data_dir, &rs) != 0)
        return;
    st->mirror_position = rs.position;
    st->stream_last = rs.stream_last;
    st->replica_lag = rs.stream_last > st->head ? rs.stream_last - st->head : 0;
}

int rstatus_collect(struct log *lg, struct rmodel_txn *txn, const char *data_dir, struct rstatus *st)
{
    struct log_stats ls;
    int rc = log_stats(lg, &ls);
    if (rc)
        return rc;
    st->head = ls.head_position;
    st->segments = ls.segments;
    st->bytes = ls.bytes;
    rc = rmodel_position(txn, &st->position);
    if (rc == 0)
        rc = rmodel_dlq_count(txn, &st->dead_letters);
    if (rc)
        return rc;
    struct snapshot_info list[SNAP_LIST_MAX];
    size_t n = 0;
    rc = rsnap_list(data_dir, list, SNAP_LIST_MAX, &n);
    st->snapshots = n;
    collect_replica(data_dir, st);
    return rc;
}

int rstatus_render(const struct rstatus *st, const char *data_dir, struct sbuf *out)
{
    sbuf_puts(out, "{\"log\":{");
    sbuf_json_key(out, "head_position");
    sbuf_json_u64(out, st->head);
    sbuf_json_key(out, "segments");
    sbuf_json_u64(out, st->segments);
    sbuf_json_key(out, "bytes");
    sbuf_json_u64(out, st->bytes);
    sbuf_puts(out, "},\"read_model\":{");
    sbuf_json_key(out, "position");
    sbuf_json_u64(out, st->position);
    sbuf_json_key(out, "lag_events");
    sbuf_json_u64(out, st->head > st->position ? st->head - st->position : 0);
    sbuf_putc(out, '}');
    sbuf_json_key(out, "dead_letters");
    sbuf_json_u64(out, st->dead_letters);
    sbuf_json_key(out, "snapshots");
    int rc = rsnap_render(data_dir, out);
    /* Beyond API.md: the command side's write-model snapshots (wsnap.h), same fields; an
     * unreadable list is shown empty rather than failing the status. */
    char wdir[SNAPDIR_PATH_MAX];
    sbuf_json_key(out, "write_snapshots");
    if (ef_path_join(wdir, sizeof wdir, data_dir, "write/snapshots") != 0 || rsnap_render_dir(wdir, out) != 0)
        sbuf_puts(out, "[]");
    if (st->replica) {
        sbuf_json_key(out, "replica");
        sbuf_putc(out, '{');
        sbuf_json_key(out, "stream");
        sbuf_json_cstr(out, st->replica_stream);
        sbuf_json_key(out, "lag_events");
        sbuf_json_u64(out, st->replica_lag);
        sbuf_putc(out, '}');
    }
    /* The running relays (relay_state.h): "relays": [{"sink", "position", "lag_events"}]. */
    relay_state_render_status(data_dir, st->head, out);
    sbuf_putc(out, '}');
    return rc;
}
