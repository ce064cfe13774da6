/* apply: the one way the write model changes.
 *
 * wm_apply_record() applies one log record to the write model inside the caller's write
 * transaction; the catch-up and the rebuild (replay.h) call it. The command path calls
 * wm_apply_event() on the event it is about to append, the same function on the same
 * event (decoding the record it encoded would give that event back), so the model is the
 * same function of the log however it was built. It also fills the idempotency table
 * from the record's meta, storing the answer event_response() derives from the event.
 *
 * Guarantees: records are applied densely (position must be the model's applied position
 * plus one) and each event is checked against the model (its stream version is the next
 * one; balances and stock after the event are what the model computes; no count goes
 * negative). A record that fails a check returns WM_EAPPLY with the reason in err and the
 * transaction must be aborted. A record of a type that is not a shop event is passed over
 * (logged; only the applied position moves). An LMDB failure (MDB_MAP_FULL, ...) is returned as is; the
 * transaction must be aborted then too.
 */
#ifndef EF_WRITE_APPLY_H
#define EF_WRITE_APPLY_H

#include <stddef.h>

#include "domain/event.h"
#include "log/record.h"
#include "write/model.h"

int wm_apply_record(struct wm *wm, MDB_txn *txn, const struct log_record *rec, char *err,
                    size_t errlen);

/* The same for an already decoded event (ev->position set); wm_apply_record decodes and
 * calls it. */
int wm_apply_event(struct wm *wm, MDB_txn *txn, const struct event *ev, char *err,
                   size_t errlen);

#endif
