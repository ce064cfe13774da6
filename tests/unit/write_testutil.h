/* Helpers shared by the write side's unit tests. */
#ifndef EF_WRITE_TESTUTIL_H
#define EF_WRITE_TESTUTIL_H

#include "util/sbuf.h"
#include "write/execute.h"
#include "write/model.h"

/* Opens dir/log and dir/write (write_model_open) into ctx, idempotency TTL 48 h. */
void wt_open(const char *dir, struct write_ctx *ctx);
/* Closes what wt_open opened and clears the handles. */
void wt_close(struct write_ctx *ctx);

/* Appends every key and value of every database of wm, in order, to out (binary-safe:
 * lengths before the bytes), for comparing two models byte for byte. Asserts on errors. */
void wm_test_dump(struct wm *wm, struct sbuf *out);

#endif
