/* log_int: what the log's .c files share and nobody else may use.
 *
 * The shared control block (struct log_control) lives in DIR/log/control and is mapped
 * MAP_SHARED by every process that has the log open read-write. Its fields and the rules
 * for them:
 *  - head_pos/head_seg/head_off: the published head (last record's position, the segment
 *    it is in, the end offset of that segment's data). Written only by the append-lock
 *    holder, in the order off, seg, pos, with release stores; head_pos is the commit point.
 *    Lock-free readers load head_pos first (acquire), so any head_seg they load afterwards
 *    is the segment of head_pos or a newer one, never an older one.
 *  - durable: highest position covered by a completed fdatasync; written only by the
 *    sync-lock holder, never decreases while the block is live.
 *  - durable_seq: futex word, incremented (and FUTEX_WAKEd) after every sync attempt of
 *    a group-commit leader, successful or not; log_sync waiters and log_wait_durable()
 *    sleep on it. A log_sync waiter sleeps with the bitset log_sync_wake_bits(P-1, P) of
 *    its position P; a round that made (D, D'] durable wakes log_sync_wake_bits(D, D'),
 *    and a leader leaving wakes every bit (sync.c).
 *  - append_mu serializes appends (lock); sync_mu elects the group-commit leader
 *    (trylock only). Both are robust and process-shared: a holder's death turns into
 *    EOWNERDEAD for the next locker, never a hang.
 *  - repair_gen: incremented whenever a lock holder cuts a dead holder's tail (which may
 *    unlink an unpublished segment); per-process fds cached for a segment are reopened when
 *    it changes, so nobody keeps writing or syncing an unlinked inode of the same name.
 *  - tail_dirty: set when cutting back a failed append could not be done (ftruncate
 *    failed); the next lock holder retries the cut before writing.
 *  - zero_seg/zero_end: the zeros written ahead of the head (append.c, zero_ahead): segment
 *    zero_seg's file is zero_end bytes long and holds only zeros after its last record.
 *    Used and written only by the append-lock holder; recovery and every cut of the tail
 *    set them to the head. When zero_seg is not the segment being appended to, nothing is
 *    known and nothing is assumed (at worst zeros are written again).
 */
#ifndef EF_LOG_INT_H
#define EF_LOG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "log/log.h"

#define LOG_CONTROL_MAGIC 0x4c43464555ULL /* "UEFCL" */
#define LOG_CONTROL_VERSION 3
#define LOG_DEFAULT_SEGMENT_BYTES (64ULL << 20)
#define LOG_SEG_NAME_LEN 24 /* 20 digits + ".seg" */
#define LOG_ERR_LEN 512

struct log_control {
    uint64_t magic;
    uint32_t version;
    uint32_t size; /* sizeof(struct log_control) of the writer */
    pthread_mutex_t append_mu;
    pthread_mutex_t sync_mu;
    _Atomic uint64_t head_pos;
    _Atomic uint64_t head_seg;
    _Atomic uint64_t head_off;
    _Atomic uint64_t durable;
    _Atomic uint32_t durable_seq;
    _Atomic uint32_t repair_gen;
    _Atomic uint32_t tail_dirty;
    _Atomic uint32_t sync_failed; /* an fdatasync failed: see log.h, "After a failed fdatasync" */
    _Atomic uint64_t zero_seg;
    _Atomic uint64_t zero_end;
};

/* A per-process descriptor cached for one segment, valid while gen matches repair_gen. */
struct log_segfd {
    int fd; /* -1 when none */
    uint64_t seg;
    uint32_t gen;
};

/* Follow-mode state (follow.c), behind a pointer so that the const accessors may update
 * it. ctl is set once, when a live block is found, and then kept until log_close. */
struct log_follow {
    _Atomic(struct log_control *) ctl; /* PROT_READ mapping; NULL until a writer is live */
    _Atomic uint64_t head;             /* highest head seen: never decreases */
    _Atomic uint64_t durable;          /* highest durable position seen: never decreases */
    _Atomic uint64_t next_try_ns;      /* while ctl is NULL: when to look for it again */
    pthread_mutex_t attach_mu;
};

struct log {
    char *dir;
    int read_only;
    struct log_follow *fw; /* follow mode (read_only too); NULL otherwise */
    int recovered; /* this open ran recovery and initialized the control block */
    uint64_t segment_bytes;
    struct log_control *ctl; /* NULL when read-only */
    int users_fd;            /* LOCK_SH on users.lock for the life of the handle */
    pid_t opener;            /* the process that opened it (a forked child shares users_fd's lock) */
    int zero_ahead;          /* write zeros ahead of the head (append.c): not where it buys nothing */
    /* Used only by the append-lock holder (the mutex serializes threads too). */
    struct log_segfd app;
    /* The thread of this process holding the append lock through lg, 0 when none. Atomic
     * because other threads read it to refuse appends without the lock (glibc's pthread_t
     * is an integer that is never 0 for a live thread). */
    _Atomic(pthread_t) holder;
    unsigned char *enc;
    size_t enc_cap;
    /* Used only by the sync-lock holder. */
    struct log_segfd syn;
    /* Read-only handles: head found by scanning at open; with salvage, the damage that
     * ended the log there ("" when none). */
    uint64_t ro_head;
    uint64_t ro_seg, ro_off; /* the newest segment and the end of its last record */
    int salvage;
    char damage[LOG_ERR_LEN];
    char err[LOG_ERR_LEN];
};

/* The newest segment and the end of its last record, when this handle knows them (from the
 * control block, or found by a read-only open): 1, or 0 when it does not (a follow handle
 * before a writer is live). head_off is stored before head_seg, so a roll between the two
 * loads may pair the old segment with the new one's smaller offset, for an instant: use
 * the result as a hint or a figure, never to decide what a record is (log.c). */
int log_head_end(const struct log *lg, uint64_t *seg, uint64_t *off);

/* Records the last error (on lg, or thread-locally for a failed open when lg is NULL). */
void log_set_error(struct log *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Segment file path DIR/%020llu.seg; the caller owns the string (free()). */
char *log_seg_path(const char *dir, uint64_t first);
/* Lists segment first positions, sorted ascending. *out owned by the caller (free()). */
int log_seg_list(const char *dir, uint64_t **out, size_t *n);

/* Buffered reading of one segment file (1 MiB, grows for bigger records). */
struct log_segbuf {
    unsigned char *buf;
    size_t cap;
    uint64_t off; /* file offset of buf[0] */
    size_t len;   /* valid bytes in buf */
    int sparse;   /* 1: read what a record needs (SEGBUF_SPARSE or its length), no read-ahead */
    /* 0, or where the file's records are known to end (a reader of the newest segment: the
     * published head): nothing past it is read, so a read ahead does not copy the zeros
     * written ahead of the head (append.c). A hint: what it keeps out is read by a caller
     * that sets it to 0 and decodes again. */
    uint64_t end;
};
void log_segbuf_init(struct log_segbuf *sb);
void log_segbuf_free(struct log_segbuf *sb);
void log_segbuf_drop(struct log_segbuf *sb);
/* Decodes the record at file offset off. fresh forces re-reading the file (to see bytes
 * appended since the last read). Returns a record_status, or a negative errno. */
int log_segbuf_decode(struct log_segbuf *sb, int fd, uint64_t off, int fresh, struct log_record *rec);

/* Result of scanning one segment from its start. */
struct log_seg_scan {
    uint64_t records;   /* whole valid records in position order */
    uint64_t last_pos;  /* position of the last one (first-1 when none) */
    uint64_t end;       /* offset just after the last one */
    uint64_t size;      /* file size */
    int stop;           /* record_status at end (RECORD_SHORT with end == size: clean) */
    int sequence_error; /* stopped because a valid record had the wrong position */
};
/* Scans fd (segment named first) from offset 0 while records are valid and dense, stopping
 * after stop_pos (UINT64_MAX: to the end). Returns 0 or a negative errno. */
int log_seg_scan(int fd, uint64_t first, uint64_t stop_pos, struct log_seg_scan *out);

/* What follows a segment's last whole record, at end, up to size: only zeros (written
 * ahead of the head by appends, append.c), a torn tail (other bytes, but no valid record),
 * or damage (a checksum-valid record after it, at *at). */
enum log_tail { LOG_TAIL_ZEROS, LOG_TAIL_TORN, LOG_TAIL_DAMAGE };
/* Returns an enum log_tail, or a negative errno. */
int log_seg_judge_tail(int fd, uint64_t end, uint64_t size, uint64_t *at);

/* Where the bytes written in [from, size) end: just after the last non-zero one, rounded
 * up to the records' 8-byte alignment (from when all are zero: the zeros written ahead of
 * the head). Returns 0 or a negative errno. */
int log_seg_written_end(int fd, uint64_t from, uint64_t size, uint64_t *end);

/* The position of the last record of a segment that ends with a whole record (a sealed
 * one), found from the end of the file (one read, usually). Returns 1 with *pos set, 0 if
 * the file does not end with a valid record (damage that log_verify reports), or -errno. */
int log_seg_last(int fd, uint64_t first, uint64_t *pos);
/* Opens or reuses the cached descriptor for segment seg. */
int log_segfd_get(struct log *lg, struct log_segfd *sf, uint64_t seg, int flags);
void log_segfd_close(struct log_segfd *sf);

/* The futex bitset of the log_sync waiters whose positions are in (from, to]: bit
 * (P mod 32) for each position P; every bit when the range holds 32 or more; 0 when empty. */
uint32_t log_sync_wake_bits(uint64_t from, uint64_t to);

/* fsync of the log directory (after creating or unlinking a segment). */
int log_sync_dir(const char *dir);

/* After a failed fdatasync (of a sync or of a roll): stops the log for every process and
 * records the durable position in DIR/sync-failed for the next recovery (sync.c). */
#define LOG_SYNC_FAILED_FILE "sync-failed"
void log_sync_failed(struct log *lg, int err);
/* With the sync-failed flag set: LOG_ESYNCFAILED, with the handle's error saying so. */
int log_refuse_after_sync_failure(struct log *lg);

/* Open-time work (control.c / recover.c). */
int log_recover(struct log *lg, uint64_t *head_pos, uint64_t *head_seg, uint64_t *head_off);
int log_scan_head(struct log *lg, uint64_t *head_pos, uint64_t *head_seg, uint64_t *head_off);
int log_control_open(struct log *lg);
void log_control_close(struct log *lg);
/* Follow mode (follow.c): open, close, and the accessors behind log_head/log_durable.
 * log_follow_ctl returns the live block mapped read-only, or NULL while there is none. */
int log_follow_open(struct log *lg);
void log_follow_close(struct log *lg);
const struct log_control *log_follow_ctl(const struct log *lg);
uint64_t log_follow_head(const struct log *lg);
uint64_t log_follow_durable(const struct log *lg);
/* Is this handle the log's last read-write user (no other process, or other handle of
 * this one, has it open)? Then it holds users.lock exclusively until it closes (control.c). */
int log_control_last_user(struct log *lg);
/* Cuts the zeros written ahead of the head, under the append lock (append.c). For the last
 * user closing the log: a stopped log's files then end with their last record. */
void log_trim_zeros(struct log *lg);
/* Cuts what a dead append-lock holder left after the published head (append.c). */
int log_repair_tail(struct log *lg);
/* Cuts the log right after the record at pos: truncates its segment (fdatasync'ed when
 * sync) and removes the segments after it, then syncs the directory if it removed any.
 * LOG_ECORRUPT when pos is not found whole. Logs what it cut, as `what` (append.c). */
struct log_cut {
    uint64_t seg, end;  /* pos's segment, the offset after pos */
    uint64_t bytes;     /* the bytes cut from it, not counting the zeros written ahead */
    int removed;              /* whole segments removed */
};
int log_cut_after(struct log *lg, uint64_t pos, int sync, const char *what, struct log_cut *out);

#endif
