#include <config.h>

#include "fold/rebuild.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "readmodel/rdir.h"
#include "readmodel/rmodel.h"
#include "readmodel/rpos.h"
#include "readmodel/rsnap.h"
#include "fold/tailer.h"
#include "util/clock.h"
#include "util/durable.h"
#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/lockfile.h"
#include "util/path.h"

#define SNAP_MAX 64

/* Seeds model dir `model` from the newest valid snapshot; returns 0 (also when none was
 * usable: the model then starts empty) or a negative code. */
static int seed_from_snapshot(const char *data_dir, const char *model, uint64_t *from)
{
    struct snapshot_info list[SNAP_MAX];
    size_t n;
    int rc = rsnap_list(data_dir, list, SNAP_MAX, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc = rsnap_verify(data_dir, &list[i]);
        if (rc) {
            EFLOG_WARN("snapshot %s failed its integrity check (%s): trying an older one",
                     list[i].name, strerror(-rc));
            continue;
        }
        char snapdir[RDIR_PATH_MAX], sdir[RDIR_PATH_MAX], src[RDIR_PATH_MAX], dst[RDIR_PATH_MAX];
        if (rdir_path(snapdir, sizeof snapdir, data_dir, "snapshots") ||
            ef_path_join(sdir, sizeof sdir, snapdir, list[i].name) ||
            ef_path_join(src, sizeof src, sdir, "data.mdb") || ef_path_join(dst, sizeof dst, model, "data.mdb"))
            return -ENAMETOOLONG;
        rc = ef_copy_file(src, dst);
        if (rc)
            return rc;
        *from = list[i].position;
        EFLOG_INFO("rebuild starts from snapshot position=%" PRIu64, list[i].position);
        return 0;
    }
    if (n)
        EFLOG_WARN("no valid snapshot: rebuilding from scratch");
    return 0;
}

struct progress {
    const struct rebuild_options *opt;
    uint64_t start_ns, from;
};

/* The tailer's progress callback: passes the fold's position on to the caller's. */
static void report_progress(uint64_t pos, uint64_t head, void *arg)
{
    struct progress *p = arg;
    if (!p->opt->progress)
        return;
    struct rebuild_progress rp = {
        .from = p->from, .position = pos, .head = head,
        .seconds = (double)(ef_mono_ns() - p->start_ns) / 1e9,
    };
    p->opt->progress(&rp, p->opt->progress_arg);
}

static int take_lock(const char *data_dir, int *fd)
{
    char path[RDIR_PATH_MAX];
    int rc = rdir_path(path, sizeof path, data_dir, "rebuild.lock");
    if (rc)
        return rc;
    rc = ef_lock_file(path, 1, fd);
    if (rc == -EWOULDBLOCK) {
        EFLOG_ERROR("another rebuild is running (%s)", path);
        return -EBUSY;
    }
    return rc;
}

/* The map to open the new model with: the configured size, or the current model's if that
 * grew larger, so that folding a long log does not fill the map again step by step (a
 * bulk transaction that fills it is folded again from its start in the grown map). */
static uint64_t map_size(const struct rebuild_options *opt)
{
    char cur[RDIR_PATH_MAX], path[RDIR_PATH_MAX];
    struct stat st;
    if (rdir_path(cur, sizeof cur, opt->data_dir, "current") == 0 &&
        ef_path_join(path, sizeof path, cur, "data.mdb") == 0 && stat(path, &st) == 0 &&
        (uint64_t)st.st_size > opt->map_bytes)
        return (uint64_t)st.st_size;
    return opt->map_bytes;
}

/* Folds the new model up to the durable head, twice: the second pass picks up what arrived
 * during the first, so the switch happens close to the head. Both passes fold in bulk
 * transactions (tailer.h): in memory, up to the budget, then written at once. */
static int catch_up(const struct rebuild_options *opt, const char *model, struct progress *pg)
{
    struct tailer_options to = {
        .data_dir = opt->data_dir, .segment_bytes = opt->segment_bytes, .map_bytes = map_size(opt),
        .once = 2, .model_dir = model, .progress = report_progress, .progress_arg = pg,
        .bulk_bytes = opt->memory_bytes ? opt->memory_bytes : REBUILD_MEMORY_BYTES,
    };
    return tailer_run(&to);
}

static int model_position(const char *model, uint64_t map, uint64_t *pos)
{
    struct rmodel_env *env;
    struct rmodel_options ro = { map, 1 };
    int rc = rmodel_env_open(model, &ro, &env);
    if (rc)
        return rc;
    struct rmodel_txn *t;
    rc = rmodel_txn_begin(env, 1, &t);
    if (rc == 0) {
        rc = rmodel_position(t, pos);
        rmodel_txn_abort(t);
    }
    rmodel_env_close(env);
    return rc;
}

/* Switches current to name and tells every process (generation in the position file). */
static int switch_model(const char *data_dir, const char *name, uint64_t position)
{
    char old[RDIR_PATH_MAX], path[RDIR_PATH_MAX];
    int rc = rdir_switch(data_dir, name, old, sizeof old);
    if (rc)
        return rc;
    struct rpos *rp;
    rc = rdir_path(path, sizeof path, data_dir, "position");
    if (rc == 0)
        rc = rpos_open(path, &rp);
    if (rc)
        return rc;
    rpos_reset(rp, position);
    rpos_bump_generation(rp);
    rpos_close(rp);
    EFLOG_INFO("read model switched model=%s position=%" PRIu64 " old=%s", name, position, old);
    /* Processes that still have the old model open keep their mapping (the files are only
     * unlinked); they reopen at their next request or batch. */
    if (old[0] && strchr(old, '/') == NULL && strcmp(old, name) != 0) {
        rc = rdir_remove_model(data_dir, old);
        if (rc)
            EFLOG_WARN("cannot remove the old model %s: %s", old, strerror(-rc));
    }
    return 0;
}

int rebuild_run(const struct rebuild_options *opt, struct rebuild_result *res)
{
    memset(res, 0, sizeof *res);
    int lock_fd = -1;
    char name[64], model[RDIR_PATH_MAX];
    struct progress pg = { opt, ef_mono_ns(), 0 };
    int rc = rdir_prepare(opt->data_dir);
    if (rc == 0)
        rc = take_lock(opt->data_dir, &lock_fd);
    if (rc == 0)
        rc = rdir_new_model(opt->data_dir, name, sizeof name);
    if (rc == 0)
        rc = rdir_path(model, sizeof model, opt->data_dir, name);
    if (rc)
        goto out;
    if (!opt->from_scratch) {
        rc = seed_from_snapshot(opt->data_dir, model, &res->from_position);
        if (rc)
            goto fail;
    }
    pg.from = res->from_position;
    rc = catch_up(opt, model, &pg);
    if (rc == 0)
        rc = model_position(model, opt->map_bytes, &res->position);
    if (rc == 0)
        rc = switch_model(opt->data_dir, name, res->position);
    if (rc)
        goto fail;
    res->seconds = (double)(ef_mono_ns() - pg.start_ns) / 1e9;
    goto out;
fail:
    EFLOG_ERROR("rebuild failed: %s", ef_strerror(rc));
    rdir_remove_model(opt->data_dir, name);
out:
    ef_unlock_file(lock_fd);
    return rc;
}

int rebuild_replace_untrusted(const char *data_dir, uint64_t map_bytes, uint64_t *position)
{
    int lock_fd = -1;
    char name[64], model[RDIR_PATH_MAX];
    *position = 0;
    int rc = take_lock(data_dir, &lock_fd);
    if (rc == 0)
        rc = rdir_new_model(data_dir, name, sizeof name);
    if (rc == 0)
        rc = rdir_path(model, sizeof model, data_dir, name);
    if (rc)
        goto out;
    rc = seed_from_snapshot(data_dir, model, position);
    if (rc == 0 && *position > 0)
        rc = model_position(model, map_bytes, position);
    if (rc == 0)
        rc = switch_model(data_dir, name, *position);
    if (rc) {
        EFLOG_ERROR("cannot replace the untrusted read model: %s", ef_strerror(rc));
        rdir_remove_model(data_dir, name);
    }
out:
    ef_unlock_file(lock_fd);
    return rc;
}
