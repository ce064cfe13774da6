/* log: the append-only, segmented, checksummed event log, eventfold's source of truth.
 *
 * Layout: DIR/log/ holds segment files named by the position of their first record
 * (%020llu.seg), a small shared control file (control) that every read-write process maps,
 * and two lock files (init.lock, users.lock) for the opening protocol. Records are
 * self-describing (see record.h): position, stream, stream version, type, schema version,
 * timestamp, metadata and JSON data, protected by CRC32C.
 *
 * Guarantees
 *  - Positions are dense (1, 2, 3, ...) and strictly increasing in file order, across
 *    every process that appends: appends are serialized by a robust, process-shared mutex
 *    in the control file (log_append_begin/log_append_end).
 *  - A record is published (visible to log_head() and readers) only after it was written
 *    whole. A failed write (ENOSPC, EIO, short write) is cut back before the lock is
 *    released. A process that dies while holding the append lock leaves at most an
 *    unpublished tail, which the next lock holder truncates (and logs).
 *  - log_sync(pos) returns once a completed fdatasync covers pos. Concurrent callers share
 *    fdatasyncs (group commit): one leader syncs everything published so far while the
 *    others sleep on a futex and find themselves covered when it wakes them.
 *    log_durable() is the highest durable position; it is read from shared memory without
 *    a syscall, and log_wait_durable() sleeps on the same futex until it moves.
 *  - Segments roll at segment_bytes (a record bigger than that gets a segment of its own);
 *    a segment is trimmed to its last record and fdatasync'ed before the next one is
 *    created, and never modified after that (sealed). The directory is fsync'ed after a
 *    segment is created or removed.
 *  - The newest segment's file runs on past its last record with zeros, written ahead by
 *    appends (up to 1.5 MiB, never past segment_bytes) so that most fdatasyncs need not
 *    commit a new file size (append.c, zero_ahead). Nothing reads past the head;
 *    log_stats counts records, not those zeros.
 *  - Recovery on open (the first opener after all processes exited, e.g. after a crash or a
 *    reboot; see log_recovered()): the newest segment is scanned whole; what follows its
 *    last whole record is cut when no valid record follows: quietly when it is all zeros
 *    (written ahead), else logged as a torn tail (segment, offset, bytes); anything else
 *    fails the open with
 *    LOG_ECORRUPT naming segment and offset (log_last_error()). Sealed segments are checked
 *    by their first and last records only (a read or two each): a missing segment (the
 *    first one, or a gap between two) fails the open with LOG_ESEQUENCE, a first record
 *    of a newer format with LOG_EVERSION; log_verify() checks every byte.
 *  - Readers verify every record (checksum, framing, dense positions) and never skip one.
 *
 * Caveats
 *  - Open the log in each process after fork(), never before: the fds, the flock and the
 *    mapping are per process.
 *  - A struct log may be shared by threads of one process for appends and syncs (they
 *    serialize on the same shared mutexes); a struct log_reader belongs to one thread.
 *  - A follow-mode handle (log_options.follow) never writes either, and sees the head
 *    move while a writer is live; see there.
 *  - A read-only handle needs no control file and never writes: its head is the last valid
 *    record found when it was opened and does not move (log_head() == log_durable()). Its
 *    open judges the newest segment's tail as recovery does, without cutting: a torn tail
 *    is ignored, damage before the tail or a newer record format fails the open.
 *  - After a failed fdatasync the kernel may have dropped the dirty pages, so a later sync
 *    that succeeds would not prove the earlier records reached the disk. So the first
 *    failure (of a sync or of the sync that seals a segment) stops the log for every
 *    process: log_durable() stays at the last position a completed fdatasync covered (D),
 *    log_sync() of anything after it and every append fail with LOG_ESYNCFAILED, and a
 *    marker file DIR/sync-failed records D. The next recovery (the first opener after every
 *    process has closed the log) cuts the log right after D, since nothing after it was
 *    ever acknowledged, then removes the marker.
 *  - Failure-prone I/O on segments goes through log_io (io.h) so tests can inject ENOSPC,
 *    EIO and short writes.
 */
#ifndef EF_LOG_H
#define EF_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "log/record.h"

/* Error codes: 0 is success; negative errno values for system errors (-ENOSPC, -EIO, ...);
 * these for the log's own conditions (the log's range in util/ef_error.h). */
enum {
    LOG_ECORRUPT = -10001,  /* a record failed its checksum or framing before the tail */
    LOG_EVERSION = -10002,  /* a segment or control file of a newer/unknown format */
    LOG_ETOOBIG = -10003,   /* a record larger than LOG_RECORD_MAX */
    LOG_ESEQUENCE = -10004, /* positions not dense/increasing, or a missing segment */
    LOG_EREADONLY = -10005, /* append on a log opened read-only */
    LOG_EBADARG = -10006,   /* invalid argument (empty stream or type, ...) */
    LOG_ELOCKED = -10007,   /* append lock not held / already held by this handle */
    LOG_ESYNCFAILED = -10008, /* an earlier fdatasync failed: no more appends or acks until
                               * the log is recovered (every process reopens it) */
};

/* Returns a static description of a code: the log's own, or ef_strerror()'s for any other. */
const char *log_strerror(int err);

struct log;

struct log_options {
    uint64_t segment_bytes; /* roll limit; 0 = default 64 MiB */
    int read_only;          /* no appends, no truncation, no recovery that writes */
    /* Read-only only: damage in the newest segment (or a record of a newer format) ends
     * the log just before it instead of failing the open, so that the records before it
     * can still be read (eventfoldctl dump); log_damage() then describes it. */
    int salvage;
    /* Follow mode (implies read_only): the handle of a process that must never write the
     * log (eventfold-query). Every file is opened O_RDONLY and the control block is
     * mapped PROT_READ: it never recovers, cuts, creates a segment or writes the control
     * file, and it never holds users.lock (so the next writer still recovers after a
     * crash). While some process has the log open read-write, log_head() and
     * log_durable() follow the live control block and log_wait_durable() sleeps on its
     * futex; while nobody has, they say what is whole on disk (as a read-only open, not
     * beyond DIR/sync-failed), and the block is looked for again every 200 ms or so.
     * Positions never go back, also across a later writer's recovery. A missing log
     * directory is an empty log until a writer creates it. */
    int follow;
};

/* Opens (creating it and its first segment if needed, unless read_only) the log in dir
 * (the log/ directory itself). opt may be NULL (defaults). *out is owned by the caller and
 * freed by log_close(). On failure returns a negative code and log_last_error(NULL)
 * describes it (naming segment and offset for LOG_ECORRUPT). */
int log_open(const char *dir, const struct log_options *opt, struct log **out);
void log_close(struct log *lg); /* accepts NULL */

/* 1 if this log_open() found nobody else using the log and so ran recovery from the files
 * and initialized the shared control block (the first opener after all processes exited,
 * a crash or a reboot); 0 otherwise and for read-only handles. The write model uses it to
 * know when its own state may be behind the log. */
int log_recovered(const struct log *lg);

/* A one-line description of the last error on this handle (or of the last failed log_open
 * in this thread when lg is NULL), naming segment and offset where there is one.
 * Valid until the next call on the handle. */
const char *log_last_error(const struct log *lg);

/* For a salvage open that ended the log at damage: what and where (as log_last_error
 * would have said at open); NULL otherwise. */
const char *log_damage(const struct log *lg);

/* Highest published position (0 when empty). No syscall. */
uint64_t log_head(const struct log *lg);
/* Highest position covered by a completed fdatasync. No syscall. */
uint64_t log_durable(const struct log *lg);

/* --- appending ------------------------------------------------------------------- */

/* Takes the cross-process append lock. If the previous holder died, first cuts the
 * unpublished tail it left (logging segment, offset and byte count). */
int log_append_begin(struct log *lg);
/* While holding the lock: writes one record at the end of the log and publishes it.
 * ev->position is ignored; the assigned position is stored in *position. The record is
 * not durable until log_sync(). On failure (ENOSPC, EIO, ...) nothing is published and the
 * file is cut back to where it was: the log is as if the call never happened. */
int log_append_record(struct log *lg, const struct log_event *ev, uint64_t *position);
/* Releases the append lock. */
void log_append_end(struct log *lg);

/* Returns once position is durable (group commit: shares fdatasyncs with concurrent
 * callers). An fdatasync failure returns its error; the records stay published but are
 * not reported durable. LOG_EBADARG for a position not published yet. */
int log_sync(struct log *lg, uint64_t position);

/* begin + record + end + sync. */
int log_append(struct log *lg, const struct log_event *ev, uint64_t *position);

/* Sleeps until log_durable() > after or timeout_ms passes (futex on the control file;
 * no polling). Returns 1 if it moved, 0 on timeout (at once on a read-only handle, whose
 * durable position never moves). */
int log_wait_durable(const struct log *lg, uint64_t after, int timeout_ms);

/* --- reading --------------------------------------------------------------------- */

struct log_reader;

/* A reader positioned before `from` (the first next() returns the record at `from`, or the
 * first after it). Finding the segment is a binary search over segment names; inside the
 * segment it scans (or uses a hint, see log_reader_seek). Owned by the caller. */
int log_reader_open(struct log *lg, uint64_t from, struct log_reader **out);
void log_reader_close(struct log_reader *rd); /* accepts NULL */

/* Reads the next record with position <= limit (pass log_durable(lg) to see only durable
 * records, log_head(lg) for all published ones). Returns 1 with *rec filled (pointers
 * valid until the next call on rd), 0 if there is nothing more up to limit yet (call again
 * later: the reader follows the tail and crosses into new segments), or a negative code
 * with log_last_error naming segment and offset: LOG_ECORRUPT when the record that must
 * come next (its position is <= limit) is damaged or missing, LOG_ESEQUENCE when a valid
 * record has the wrong position, LOG_EVERSION for a newer record format. An unfinished
 * record beyond limit at the end of the newest segment is the tail being written, not an
 * error. A reader that failed keeps failing at the same place. */
int log_reader_next(struct log_reader *rd, uint64_t limit, struct log_record *rec);

/* Positions rd directly at a known record (segment = its first position, offset in file,
 * a multiple of 8), e.g. from an index; the next next() returns that record (whatever its
 * position, which the reader then takes as the start of the dense sequence). */
int log_reader_seek(struct log_reader *rd, uint64_t segment, uint64_t offset);
/* Makes rd read only what the records it is asked for need (at most 4 KiB, or the
 * record's length when larger, per record) instead of reading ahead 1 MiB: for a reader
 * that seeks to each record it reads (history of one stream). */
void log_reader_sparse(struct log_reader *rd);

/* --- inspection (eventfoldctl) ------------------------------------------------------ */

struct log_stats {
    uint64_t head_position;
    uint64_t durable_position;
    uint64_t segments;
    uint64_t bytes; /* the records' bytes: the sealed segments' sizes, plus the newest one's
                     * up to its last record (not the zeros written ahead of it) */
};
/* Fills *st (head and durable as log_head()/log_durable(); segments from the directory). */
int log_stats(struct log *lg, struct log_stats *st);

/* Checks every record of every segment (checksums, framing, dense positions from 1, each
 * segment starting right after the previous one). Returns 0 if clean, LOG_ECORRUPT or
 * LOG_ESEQUENCE with log_last_error() naming segment and offset, or another negative code.
 * Counts the valid records into *records if non-NULL (also on failure: those before the
 * damage). An incomplete tail of the newest segment with no valid record after it (a write
 * in progress, or a torn tail the next read-write open cuts) is not damage; it is logged
 * at info level, unless it is all zeros (written ahead by appends: not logged). Read-only;
 * safe while others append. */
int log_verify(struct log *lg, uint64_t *records);

#endif
