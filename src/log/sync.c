#include <config.h>

#include "log/io.h"
#include "log/log_int.h"
#include "util/clock.h"
#include "util/durable.h"
#include "util/eflog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Group commit. One process at a time leads: it holds the sync mutex and fdatasyncs the
 * segment of everything published so far. The others do not queue on the mutex (a convoy
 * of lock hand-offs, one context switch each); they sleep on the durable_seq futex, which
 * the leader bumps after every attempt, and on waking either find their position covered
 * or try to lead the next round, which then covers every record appended meanwhile.
 *
 * Two things keep a busy machine from adding its scheduling delay to every sync:
 *  - A waiter sleeps with a futex bitset naming its position (pos_bit), and after a round
 *    the leader wakes only the bits of the positions it covered: the waiters a round did
 *    not cover sleep on instead of waking to find nothing, a context switch each.
 *  - A leader whose own record is durable goes on leading while records were published
 *    after its round (their appenders are waiting or about to be), up to SYNC_LEAD_ROUNDS
 *    rounds in all: the next round starts at once, from a thread already on a CPU, rather
 *    than after a woken waiter has waited for one. Only then it unlocks and wakes every
 *    waiter (all bits), so that one of those still uncovered leads the next round. */

/* How long a waiter sleeps before looking again by itself: only matters when a leader
 * died mid-sync (the robust mutex then hands the next trylock EOWNERDEAD). */
#define SYNC_RECHECK_NS (50u * 1000000u)
#define FOLLOW_NAP_NS (50u * 1000000u) /* a follower with no live writer: its polling period */
/* Rounds a leader syncs at most before handing over: bounds how much later than its own
 * record's sync a leader's caller gets its answer (three more fdatasyncs). */
#define SYNC_LEAD_ROUNDS 4

static int futex_wait(_Atomic uint32_t *addr, uint32_t val, uint64_t timeout_ns);
static int futex_wait_bits(_Atomic uint32_t *addr, uint32_t val, uint32_t bits, uint64_t timeout_ns);
static void wake_all(struct log_control *c);
static void wake_bits(struct log_control *c, uint32_t bits);


/* DIR/sync-failed holds the durable position as decimal text, made durable itself (as far
 * as a failing disk allows: if it cannot be written, the next recovery may find records
 * missing before valid ones, and refuses the log naming segment and offset instead). A
 * marker whose own fsync failed is kept: it is in the page cache, which a restart of the
 * programs (without a reboot) still reads. */
static int write_marker(const char *dir, uint64_t durable)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%" PRIu64 "\n", durable);
    return ef_write_durably(dir, LOG_SYNC_FAILED_FILE, text, (size_t)n);
}

void log_sync_failed(struct log *lg, int err)
{
    struct log_control *c = lg->ctl;
    if (atomic_exchange(&c->sync_failed, 1) != 0)
        return; /* another thread or process was first */
    uint64_t d = atomic_load_explicit(&c->durable, memory_order_acquire);
    int merr = write_marker(lg->dir, d);
    EFLOG_ERROR("log: fdatasync failed err=\"%s\": nothing after position %" PRIu64 " will be "
              "acknowledged or appended; restart every eventfold program to recover (the records "
              "after it were never acknowledged and are cut)%s%s", strerror(-err), d,
              merr ? "; cannot write the marker file: " : "", merr ? strerror(-merr) : "");
    wake_all(c); /* waiters see the flag instead of sleeping out their timeout */
}

int log_refuse_after_sync_failure(struct log *lg)
{
    log_set_error(lg, "an earlier fdatasync of the log failed, so nothing after position %" PRIu64
                  " can be acknowledged: restart every eventfold program to recover",
                  atomic_load_explicit(&lg->ctl->durable, memory_order_acquire));
    return LOG_ESYNCFAILED;
}

static void wake_all(struct log_control *c)
{
    wake_bits(c, FUTEX_BITSET_MATCH_ANY);
}

/* Bumps the futex word and wakes the waiters whose bitset meets bits: log_sync's waiters
 * wait with pos_bit of their position, log_wait_durable's with every bit (so every round
 * wakes them: the tailer folds what each round made durable). */
static void wake_bits(struct log_control *c, uint32_t bits)
{
    atomic_fetch_add_explicit(&c->durable_seq, 1, memory_order_release);
    /* Non-private futex: waiters live in other processes mapping the same file page. */
    syscall(SYS_futex, &c->durable_seq, FUTEX_WAKE_BITSET, INT_MAX, NULL, NULL, bits);
}

static uint32_t pos_bit(uint64_t pos)
{
    return 1u << (pos & 31);
}

uint32_t log_sync_wake_bits(uint64_t from, uint64_t to)
{
    if (to <= from)
        return 0;
    if (to - from >= 32)
        return FUTEX_BITSET_MATCH_ANY;
    uint32_t m = 0;
    for (uint64_t p = from + 1; p <= to; p++)
        m |= pos_bit(p);
    return m;
}

/* The leader's work: make everything published so far durable. */
static int lead_sync(struct log *lg)
{
    struct log_control *c = lg->ctl;
    /* Position first: the segment loaded after it is that position's segment or a newer
     * one, and segments older than head_seg were synced when they were sealed. */
    uint64_t pos = atomic_load_explicit(&c->head_pos, memory_order_acquire);
    uint64_t seg = atomic_load_explicit(&c->head_seg, memory_order_acquire);
    int err = log_segfd_get(lg, &lg->syn, seg, O_RDONLY);
    if (err)
        return err;
    if (log_io.fdatasync(lg->syn.fd) < 0) {
        err = -errno;
        log_set_error(lg, "cannot sync segment %" PRIu64 ": %s", seg, strerror(errno));
        log_sync_failed(lg, err);
        return err;
    }
    /* Not after another fdatasync of the segment failed (the seal at a roll, in another
     * process): this one may have come back clean over pages the kernel had dropped. */
    if (atomic_load_explicit(&c->sync_failed, memory_order_acquire))
        return log_refuse_after_sync_failure(lg);
    if (pos > atomic_load_explicit(&c->durable, memory_order_relaxed))
        atomic_store_explicit(&c->durable, pos, memory_order_release);
    return 0;
}

/* The sync lock held: syncs until position is durable, then goes on while records were
 * published after the last round, up to SYNC_LEAD_ROUNDS rounds, waking after each round
 * the waiters it covered. The caller unlocks and wakes everyone after it. */
static int lead(struct log *lg, uint64_t position)
{
    struct log_control *c = lg->ctl;
    for (int round = 0;; round++) {
        if (atomic_load_explicit(&c->sync_failed, memory_order_acquire))
            return log_refuse_after_sync_failure(lg);
        uint64_t d = atomic_load_explicit(&c->durable, memory_order_acquire);
        if (round == 0 ? d >= position
                       : round == SYNC_LEAD_ROUNDS || atomic_load_explicit(&c->head_pos, memory_order_acquire) <= d)
            return 0;
        int err = lead_sync(lg);
        if (err)
            return err;
        wake_bits(c, log_sync_wake_bits(d, atomic_load_explicit(&c->durable, memory_order_acquire)));
    }
}

int log_sync(struct log *lg, uint64_t position)
{
    if (!lg->ctl)
        return LOG_EREADONLY;
    struct log_control *c = lg->ctl;
    if (position > atomic_load_explicit(&c->head_pos, memory_order_acquire))
        return LOG_EBADARG;
    for (;;) {
        /* The futex word is loaded before the trylock: a leader that finishes after a
         * failed trylock bumps it, so the wait below returns at once instead of sleeping
         * with nobody left to wake it. */
        uint32_t seq = atomic_load_explicit(&c->durable_seq, memory_order_acquire);
        if (atomic_load_explicit(&c->durable, memory_order_acquire) >= position)
            return 0;
        if (atomic_load_explicit(&c->sync_failed, memory_order_acquire))
            return log_refuse_after_sync_failure(lg);
        int r = pthread_mutex_trylock(&c->sync_mu);
        /* A leader that died mid-fdatasync left nothing to repair: durable only moves
         * after a completed sync. */
        if (r == EOWNERDEAD)
            r = pthread_mutex_consistent(&c->sync_mu);
        if (r == 0) {
            int err = lead(lg, position);
            pthread_mutex_unlock(&c->sync_mu);
            wake_all(c); /* after the unlock, so that woken waiters can lead at once */
            return err;
        }
        if (r != EBUSY) {
            log_set_error(lg, "sync lock: %s", strerror(r));
            return -r;
        }
        futex_wait_bits(&c->durable_seq, seq, pos_bit(position), SYNC_RECHECK_NS);
    }
}

static int futex_wait_bits(_Atomic uint32_t *addr, uint32_t val, uint32_t bits, uint64_t timeout_ns)
{
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline (the kernel's clock, so
     * read here, not through util/clock). */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t at = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + timeout_ns;
    ts = (struct timespec){ .tv_sec = (time_t)(at / 1000000000u), .tv_nsec = (long)(at % 1000000000u) };
    return (int)syscall(SYS_futex, addr, FUTEX_WAIT_BITSET, val, &ts, NULL, bits);
}

static int futex_wait(_Atomic uint32_t *addr, uint32_t val, uint64_t timeout_ns)
{
    struct timespec ts = { .tv_sec = (time_t)(timeout_ns / 1000000000u), .tv_nsec = (long)(timeout_ns % 1000000000u) };
    return (int)syscall(SYS_futex, addr, FUTEX_WAIT, val, &ts, NULL, 0);
}

int log_wait_durable(const struct log *lg, uint64_t after, int timeout_ms)
{
    if (log_durable(lg) > after)
        return 1;
    if ((!lg->ctl && !lg->fw) || timeout_ms <= 0)
        return 0;
    uint64_t deadline = ef_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        /* A follower with no live writer yet: nothing can move the futex word; look for a
         * writer again now and then (log_follow_ctl rate-limits the look). */
        const struct log_control *c = lg->fw ? log_follow_ctl(lg) : lg->ctl;
        if (!c) {
            uint64_t now = ef_mono_ns();
            if (log_durable(lg) > after)
                return 1;
            if (now >= deadline)
                return 0;
            uint64_t nap = deadline - now < FOLLOW_NAP_NS ? deadline - now : FOLLOW_NAP_NS;
            nanosleep(&(struct timespec){ 0, (long)nap }, NULL);
            continue;
        }
        /* Load the word before checking durable: a bump in between makes FUTEX_WAIT
         * return at once instead of missing the wake-up. */
        uint32_t seq = atomic_load_explicit(&c->durable_seq, memory_order_acquire);
        if (log_durable(lg) > after)
            return 1;
        uint64_t now = ef_mono_ns();
        if (now >= deadline)
            return 0;
        /* FUTEX_WAIT only reads the word: a follower's PROT_READ mapping will do, and the
         * key (inode, offset) is the writers' own, so their FUTEX_WAKE reaches it. */
        futex_wait((_Atomic uint32_t *)&c->durable_seq, seq, deadline - now);
    }
}
