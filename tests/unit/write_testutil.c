#include <config.h>

#include "write_testutil.h"

#include <check.h>

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
