#include <config.h>

#include "readmodel/rsnap.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "readmodel/rdir.h"
#include "readmodel/rmodel.h"
#include "readmodel/rmodel_env.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"
#include "util/path.h"

/* The position inside the copy: read from the copied model itself, so it is exactly the
 * state the copy holds even if the tailer committed during the copy. */
static int copy_position(const char *dir, uint64_t *pos)
{
    struct rmodel_env *e;
    struct rmodel_options ro = { 0, 1 };
    int rc = rmodel_env_open(dir, &ro, &e);
    if (rc)
        return rc;
    struct rmodel_txn *t;
    rc = rmodel_txn_begin(e, 1, &t);
    if (rc == 0) {
        rc = rmodel_position(t, pos);
        rmodel_txn_abort(t);
    }
    rmodel_env_close(e);
    char lock[RDIR_PATH_MAX];
    if (ef_path_join(lock, sizeof lock, dir, "lock.mdb"))
        return -ENAMETOOLONG;
    unlink(lock); /* opening created it; a snapshot holds data.mdb and the manifest only */
    return rc;
}

static int copy_into(void *env, int fd) { return rmodel_env_copy_fd(env, fd); }

static int build(const char *tmp, struct rmodel_env *env, struct snapshot_info *s)
{
    int rc = snapdir_write_data(tmp, copy_into, env, s);
    if (rc == 0)
        rc = copy_position(tmp, &s->position);
    if (rc == 0)
        rc = snapdir_seal(tmp, s);
    return rc;
}

int rsnap_format(const char *data_dir, const struct snapshot_info *s, int *format)
{
    char dir[RDIR_PATH_MAX], sdir[RDIR_PATH_MAX], path[RDIR_PATH_MAX];
    if (rdir_path(dir, sizeof dir, data_dir, "snapshots") || ef_path_join(sdir, sizeof sdir, dir, s->name) ||
        ef_path_join(path, sizeof path, sdir, "data.mdb"))
        return -ENAMETOOLONG;
    /* The file alone, read-only, without a lock file: nothing is written into the snapshot. */
    MDB_env *e;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    int rc = mdb_env_create(&e);
    if (rc)
        return ef_mdb_rc(rc);
    if ((rc = mdb_env_set_maxdbs(e, 16)) == 0 &&
        (rc = mdb_env_open(e, path, MDB_RDONLY | MDB_NOLOCK | MDB_NOSUBDIR | MDB_NOTLS, 0)) == 0 &&
        (rc = mdb_txn_begin(e, NULL, MDB_RDONLY, &txn)) == 0 && (rc = mdb_dbi_open(txn, "meta", 0, &meta)) == 0) {
        MDB_val k = { sizeof RMODEL_META_FORMAT - 1, (void *)RMODEL_META_FORMAT }, v;
        rc = mdb_get(txn, meta, &k, &v);
        if (rc == 0 && v.mv_size == 1)
            *format = *(unsigned char *)v.mv_data;
        else if (rc == 0)
            rc = RMODEL_EFORMAT;
    }
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(e);
    return rc == 0 ? 0 : rc == MDB_NOTFOUND ? RMODEL_EFORMAT : ef_mdb_rc(rc);
}

/* Removes the snapshots of another layout than this release's: no rebuild of this release
 * can start from them (model_switch.h), and by position they would outlive the snapshots
 * a refold after an upgrade takes below them (snapdir_prune keeps the newest positions).
 * Called once a snapshot of this layout is in place. One that cannot be read is left to
 * the prune and to the rebuild's checks. */
static void remove_other_layouts(const char *data_dir, const char *dir)
{
    struct snapshot_info list[SNAPDIR_LIST_MAX];
    size_t n;
    char path[SNAPDIR_PATH_MAX];
    if (snapdir_list(dir, list, SNAPDIR_LIST_MAX, &n))
        return;
    for (size_t i = 0; i < n; i++) {
        int format = RMODEL_FORMAT;
        if (rsnap_format(data_dir, &list[i], &format) != 0 || format == RMODEL_FORMAT)
            continue;
        if (ef_path_join(path, sizeof path, dir, list[i].name) != 0 || snapdir_remove(path) != 0)
            continue;
        EFLOG_INFO("snapshot of another layout removed position=%" PRIu64 " format=%d (this release: %d) dir=%s",
                   list[i].position, format, RMODEL_FORMAT, dir);
    }
}

int rsnap_take(const char *data_dir, struct rmodel_env *env, int keep, struct snapshot_info *info)
{
    char dir[RDIR_PATH_MAX], tmp[SNAPDIR_PATH_MAX];
    struct snapshot_info s;
    memset(&s, 0, sizeof s);
    uint64_t t0 = ef_mono_ns();
    int rc = rdir_path(dir, sizeof dir, data_dir, "snapshots");
    if (rc)
        return rc;
    if ((rc = snapdir_begin(dir, tmp)) != 0)
        return rc;
    rc = build(tmp, env, &s);
    if (rc == 0)
        rc = snapdir_publish(dir, tmp, &s, 1); /* a snapshot at the same position is replaced */
    if (rc) {
        EFLOG_ERROR("snapshot failed: %s", rmodel_strerror(rc));
        snapdir_remove(tmp);
        return rc;
    }
    EFLOG_INFO("snapshot taken position=%" PRIu64 " bytes=%" PRIu64 " ms=%" PRIu64, s.position,
             s.bytes, (ef_mono_ns() - t0) / 1000000u);
    remove_other_layouts(data_dir, dir);
    snapdir_prune(dir, keep);
    if (info)
        *info = s;
    return 0;
}

void (*rsnap_job_before_copy)(void);

static void *job_main(void *arg)
{
    struct rsnap_job *j = arg;
    if (rsnap_job_before_copy)
        rsnap_job_before_copy();
    j->rc = rsnap_take(j->data_dir, j->env, j->keep, &j->info);
    atomic_store_explicit(&j->done, 1, memory_order_release);
    return NULL;
}

int rsnap_job_start(struct rsnap_job *j, const char *data_dir, struct rmodel_env *env, int keep)
{
    assert(!j->running);
    j->data_dir = data_dir;
    j->env = env;
    j->keep = keep;
    j->rc = 0;
    memset(&j->info, 0, sizeof j->info);
    atomic_store(&j->done, 0);
    int err = pthread_create(&j->tid, NULL, job_main, j);
    if (err)
        return -err;
    j->running = 1;
    return 0;
}

int rsnap_job_running(const struct rsnap_job *j) { return j->running; }

int rsnap_job_done(const struct rsnap_job *j)
{
    return j->running && atomic_load_explicit(&j->done, memory_order_acquire);
}

int rsnap_job_finish(struct rsnap_job *j)
{
    if (!j->running)
        return 0;
    int err = pthread_join(j->tid, NULL);
    assert(err == 0); /* a joinable thread of ours: EDEADLK/EINVAL/ESRCH cannot happen */
    (void)err;
    j->running = 0;
    return j->rc;
}

int rsnap_list(const char *data_dir, struct snapshot_info *list, size_t max, size_t *n)
{
    char dir[RDIR_PATH_MAX];
    *n = 0;
    int rc = rdir_path(dir, sizeof dir, data_dir, "snapshots");
    return rc ? rc : snapdir_list(dir, list, max, n);
}

int rsnap_newest_position(const char *data_dir, uint64_t *pos)
{
    struct snapshot_info list[SNAPDIR_LIST_MAX];
    size_t n;
    int rc = rsnap_list(data_dir, list, SNAPDIR_LIST_MAX, &n);
    *pos = rc == 0 && n ? list[0].position : 0;
    return rc;
}

int rsnap_verify(const char *data_dir, const struct snapshot_info *s)
{
    char dir[RDIR_PATH_MAX];
    int rc = rdir_path(dir, sizeof dir, data_dir, "snapshots");
    return rc ? rc : snapdir_verify(dir, s);
}

int rsnap_render(const char *data_dir, struct sbuf *out)
{
    char dir[RDIR_PATH_MAX];
    int rc = rdir_path(dir, sizeof dir, data_dir, "snapshots");
    return rc ? rc : rsnap_render_dir(dir, out);
}

int rsnap_render_dir(const char *dir, struct sbuf *out)
{
    struct snapshot_info list[SNAPDIR_LIST_MAX];
    size_t n;
    int rc = snapdir_list(dir, list, SNAPDIR_LIST_MAX, &n);
    if (rc)
        return rc;
    sbuf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        sbuf_puts(out, i ? ",{" : "{");
        sbuf_json_key(out, "position");
        sbuf_json_u64(out, list[i].position);
        sbuf_json_key(out, "taken_at");
        sbuf_json_time(out, list[i].taken_at);
        sbuf_json_key(out, "bytes");
        sbuf_json_u64(out, list[i].bytes);
        sbuf_putc(out, '}');
    }
    sbuf_putc(out, ']');
    return 0;
}
