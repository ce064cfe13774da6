#include <config.h>

#include "fold/rebuild.h"

#include <string.h>
#include <sys/stat.h>

#include "fold/model_switch.h"
#include "fold/tailer.h"
#include "readmodel/rdir.h"
#include "util/clock.h"
#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/path.h"

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

int rebuild_run(const struct rebuild_options *opt, struct rebuild_result *res)
{
    memset(res, 0, sizeof *res);
    int lock_fd = -1;
    char name[64], model[RDIR_PATH_MAX];
    struct progress pg = { opt, ef_mono_ns(), 0 };
    int rc = rdir_prepare(opt->data_dir);
    if (rc == 0)
        rc = model_switch_lock(opt->data_dir, &lock_fd);
    if (rc == 0)
        rc = rdir_new_model(opt->data_dir, name, sizeof name);
    if (rc == 0)
        rc = rdir_path(model, sizeof model, opt->data_dir, name);
    if (rc)
        goto out;
    if (!opt->from_scratch) {
        rc = model_switch_seed(opt->data_dir, model, &res->from_position);
        if (rc)
            goto fail;
    }
    pg.from = res->from_position;
    rc = catch_up(opt, model, &pg);
    if (rc == 0)
        rc = model_switch_position(model, opt->map_bytes, &res->position);
    if (rc == 0)
        rc = model_switch_to(opt->data_dir, name, res->position);
    if (rc)
        goto fail;
    res->seconds = (double)(ef_mono_ns() - pg.start_ns) / 1e9;
    goto out;
fail:
    EFLOG_ERROR("rebuild failed: %s", ef_strerror(rc));
    rdir_remove_model(opt->data_dir, name);
out:
    model_switch_unlock(lock_fd);
    return rc;
}
