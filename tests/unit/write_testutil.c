#include <config.h>

#include "write_testutil.h"

#include <check.h>
#include <stdio.h>
#include <sys/stat.h>

#include "write/replay.h"

void wt_open(const char *dir, struct write_ctx *ctx)
{
    char path[256];
    snprintf(path, sizeof path, "%s/log", dir);
    ck_assert_int_eq(log_open(path, NULL, &ctx->log), 0);
    snprintf(path, sizeof path, "%s/write", dir);
    ck_assert_int_eq(write_model_open(path, 64ull << 20, ctx->log, &ctx->wm), 0);
    ctx->idempotency_ttl_hours = 48;
}

void wt_close(struct write_ctx *ctx)
{
    write_ctx_release(ctx);
    wm_close(ctx->wm);
    log_close(ctx->log);
    ctx->wm = NULL;
    ctx->log = NULL;
}

void wm_test_dump(struct wm *wm, struct sbuf *out)
{
    MDB_txn *txn;
    ck_assert_int_eq(wm_begin(wm, 0, &txn), 0);
    for (int i = 0; i < WM_NDBI; i++) {
        MDB_dbi dbi;
        MDB_cursor *cur;
        MDB_val k, v;
        ck_assert_int_eq(wm_dbi(wm, i, &dbi), 0);
        ck_assert_int_eq(mdb_cursor_open(txn, dbi, &cur), 0);
        sbuf_printf(out, "[%s]\n", wm_dbi_name(i));
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            sbuf_printf(out, "%zu:", k.mv_size);
            sbuf_append(out, k.mv_data, k.mv_size);
            sbuf_printf(out, "=%zu:", v.mv_size);
            sbuf_append(out, v.mv_data, v.mv_size);
            sbuf_putc(out, '\n');
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
}
