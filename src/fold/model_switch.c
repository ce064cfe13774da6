#include <config.h>

#include "fold/model_switch.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "readmodel/rdir.h"
#include "readmodel/rmodel.h"
#include "readmodel/rmodel_env.h"
#include "readmodel/rpos.h"
#include "readmodel/rsnap.h"
#include "util/durable.h"
#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/lockfile.h"
#include "util/path.h"

int model_switch_lock(const char *data_dir, int *fd)
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

void model_switch_unlock(int fd)
{
    ef_unlock_file(fd);
}

int model_switch_seed(const char *data_dir, const char *model, uint64_t *from)
{
    struct snapshot_info list[SNAPDIR_LIST_MAX];
    size_t n;
    int rc = rsnap_list(data_dir, list, SNAPDIR_LIST_MAX, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc = rsnap_verify(data_dir, &list[i]);
        if (rc) {
            EFLOG_WARN("snapshot %s failed its integrity check (%s): trying an older one",
                     list[i].name, strerror(-rc));
            continue;
        }
        /* The layout is read from the snapshot itself, before a copy of it is made. */
        int format = 0;
        rc = rsnap_format(data_dir, &list[i], &format);
        if (rc) {
            EFLOG_WARN("snapshot %s has no readable layout version (%s): trying an older one", list[i].name,
                       rmodel_strerror(rc));
            continue;
        }
        if (format != RMODEL_FORMAT) {
            EFLOG_WARN("snapshot %s holds a read model of another layout (format %d) than this release's "
                       "(format %d): trying an older one", list[i].name, format, RMODEL_FORMAT);
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
        EFLOG_WARN("no usable snapshot (damaged, or of another layout): the model starts empty");
    return 0;
}

int model_switch_position(const char *model, uint64_t map, uint64_t *pos)
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

int model_switch_to(const char *data_dir, const char *name, uint64_t position)
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

int model_switch_replace(const char *data_dir, uint64_t map_bytes, uint64_t *position)
{
    int lock_fd = -1;
    char name[64], model[RDIR_PATH_MAX];
    *position = 0;
    int rc = model_switch_lock(data_dir, &lock_fd);
    if (rc == 0)
        rc = rdir_new_model(data_dir, name, sizeof name);
    if (rc == 0)
        rc = rdir_path(model, sizeof model, data_dir, name);
    if (rc)
        goto out;
    rc = model_switch_seed(data_dir, model, position);
    if (rc == 0 && *position > 0)
        rc = model_switch_position(model, map_bytes, position);
    if (rc == 0)
        rc = model_switch_to(data_dir, name, *position);
    if (rc) {
        EFLOG_ERROR("cannot replace the read model: %s", ef_strerror(rc));
        rdir_remove_model(data_dir, name);
    }
out:
    model_switch_unlock(lock_fd);
    return rc;
}
