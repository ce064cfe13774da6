#include <config.h>

#include "readmodel/rmodel_asof.h"

#include <stdlib.h>
#include <string.h>

#include "log/record.h"
#include "readmodel/rmodel_internal.h"
#include "util/xalloc.h"

/* Time travel keeps its view self-contained: after each event the order is encoded into
 * enc and decoded back, so its strings never point into a parse tree that is gone. */
struct rmodel_asof {
    struct rmodel_order o;
    struct sbuf enc, tmp;
    struct rmodel_str id;
    char id_buf[LOG_STREAM_MAX];
};

struct rmodel_asof *rmodel_asof_new(void) { return xcalloc(1, sizeof(struct rmodel_asof)); }

void rmodel_asof_free(struct rmodel_asof *a)
{
    if (!a)
        return;
    rmodel_order_clear(&a->o);
    sbuf_free(&a->enc);
    sbuf_free(&a->tmp);
    free(a);
}

int rmodel_asof_apply(struct rmodel_txn *t, struct rmodel_asof *a, const struct log_record *rec)
{
    int rc = rmodel_ev_parse(&t->ev, rec, &t->reason);
    if (rc)
        return rc;
    rc = rmodel_order_apply(t, &a->o, rec, &t->ev);
    if (rc)
        return rc;
    if (a->id.n == 0) {
        size_t n = t->ev.order_id.n < sizeof a->id_buf ? t->ev.order_id.n : sizeof a->id_buf;
        memcpy(a->id_buf, t->ev.order_id.p, n);
        a->id = (struct rmodel_str){ a->id_buf, n };
    }
    sbuf_reset(&a->tmp);
    rmodel_order_encode(&a->o, &a->tmp);
    struct sbuf swap = a->enc;
    a->enc = a->tmp;
    a->tmp = swap;
    rmodel_order_clear(&a->o);
    return rmodel_order_decode(a->enc.data, a->enc.len, &a->o);
}

int rmodel_asof_render(struct rmodel_asof *a, struct sbuf *out, uint64_t *version)
{
    if (a->o.status == 0)
        return RMODEL_ENOTFOUND;
    rmodel_render_order_view(&a->o, a->id.p, a->id.n, out);
    *version = a->o.version;
    return 0;
}
