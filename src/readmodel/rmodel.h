/* rmodel: the read model, an LMDB environment holding every projection of API.md section 5.
 *
 * The read model is derived from the log only: rmodel_fold() (rmodel_fold.h) applies one
 * decoded, verified record (struct log_record) to a write transaction, whatever the
 * record's origin (a local segment today, another transport tomorrow). The applied
 * position is stored in the same transaction as the projections, so a committed model is
 * always exactly "the log folded up to rmodel_position()": never between two positions.
 *
 * Databases (named dbis of one environment; value layouts in rmodel_layout.h):
 *   meta        "position" -> applied position, "format" -> layout version
 *   orders      order id -> order view (user, status, lines, amount, times, version)
 *   users       user id -> user summary (name, wallet, counters, last order time)
 *   user_cat    user id NUL category -> quantity over the user's placed orders
 *   user_orders user id NUL created position (u64 big-endian) -> order id
 *   items       item id -> item (name, category, price, restocked, reserved, sold)
 *   daily       "YYYY-MM-DD" -> created, paid, cancelled, revenue of that UTC day
 *   streams     stream NUL first version (u64 big-endian) -> the positions of up to
 *               RMODEL_STREAM_CHUNK versions from there (where they are: positions)
 *   positions   first position (u64 big-endian) -> where the records of up to
 *               RMODEL_POS_CHUNK positions from there are: segment, offset
 *   dlq         dead-letter id (u64 big-endian) -> position, time, projection, reason
 *
 * The store's interface has a header per concern; this one holds what they all share (the
 * error codes, the layout version, the handles):
 *   rmodel_env.h     environments, transactions, the applied position, lazy sync
 *   rmodel_fold.h    applying one record to the projections (the tailer's job)
 *   rmodel_dlq.h     dead letters: list, count, retry, drop
 *   rmodel_query.h   the projections rendered as the API's JSON; where a record is in the log
 *   rmodel_asof.h    an order as it was after some of its events (time travel)
 *   rmodel_render.h  the API's JSON of one log record (queries, relay, mirror)
 * The implementation's own: rmodel_internal.h (structures, row cache), rmodel_layout.h
 * (value layouts), rmodel_event.h (event parsing).
 *
 * Caveat: pointers returned into a transaction are valid until it ends.
 */
#ifndef EF_RM_H
#define EF_RM_H

/* Error codes: 0 is success; negative errno values; LMDB's own codes (MDB_MAP_FULL, ...,
 * all negative) are passed through; and these (the read model's range in util/ef_error.h). */
enum {
    RMODEL_ENOTFOUND = -11001, /* no such user, item, order, stream, dead letter */
    RMODEL_EFORMAT = -11002,   /* a stored value of an unknown layout version, or truncated */
    RMODEL_EBADARG = -11003,   /* invalid argument */
    RMODEL_EORDER = -11004,    /* a record at an unexpected position (not applied + 1) */
    RMODEL_EUNSYNCED = -11005, /* the machine went down while the model had unsynced commits */
    RMODEL_ELAYOUT = -11006,   /* a model of another layout version (RMODEL_FORMAT) */
};

/* Returns a static description of a code: the read model's own, or ef_strerror()'s for any
 * other (errno values, LMDB's codes, other modules'). */
const char *rmodel_strerror(int err);

/* Layout version stored in meta "format". 4: order values and stream index rows keep
 * their integers as varints (rmodel_layout.h; 3: fixed 8 bytes); 3: the position index
 * holds a row per 64 positions (2: a row per position); 2: the stream index holds a row
 * per 32 versions of a stream (1: a row per record). A model of another format opens as
 * RMODEL_ELAYOUT, and the tailer replaces it (fold/model_switch.h). */
#define RMODEL_FORMAT 4
/* The key of the layout version in meta (a single byte). */
#define RMODEL_META_FORMAT "format"

/* An open environment (rmodel_env.h), shared by the threads of one process. */
struct rmodel_env;
/* A read or write transaction of one thread (rmodel_env.h). */
struct rmodel_txn;

#endif
