#include <config.h>

#include "write/wsnap.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/bootid.h"
#include "util/clock.h"
#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"
#include "util/path.h"
#include "util/xalloc.h"

#define TAKER_TICK_MS 200      /* how often an idle taker looks at the durable position */
#define TAKER_BUSY_TICKS 5     /* after losing the flock: wait, then look at the list again */

const char *wsnap_strerror(int err)
{
    switch (err) {
    case WSNAP_EBUSY:
        return "another process is taking a write-model snapshot";
    case WSNAP_EBOOT:
        return "the write model was not validated in this boot (start eventfold-command first)";
    case WSNAP_EEMPTY:
        return "the write model is empty";
    case WSNAP_EAHEAD:
        return "the write model copy is ahead of the log";
    case WSNAP_ENONE:
        return "there is no write model";
    default:
        return ef_strerror_except(EF_ERR_WSNAP, err);
    }
}

int wsnap_dir(const char *model_dir, char *out)
{
    return ef_path_join(out, SNAPDIR_PATH_MAX, model_dir, "snapshots");
}

/* Position and boot id held by the copy in dir (tmp/data.mdb). */
static int copy_meta(const char *dir, uint64_t *pos, char *boot, size_t cap)
{
    char file[SNAPDIR_PATH_MAX];
    struct wm *c = NULL;
    MDB_txn *txn;
    int rc = ef_path_join(file, sizeof file, dir, "data.mdb");
    if (rc == 0)
        rc = wm_open_copy(file, &c);
    if (rc == 0 && (rc = wm_begin(c, 0, &txn)) == 0) {
        rc = wm_get_applied(c, txn, pos);
        if (rc == 0)
            rc = wm_get_boot_id(c, txn, boot, cap);
        mdb_txn_abort(txn);
    }
    wm_close(c);
    return rc;
}

static int copy_into(void *wm, int fd) { return wm_copy(wm, fd); }

/* Copy, check, seal, wait for durability: everything before the rename. */
static int build(struct wm *wm, struct log *lg, const char *tmp, struct snapshot_info *s)
{
    char boot[64], now[64];
    int rc = snapdir_write_data(tmp, copy_into, wm, s);
    if (rc == 0)
        rc = copy_meta(tmp, &s->position, boot, sizeof boot);
    if (rc)
        return rc;
    ef_boot_id(now, sizeof now);
    if (now[0] && strcmp(now, boot) != 0)
        return WSNAP_EBOOT;
    if (s->position == 0)
        return WSNAP_EEMPTY;
    if ((rc = snapdir_seal(tmp, s)) != 0)
        return rc;
    /* The copy may hold records the log has published but not yet fdatasync'ed. */
    rc = log_sync(lg, s->position);
    return rc == LOG_EBADARG ? WSNAP_EAHEAD : rc;
}

int wsnap_take(struct wm *wm, struct log *lg, const char *snap_dir, int keep, int nonblock,
               struct snapshot_info *info)
{
    char tmp[SNAPDIR_PATH_MAX] = "";
    struct snapshot_info s;
    int lock = -1;
    memset(&s, 0, sizeof s);
    uint64_t t0 = ef_mono_ns();
    int rc = snapdir_lock(snap_dir, nonblock, &lock);
    if (rc == -EWOULDBLOCK)
        return WSNAP_EBUSY;
    if (rc == 0) {
        snapdir_remove_tmp(snap_dir); /* left by takers that died: we hold the lock */
        rc = snapdir_begin(snap_dir, tmp);
        if (rc == 0 && (rc = build(wm, lg, tmp, &s)) == 0)
            rc = snapdir_publish(snap_dir, tmp, &s, 0);
        if (rc < 0 && tmp[0])
            snapdir_remove(tmp);
    }
    if (rc < 0) {
        snapdir_unlock(lock);
        if (rc == WSNAP_EBOOT || rc == WSNAP_EEMPTY)
            EFLOG_INFO("write-model snapshot skipped dir=%s reason=\"%s\"", snap_dir, wsnap_strerror(rc));
        else
            EFLOG_ERROR("write-model snapshot failed dir=%s err=\"%s\"", snap_dir, wsnap_strerror(rc));
        return rc;
    }
    if (rc == 0)
        EFLOG_INFO("write-model snapshot taken position=%" PRIu64 " bytes=%" PRIu64 " ms=%" PRIu64,
                 s.position, s.bytes, (ef_mono_ns() - t0) / 1000000u);
    snapdir_prune(snap_dir, keep);
    snapdir_unlock(lock);
    if (info)
        *info = s;
    return 0;
}

int wsnap_take_now(const char *model_dir, uint64_t map_bytes, struct log *lg, int keep,
                   struct snapshot_info *info)
{
    char file[SNAPDIR_PATH_MAX], dir[SNAPDIR_PATH_MAX];
    struct stat st;
    struct wm *wm;
    if (ef_path_join(file, sizeof file, model_dir, "data.mdb") || wsnap_dir(model_dir, dir))
        return -ENAMETOOLONG;
    if (stat(file, &st) < 0)
        return errno == ENOENT ? WSNAP_ENONE : -errno;
    int rc = wm_open(model_dir, map_bytes, &wm);
    if (rc)
        return rc;
    rc = wsnap_take(wm, lg, dir, keep, 0, info);
    wm_close(wm);
    return rc;
}

/* --- restore ------------------------------------------------------------------------- */

/* Replaces dst's content with src's in one write transaction (keys come out of a cursor in
 * order, so MDB_APPEND), and stamps this boot. */
static int load_copy(struct wm *dst, struct wm *src)
{
    MDB_txn *r = NULL, *w = NULL;
    MDB_cursor *cur = NULL;
    char boot[64];
    int rc;
    if ((rc = wm_begin(src, 0, &r)) != 0 || (rc = wm_begin(dst, 1, &w)) != 0 ||
        (rc = wm_clear(dst, w)) != 0)
        goto fail;
    for (int i = 0; i < WM_NDBI && rc == 0; i++) {
        MDB_dbi from, to;
        MDB_val k, v;
        wm_dbi(src, i, &from);
        wm_dbi(dst, i, &to);
        if ((rc = mdb_cursor_open(r, from, &cur)) != 0)
            goto fail;
        int got;
        for (got = mdb_cursor_get(cur, &k, &v, MDB_FIRST); got == 0 && rc == 0;
             got = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
            rc = mdb_put(w, to, &k, &v, MDB_APPEND);
        if (rc == 0 && got != MDB_NOTFOUND)
            rc = got;
        mdb_cursor_close(cur);
        cur = NULL;
    }
    ef_boot_id(boot, sizeof boot);
    if (rc || (rc = wm_set_boot_id(dst, w, boot)) != 0)
        goto fail;
    rc = mdb_txn_commit(w);
    w = NULL;
    if (rc)
        goto fail;
    mdb_txn_abort(r);
    return 0;
fail:
    if (w)
        mdb_txn_abort(w);
    if (r)
        mdb_txn_abort(r);
    return ef_mdb_rc(rc);
}

static int copy_position(struct wm *src, uint64_t *pos)
{
    MDB_txn *txn;
    int rc = wm_begin(src, 0, &txn);
    if (rc == 0) {
        rc = wm_get_applied(src, txn, pos);
        mdb_txn_abort(txn);
    }
    return rc;
}

/* Loads snapshot s into wm if it is usable. 0 loaded; otherwise a code (the reason was
 * logged, wm unchanged). */
static int try_snapshot(struct wm *wm, struct log *lg, const char *snap_dir,
                        const struct snapshot_info *s)
{
    char sdir[SNAPDIR_PATH_MAX], file[SNAPDIR_PATH_MAX];
    struct wm *src = NULL;
    uint64_t pos = 0;
    const char *why = NULL;
    int rc = 0;
    if (s->position > log_head(lg)) {
        EFLOG_WARN("write-model snapshot ahead of the log skipped snapshot=%s/%s position=%" PRIu64
                 " log_head=%" PRIu64, snap_dir, s->name, s->position, log_head(lg));
        return WSNAP_EAHEAD;
    }
    if ((rc = snapdir_verify(snap_dir, s)) != 0)
        why = rc == -EBADMSG ? "damaged (size or CRC32C)" : "unreadable";
    else if ((rc = ef_path_join(sdir, sizeof sdir, snap_dir, s->name)) != 0 ||
             (rc = ef_path_join(file, sizeof file, sdir, "data.mdb")) != 0 ||
             (rc = wm_open_copy(file, &src)) != 0)
        why = "cannot be opened";
    else if ((rc = copy_position(src, &pos)) != 0)
        why = "cannot be read";
    else if (pos != s->position)
        rc = WM_ECORRUPT;
    else if ((rc = load_copy(wm, src)) != 0)
        why = "cannot be loaded";
    if (rc == WM_ECORRUPT && !why)
        why = "its content is at another position than its manifest";
    wm_close(src);
    if (why)
        EFLOG_WARN("write-model snapshot skipped snapshot=%s/%s reason=\"%s\" err=\"%s\"", snap_dir,
                 s->name, why, wsnap_strerror(rc));
    return rc;
}

int wsnap_load(struct wm *wm, struct log *lg, const char *snap_dir, struct snapshot_info *used)
{
    struct snapshot_info list[SNAPDIR_LIST_MAX];
    size_t n = 0;
    int rc = snapdir_list(snap_dir, list, SNAPDIR_LIST_MAX, &n);
    if (rc)
        EFLOG_WARN("cannot list write-model snapshots dir=%s err=\"%s\"", snap_dir, strerror(-rc));
    for (size_t i = 0; i < n; i++) {
        if (try_snapshot(wm, lg, snap_dir, &list[i]) == 0) {
            *used = list[i];
            return 0;
        }
    }
    return 1;
}

/* --- the taker thread ------------------------------------------------------------------ */

struct wsnap_taker {
    struct wm *wm;
    struct log *lg;
    char dir[SNAPDIR_PATH_MAX];
    uint64_t every;
    int keep;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop; /* under mu */
};

/* Sleeps up to ms or until stopped; returns 1 when stopped. */
static int taker_sleep(struct wsnap_taker *t, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&t->mu);
    while (!t->stop && pthread_cond_timedwait(&t->cv, &t->mu, &until) == 0)
        ;
    int stop = t->stop;
    pthread_mutex_unlock(&t->mu);
    return stop;
}

static uint64_t next_target(struct wsnap_taker *t)
{
    struct snapshot_info list[SNAPDIR_LIST_MAX];
    size_t n = 0;
    snapdir_list(t->dir, list, SNAPDIR_LIST_MAX, &n);
    return (n ? list[0].position : 0) + t->every;
}

/* Polls log_durable() (shared memory, no syscall) rather than sleeping on the durable
 * futex: the command path's wake-ups stay as cheap as they were.
 *
 * The interval counts from the newest snapshot in the directory, whoever took it: when
 * this taker's own count says one is due, it lists the directory again, since another
 * worker's taker or `eventfoldctl snapshot` may have taken a newer one meanwhile. (Counting
 * from its own last one, a taker copied the model again a few records after
 * `eventfoldctl snapshot` had.) */
static void *taker_main(void *arg)
{
    struct wsnap_taker *t = arg;
    uint64_t target = next_target(t);
    int ticks = 1, failed = 0;
    while (!taker_sleep(t, TAKER_TICK_MS * ticks)) {
        ticks = 1;
        if (log_durable(t->lg) < target)
            continue;
        if (!failed) {
            target = next_target(t);
            if (log_durable(t->lg) < target)
                continue;
        }
        failed = 0;
        struct snapshot_info info;
        int rc = wsnap_take(t->wm, t->lg, t->dir, t->keep, 1, &info);
        if (rc == 0) {
            target = info.position + t->every;
        } else if (rc == WSNAP_EBUSY) {
            /* Another worker is taking it: its snapshot moves the target on (listed
             * again when this one comes due). */
            ticks = TAKER_BUSY_TICKS;
        } else { /* logged; try again one interval later, without listing */
            target = log_durable(t->lg) + t->every;
            failed = 1;
        }
    }
    return NULL;
}

int wsnap_taker_start(struct wm *wm, struct log *lg, const char *model_dir, uint64_t every,
                      int keep, struct wsnap_taker **out)
{
    *out = NULL;
    if (every == 0)
        return 0;
    struct wsnap_taker *t = xcalloc(1, sizeof *t);
    t->wm = wm;
    t->lg = lg;
    t->every = every;
    t->keep = keep;
    pthread_condattr_t ca;
    int rc = wsnap_dir(model_dir, t->dir);
    if (rc) {
        free(t);
        return rc;
    }
    /* The cv must wait on CLOCK_MONOTONIC (taker_sleep's deadlines): anything less and
     * the timed waits return at once, a busy loop. */
    if ((rc = pthread_mutex_init(&t->mu, NULL)) != 0) {
        free(t);
        return -rc;
    }
    if ((rc = pthread_condattr_init(&ca)) == 0) {
        if ((rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) == 0)
            rc = pthread_cond_init(&t->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (rc) {
        EFLOG_ERROR("cannot start the write-model snapshot thread err=%s", strerror(rc));
        pthread_mutex_destroy(&t->mu);
        free(t);
        return -rc;
    }
    /* The thread takes no asynchronous signal: the worker's own threads handle them. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGABRT);
    int err = pthread_sigmask(SIG_BLOCK, &all, &old);
    if (err == 0) {
        err = pthread_create(&t->tid, NULL, taker_main, t);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (err) {
        EFLOG_ERROR("cannot start the write-model snapshot thread err=%s", strerror(err));
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return -err;
    }
    *out = t;
    return 0;
}

void wsnap_taker_stop(struct wsnap_taker *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->tid, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
