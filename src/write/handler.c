#include <config.h>

#include "write/handler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/eflog.h"
#include "util/xalloc.h"
#include "write/command.h"
#include "write/replay.h"
#include "write/wsnap.h"

/* One directory: it must be a directory we may write into (EROFS on a read-only mount,
 * even for root). missing_ok: an absent one is fine (created later). */
static int check_dir(const char *what, const char *path, int missing_ok, char *err,
                     size_t errlen)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        if (errno == ENOENT && missing_ok)
            return 0;
        snprintf(err, errlen, "%s '%s': %s", what, path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s '%s': %s", what, path, strerror(ENOTDIR));
        return -1;
    }
    if (access(path, W_OK | X_OK) < 0) {
        snprintf(err, errlen, "%s '%s': %s", what, path, strerror(errno));
        return -1;
    }
    return 0;
}

int write_preflight(const struct ef_config *cfg, char *err, size_t errlen)
{
    char path[EF_PATH_MAX + 16];
    if (check_dir("data directory", cfg->data_dir, 0, err, errlen) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/log", cfg->data_dir);
    if (check_dir("log directory", path, 1, err, errlen) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/write", cfg->data_dir);
    return check_dir("write model directory", path, 1, err, errlen);
}

int write_worker_init(void **worker_ctx, const struct ef_config *cfg)
{
    char path[EF_PATH_MAX + 16];
    struct write_ctx *ctx = xcalloc(1, sizeof *ctx);
    struct log_options lo = { .segment_bytes = cfg->segment_bytes, .read_only = 0 };
    ctx->idempotency_ttl_hours = cfg->idempotency_ttl_hours < 24 ? 24 : cfg->idempotency_ttl_hours;
    snprintf(path, sizeof path, "%s/log", cfg->data_dir);
    int rc = log_open(path, &lo, &ctx->log);
    if (rc) {
        LOG_ERROR("cannot open the log dir=%s err=\"%s\"", path, log_last_error(NULL));
        goto fail;
    }
    snprintf(path, sizeof path, "%s/write", cfg->data_dir);
    if (write_model_open(path, cfg->write_map_bytes, ctx->log, &ctx->wm) != 0)
        goto fail; /* logged */
    if (wsnap_taker_start(ctx->wm, ctx->log, path, cfg->snapshot_every, cfg->snapshot_keep,
                          &ctx->snap) != 0)
        goto fail; /* logged */
    *worker_ctx = ctx;
    return 0;
fail:
    write_worker_fini(ctx);
    return -1;
}

void write_worker_fini(void *worker_ctx)
{
    struct write_ctx *ctx = worker_ctx;
    if (!ctx)
        return;
    wsnap_taker_stop(ctx->snap); /* before the handles it uses */
    wm_close(ctx->wm);
    log_close(ctx->log);
    free(ctx);
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
    write_execute(worker_ctx, &q, &r);
    server_set_route(req, r.route ? r.route : "POST other");
    server_respond(req, r.status, r.content_type, r.headers, r.body.data ? r.body.data : "",
                   r.body.len);
    write_response_free(&r);
}
