#include <config.h>

#include "write/handler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/metrics.h"
#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/path.h"
#include "util/replica.h"
#include "util/xalloc.h"
#include "write/execute.h"
#include "write/replay.h"
#include "write/wsnap.h"

/* One directory: it must be a directory we may write into (EROFS on a read-only mount,
 * even for root). missing_ok: an absent one is fine (created later). 0 or -errno, with err
 * set. */
static int check_dir(const char *what, const char *path, int missing_ok, char *err,
                     size_t errlen)
{
    struct stat st;
    int rc = 0;
    if (stat(path, &st) < 0)
        rc = errno == ENOENT && missing_ok ? 0 : -errno;
    else if (!S_ISDIR(st.st_mode))
        rc = -ENOTDIR;
    else if (access(path, W_OK | X_OK) < 0)
        rc = -errno;
    if (rc)
        snprintf(err, errlen, "%s '%s': %s", what, path, strerror(-rc));
    return rc;
}

/* The master's log handle from write_preflight, kept open until write_preflight_end() so
 * that the workers attach to the log it recovered instead of the first of them (then the
 * first opener again) scanning the newest segment a second time. A worker closes its
 * inherited copy first thing (write_worker_init), which leaves the master's lock alone. */
static struct log *master_log;

/* Opens the log and the write model as a worker does; on failure err names the cause
 * (for the log: segment and offset). */
static int open_both(const struct ef_config *cfg, struct write_ctx *ctx, char *err, size_t errlen)
{
    char path[EF_PATH_MAX + 16], model[EF_PATH_MAX + 16];
    struct log_options lo = { .segment_bytes = cfg->segment_bytes, .read_only = 0 };
    if (ef_path_join(path, sizeof path, cfg->data_dir, "log") ||
        ef_path_join(model, sizeof model, cfg->data_dir, "write")) {
        snprintf(err, errlen, "data directory path too long");
        return -ENAMETOOLONG;
    }
    int rc = log_open(path, &lo, &ctx->log);
    if (rc) {
        snprintf(err, errlen, "cannot open the log: %s", log_last_error(NULL));
        return rc;
    }
    if ((rc = write_model_open(model, cfg->write_map_bytes, ctx->log, &ctx->wm)) != 0)
        snprintf(err, errlen, "cannot open the write model '%s': %s", model, ef_strerror(rc));
    return rc;
}

int write_preflight(const struct ef_config *cfg, char *err, size_t errlen)
{
    char path[EF_PATH_MAX + 16];
    int rc = check_dir("data directory", cfg->data_dir, 0, err, errlen);
    if (rc)
        return rc;
    /* A replica's log is a copy of the leader's, appended by eventfold-mirror alone: a
     * command appended here would fork it from the leader's for good. */
    char stream[REPLICA_STREAM_MAX];
    int marked = replica_marker_read(cfg->data_dir, stream, sizeof stream);
    if (marked != 0) {
        if (marked > 0)
            snprintf(err, errlen, "%s is a read replica (of the stream '%s'): commands go to "
                     "the leader", cfg->data_dir, stream);
        else
            snprintf(err, errlen, "%s has an unreadable replica marker (%s/%s: %s): commands "
                     "go to the leader", cfg->data_dir, cfg->data_dir, REPLICA_MARKER,
                     strerror(-marked));
        return marked > 0 ? -EROFS : marked; /* a replica's log is read-only to commands */
    }
    char model[EF_PATH_MAX + 16];
    if (ef_path_join(path, sizeof path, cfg->data_dir, "log") ||
        ef_path_join(model, sizeof model, cfg->data_dir, "write")) {
        snprintf(err, errlen, "data directory path too long");
        return -ENAMETOOLONG;
    }
    if ((rc = check_dir("log directory", path, 1, err, errlen)) != 0)
        return rc;
    if ((rc = check_dir("write model directory", model, 1, err, errlen)) != 0)
        return rc;
    /* The model is closed again before the master forks (model.h: open after fork); its
     * catch-up or rebuild done here is not lost: the workers find it caught up. The log
     * stays open (master_log). */
    struct write_ctx ctx = { 0 };
    rc = open_both(cfg, &ctx, err, errlen);
    wm_close(ctx.wm);
    if (rc == 0) {
        log_close(master_log);
        master_log = ctx.log;
    } else {
        log_close(ctx.log);
    }
    return rc;
}

void write_preflight_end(void)
{
    log_close(master_log);
    master_log = NULL;
}

/* The command's stages into the program's shared metrics (server/metrics.h). */
static void observe_stage(enum write_stage stage, uint64_t ns)
{
    static const enum metrics_stage to_metrics[] = {
        [WRITE_STAGE_LOCK_WAIT] = METRICS_STAGE_LOCK_WAIT,
        [WRITE_STAGE_LOCKED] = METRICS_STAGE_LOCKED,
        [WRITE_STAGE_SYNC_WAIT] = METRICS_STAGE_SYNC_WAIT,
    };
    metrics_stage(to_metrics[stage], ns);
}

int write_worker_init(void **worker_ctx, const struct ef_config *cfg)
{
    char err[EF_PATH_MAX + 1024];
    write_preflight_end(); /* the copy inherited from the master */
    struct write_ctx *ctx = xcalloc(1, sizeof *ctx);
    ctx->idempotency_ttl_hours = cfg->idempotency_ttl_hours < 24 ? 24 : cfg->idempotency_ttl_hours;
    ctx->observe = observe_stage;
    if (open_both(cfg, ctx, err, sizeof err) < 0) {
        EFLOG_ERROR("%s", err);
        write_worker_fini(ctx);
        return -1;
    }
    char model[EF_PATH_MAX + 16], snaps[SNAPDIR_PATH_MAX];
    if (ef_path_join(model, sizeof model, cfg->data_dir, "write")) {
        EFLOG_ERROR("data directory path too long data=%s", cfg->data_dir);
        write_worker_fini(ctx);
        return -1;
    }
    if (wsnap_dir(model, snaps) == 0)
        ctx->snap_dir = xstrdup(snaps);
    if (wsnap_taker_start(ctx->wm, ctx->log, model, cfg->snapshot_every, cfg->snapshot_keep,
                          &ctx->snap) != 0) {
        write_worker_fini(ctx);
        return -1; /* logged */
    }
    *worker_ctx = ctx;
    return 0;
}

void write_worker_fini(void *worker_ctx)
{
    struct write_ctx *ctx = worker_ctx;
    if (!ctx)
        return;
    wsnap_taker_stop(ctx->snap); /* before the handles it uses */
    write_ctx_release(ctx);
    wm_close(ctx->wm);
    log_close(ctx->log);
    free(ctx->snap_dir);
    free(ctx);
}

uint64_t write_position(void *worker_ctx)
{
    const struct write_ctx *ctx = worker_ctx;
    return log_durable(ctx->log);
}

/* The answer of a deferred command, from the thread that ran its batch. */
static void answer_deferred(void *arg, const struct write_response *r)
{
    server_deferred_respond(arg, r->status, r->content_type, r->headers,
                            r->body.data ? r->body.data : "", r->body.len);
}

void write_handler(struct server_request *req, void *worker_ctx)
{
    struct write_request q = {
        .method = req->method,
        .path = req->path,
        .content_type = req->content_type,
        .body = req->body,
        .body_len = req->body_len,
        .if_match = server_header(req, "If-Match"),
        .idempotency_key = server_header(req, "Idempotency-Key"),
    };
    struct write_response r;
    struct write_exec *x = write_prepare(worker_ctx, &q, &r);
    server_set_route(req, r.route ? r.route : "POST other");
    if (x) {
        /* The thread goes back to accepting while the command waits for its batch and
         * the batch's fdatasync (execute.c, "the worker's queue"). */
        struct server_deferred *d = server_defer(req);
        if (d) {
            write_finish_async(x, answer_deferred, d);
            return;
        }
        write_finish(x, &r);
    }
    server_respond(req, r.status, r.content_type, r.headers, r.body.data ? r.body.data : "",
                   r.body.len);
    write_response_free(&r);
}
