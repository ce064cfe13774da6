#include <config.h>

#include "readmodel/rmodel_dlq.h"

#include <string.h>

#include "log/record.h"
#include "readmodel/rmodel_internal.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"

/* Dead letters are keyed by a dense id (u64 big-endian), the last id + 1: ids are never
 * reused while a newer one exists, so `dlq retry ID` names one event. */
static int next_id(struct rmodel_txn *t, uint64_t *id)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->env->dbi[RMODEL_DB_DLQ], &c);
    if (rc)
        return ef_mdb_rc(rc);
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) {
        *id = 1;
        return 0;
    }
    if (rc)
        return ef_mdb_rc(rc);
    if (k.mv_size != 8)
        return RMODEL_EFORMAT;
    *id = rmodel_get_be64(k.mv_data) + 1;
    return 0;
}

/* The next id, counting those of a pipelined bulk load's batches that LMDB does not hold
 * yet (the fold's txn there reads what is committed). */
static int next_id_pending(struct rmodel_txn *t, uint64_t *id)
{
    int rc = next_id(t, id);
    if (rc == 0 && t->env->bulk && *id <= t->env->dlq_pending)
        *id = t->env->dlq_pending + 1;
    return rc;
}

static int put_letter(struct rmodel_txn *t, uint64_t id, uint64_t position, uint64_t segment,
                      uint64_t offset, const char *projection, const char *reason)
{
    unsigned char be[8];
    rmodel_put_be64(be, id);
    struct sbuf *v = &t->val;
    sbuf_reset(v);
    rmodel_put_u8(v, RMODEL_VAL_V1);
    rmodel_put_u64(v, position);
    rmodel_put_u64(v, segment);
    rmodel_put_u64(v, offset);
    rmodel_put_u64(v, (uint64_t)ef_now_ms());
    size_t rn = strlen(reason);
    rmodel_put_str(v, (struct rmodel_str){ projection, strlen(projection) });
    rmodel_put_str(v, (struct rmodel_str){ reason, rn > 1024 ? 1024 : rn });
    return rmodel_put(t, RMODEL_DB_DLQ, be, 8, v->data, v->len);
}

int rmodel_dlq_add(struct rmodel_txn *t, const struct log_record *rec, const char *projection,
               const char *reason)
{
    uint64_t id;
    int rc = next_id_pending(t, &id);
    if (rc == 0)
        rc = put_letter(t, id, rec->position, rec->segment, rec->offset, projection, reason);
    if (rc == 0 && t->env->bulk)
        t->env->dlq_pending = id;
    return rc;
}

struct letter {
    uint64_t position, segment, offset;
    int64_t at;
    struct rmodel_str projection, reason;
};

static int decode_letter(const void *p, size_t n, struct letter *l)
{
    struct rmodel_reader r = { p, n, 0 };
    if (rmodel_read_u8(&r) != RMODEL_VAL_V1)
        return RMODEL_EFORMAT;
    l->position = rmodel_read_u64(&r);
    l->segment = rmodel_read_u64(&r);
    l->offset = rmodel_read_u64(&r);
    l->at = (int64_t)rmodel_read_u64(&r);
    l->projection = rmodel_read_str(&r);
    l->reason = rmodel_read_str(&r);
    return r.bad ? RMODEL_EFORMAT : 0;
}

static int load_letter(struct rmodel_txn *t, uint64_t id, struct letter *l)
{
    unsigned char be[8];
    rmodel_put_be64(be, id);
    int rc = rmodel_get_copy(t, RMODEL_DB_DLQ, be, 8, &t->obuf);
    return rc ? rc : decode_letter(t->obuf.data, t->obuf.len, l);
}

int rmodel_dlq_get(struct rmodel_txn *t, uint64_t id, uint64_t *position, uint64_t *segment,
               uint64_t *offset)
{
    struct letter l;
    int rc = load_letter(t, id, &l);
    if (rc)
        return rc;
    *position = l.position;
    *segment = l.segment;
    *offset = l.offset;
    return 0;
}

int rmodel_dlq_retry(struct rmodel_txn *t, uint64_t id, const struct log_record *rec)
{
    struct letter l;
    int rc = load_letter(t, id, &l);
    if (rc)
        return rc;
    if (rec->position != l.position)
        return RMODEL_EBADARG;
    rc = rmodel_fold_apply(t, rec);
    unsigned char be[8];
    rmodel_put_be64(be, id);
    if (rc == 0) {
        EFLOG_INFO("dead letter retried id=%llu position=%llu result=applied",
                 (unsigned long long)id, (unsigned long long)l.position);
        return rmodel_del(t, RMODEL_DB_DLQ, be, 8);
    }
    if (rc != 1)
        return rc;
    EFLOG_WARN("dead letter retried id=%llu position=%llu result=failed reason=\"%s\"",
             (unsigned long long)id, (unsigned long long)l.position, sbuf_str(&t->reason));
    const char *projection = t->ev.projection ? t->ev.projection : "read_model";
    rc = put_letter(t, id, rec->position, rec->segment, rec->offset, projection, sbuf_str(&t->reason));
    return rc ? rc : 1;
}

int rmodel_dlq_drop(struct rmodel_txn *t, uint64_t id)
{
    struct letter l;
    int rc = load_letter(t, id, &l);
    if (rc)
        return rc;
    unsigned char be[8];
    rmodel_put_be64(be, id);
    rc = rmodel_del(t, RMODEL_DB_DLQ, be, 8);
    if (rc == 0)
        EFLOG_INFO("dead letter dropped id=%llu position=%llu", (unsigned long long)id,
                 (unsigned long long)l.position);
    return rc;
}

int rmodel_dlq_count(struct rmodel_txn *t, uint64_t *count)
{
    MDB_stat st;
    int rc = mdb_stat(t->txn, t->env->dbi[RMODEL_DB_DLQ], &st);
    if (rc)
        return ef_mdb_rc(rc);
    *count = st.ms_entries;
    return 0;
}

int rmodel_dlq_render(struct rmodel_txn *t, struct sbuf *out)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->env->dbi[RMODEL_DB_DLQ], &c);
    if (rc)
        return ef_mdb_rc(rc);
    sbuf_puts(out, "{\"dead_letters\":[");
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        struct letter l;
        if (k.mv_size != 8 || decode_letter(v.mv_data, v.mv_size, &l)) {
            rc = RMODEL_EFORMAT;
            break;
        }
        sbuf_puts(out, out->data[out->len - 1] == '[' ? "{" : ",{");
        sbuf_json_key(out, "id");
        sbuf_json_u64(out, rmodel_get_be64(k.mv_data));
        sbuf_json_key(out, "position");
        sbuf_json_u64(out, l.position);
        sbuf_json_key(out, "projection");
        sbuf_json_str(out, l.projection.p, l.projection.n);
        sbuf_json_key(out, "reason");
        sbuf_json_str(out, l.reason.p, l.reason.n);
        sbuf_json_key(out, "at");
        sbuf_json_time(out, l.at);
        sbuf_putc(out, '}');
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return ef_mdb_rc(rc);
    sbuf_puts(out, "]}");
    return 0;
}
