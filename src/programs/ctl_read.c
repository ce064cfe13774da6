/* eventfoldctl read-side commands: status, snapshot (of the write model too), rebuild, dlq. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "programs/ctl.h"
#include "readmodel/rdir.h"
#include "fold/rebuild.h"
#include "readmodel/rmodel.h"
#include "query/rstatus.h"
#include "readmodel/rmodel_dlq.h"
#include "readmodel/rmodel_env.h"
#include "readmodel/rsnap.h"
#include "util/cli.h"
#include "util/clock.h"
#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/path.h"
#include "write/wsnap.h"

/* The handles a read command needs: the log (never appended to) and the current model. */
struct read_handles {
    struct log *lg;
    struct rmodel_env *env;
};

static void close_handles(struct read_handles *h)
{
    rmodel_env_close(h->env);
    log_close(h->lg);
}

static int open_handles(struct ctl_ctx *ctx, int rdonly_model, struct read_handles *h)
{
    memset(h, 0, sizeof *h);
    char dir[EF_PATH_MAX], model[RDIR_PATH_MAX];
    int rc = ctl_log_dir(ctx, dir);
    if (rc)
        return rc;
    struct log_options lo = { .segment_bytes = ctx->cfg->segment_bytes };
    if (log_open(dir, &lo, &h->lg) != 0) {
        fprintf(stderr, "%s: cannot open the log: %s\n", ctx->prog, log_last_error(NULL));
        return 1;
    }
    struct rmodel_options ro = { ctx->cfg->read_map_bytes, rdonly_model };
    rc = rdir_prepare(ctx->cfg->data_dir);
    if (rc == 0)
        rc = rdir_path(model, sizeof model, ctx->cfg->data_dir, "current");
    if (rc == 0)
        rc = rmodel_env_open(model, &ro, &h->env);
    if (rc && rdonly_model) { /* never initialized: create it empty, then read it */
        struct rmodel_options rw = { ctx->cfg->read_map_bytes, 0 };
        if (rmodel_env_open(model, &rw, &h->env) == 0) {
            rmodel_env_close(h->env);
            h->env = NULL;
            rc = rmodel_env_open(model, &ro, &h->env);
        }
    }
    if (rc) {
        fprintf(stderr, "%s: cannot open the read model: %s\n", ctx->prog, ef_strerror(rc));
        close_handles(h);
        return 1;
    }
    return 0;
}

static int ctl_status(struct ctl_ctx *ctx, int argc, char **argv)
{
    if (argc != 1)
        return cli_usage_error(ctx->prog, "status takes no arguments");
    struct read_handles h;
    int rc = open_handles(ctx, 1, &h);
    if (rc)
        return rc;
    struct rmodel_txn *t = NULL;
    struct rstatus st;
    struct sbuf out = SBUF_INIT;
    rc = rmodel_txn_begin(h.env, 1, &t);
    if (rc == 0)
        rc = rstatus_collect(h.lg, t, ctx->cfg->data_dir, &st);
    rmodel_txn_abort(t);
    if (rc == 0)
        rc = rstatus_render(&st, ctx->cfg->data_dir, &out);
    if (rc == 0)
        printf("%s\n", sbuf_str(&out));
    else
        fprintf(stderr, "%s: status: %s\n", ctx->prog, ef_strerror(rc));
    sbuf_free(&out);
    close_handles(&h);
    return rc ? 1 : 0;
}

/* The write model's snapshot (wsnap.h), next to the read model's: 0 taken, 1 skipped (no
 * write model, or none validated in this boot: a note on stderr), -1 failed (a message). */
static int write_snapshot(struct ctl_ctx *ctx, struct log *lg, struct snapshot_info *info)
{
    char model[EF_PATH_MAX + 16];
    if (ef_path_join(model, sizeof model, ctx->cfg->data_dir, "write")) {
        fprintf(stderr, "%s: data directory path too long\n", ctx->prog);
        return -1;
    }
    int rc = wsnap_take_now(model, ctx->cfg->write_map_bytes, lg, ctx->cfg->snapshot_keep, info);
    if (rc == 0 || rc == WSNAP_ENONE)
        return rc ? 1 : 0;
    if (rc == WSNAP_EBOOT || rc == WSNAP_EEMPTY) {
        fprintf(stderr, "%s: write-model snapshot skipped: %s\n", ctx->prog, ef_strerror(rc));
        return 1;
    }
    fprintf(stderr, "%s: write-model snapshot failed: %s\n", ctx->prog, ef_strerror(rc));
    return -1;
}

static int ctl_snapshot(struct ctl_ctx *ctx, int argc, char **argv)
{
    if (argc != 1)
        return cli_usage_error(ctx->prog, "snapshot takes no arguments");
    struct read_handles h;
    int rc = open_handles(ctx, 1, &h);
    if (rc)
        return rc;
    struct snapshot_info info, winfo;
    rc = rsnap_take(ctx->cfg->data_dir, h.env, ctx->cfg->snapshot_keep, &info);
    if (rc) {
        fprintf(stderr, "%s: snapshot failed: %s\n", ctx->prog, ef_strerror(rc));
        close_handles(&h);
        return 1;
    }
    int wrc = write_snapshot(ctx, h.lg, &winfo);
    printf("{\"position\":%" PRIu64 ",\"bytes\":%" PRIu64, info.position, info.bytes);
    if (wrc == 0)
        printf(",\"write_position\":%" PRIu64 ",\"write_bytes\":%" PRIu64, winfo.position,
               winfo.bytes);
    printf("}\n");
    close_handles(&h);
    return wrc < 0 ? 1 : 0;
}

/* Progress lines on a terminal (events, rate, time left), at most two a second, each
 * overwriting the one before. */
struct rebuild_display {
    uint64_t last_ns;
};

static void show_progress(const struct rebuild_progress *p, void *arg)
{
    struct rebuild_display *d = arg;
    uint64_t now = ef_mono_ns();
    if (now - d->last_ns < 500000000u)
        return;
    d->last_ns = now;
    double rate = p->seconds > 0 ? (double)(p->position - p->from) / p->seconds : 0;
    double left = rate > 0 && p->head > p->position ? (double)(p->head - p->position) / rate : 0;
    fprintf(stderr, "\rrebuild: %" PRIu64 "/%" PRIu64 " events, %.0f events/s, %.0f s left   ",
            p->position, p->head, rate, left);
}

static int ctl_rebuild(struct ctl_ctx *ctx, int argc, char **argv)
{
    int scratch = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--from-scratch") == 0)
            scratch = 1;
        else
            return cli_usage_error(ctx->prog, "rebuild: unknown argument '%s'", argv[i]);
    }
    struct rebuild_options opt = {
        .data_dir = ctx->cfg->data_dir,
        .map_bytes = ctx->cfg->read_map_bytes,
        .segment_bytes = ctx->cfg->segment_bytes,
        .from_scratch = scratch,
    };
    int tty = isatty(STDERR_FILENO);
    struct rebuild_display display = { 0 };
    if (tty) {
        opt.progress = show_progress;
        opt.progress_arg = &display;
    }
    struct rebuild_result res;
    int rc = rebuild_run(&opt, &res);
    if (tty && rc == 0)
        fprintf(stderr, "\rrebuild: done at position %" PRIu64 " in %.1f s%30s\n", res.position,
                res.seconds, "");
    if (rc) {
        fprintf(stderr, "%s: rebuild failed: %s\n", ctx->prog, ef_strerror(rc));
        return 1;
    }
    printf("{\"from_position\":%" PRIu64 ",\"position\":%" PRIu64 ",\"seconds\":%.3f}\n",
           res.from_position, res.position, res.seconds);
    return 0;
}

static int dlq_list(struct ctl_ctx *ctx, struct read_handles *h)
{
    struct rmodel_txn *t;
    struct sbuf out = SBUF_INIT;
    int rc = rmodel_txn_begin(h->env, 1, &t);
    if (rc == 0) {
        rc = rmodel_dlq_render(t, &out);
        rmodel_txn_abort(t);
    }
    if (rc == 0)
        printf("%s\n", sbuf_str(&out));
    else
        fprintf(stderr, "%s: dlq list: %s\n", ctx->prog, ef_strerror(rc));
    sbuf_free(&out);
    return rc ? 1 : 0;
}

/* Reads the dead letter's record back from the log and applies it again. */
static int dlq_retry(struct ctl_ctx *ctx, struct read_handles *h, uint64_t id)
{
    struct rmodel_txn *t;
    struct log_reader *rd = NULL;
    uint64_t pos, seg, off;
    int rc = rmodel_txn_begin(h->env, 0, &t);
    if (rc == 0)
        rc = rmodel_dlq_get(t, id, &pos, &seg, &off);
    if (rc == 0)
        rc = log_reader_open(h->lg, pos, &rd);
    struct log_record rec;
    if (rc == 0 && (seg || off))
        rc = log_reader_seek(rd, seg, off);
    if (rc == 0) {
        rc = log_reader_next(rd, log_durable(h->lg), &rec);
        rc = rc == 1 && rec.position == pos ? 0 : rc < 0 ? rc : RMODEL_ENOTFOUND;
    }
    int applied = 0;
    if (rc == 0) {
        rc = rmodel_dlq_retry(t, id, &rec);
        applied = rc == 0;
        if (rc == 1)
            rc = 0;
    }
    log_reader_close(rd);
    if (rc == 0) {
        rc = rmodel_txn_commit(t);
    } else {
        rmodel_txn_abort(t);
    }
    if (rc) {
        /* The log keeps where it failed beside its code. */
        int from_log = ef_err_module_of(rc) == EF_ERR_LOG;
        fprintf(stderr, "%s: dlq retry %" PRIu64 ": %s%s%s\n", ctx->prog, id, ef_strerror(rc),
                from_log ? ": " : "", from_log ? log_last_error(h->lg) : "");
        return 1;
    }
    printf("{\"id\":%" PRIu64 ",\"position\":%" PRIu64 ",\"applied\":%s}\n", id, pos,
           applied ? "true" : "false");
    return applied ? 0 : 1;
}

static int dlq_drop(struct ctl_ctx *ctx, struct read_handles *h, uint64_t id)
{
    struct rmodel_txn *t;
    int rc = rmodel_txn_begin(h->env, 0, &t);
    if (rc == 0) {
        rc = rmodel_dlq_drop(t, id);
        if (rc == 0)
            rc = rmodel_txn_commit(t);
        else
            rmodel_txn_abort(t);
    }
    if (rc) {
        fprintf(stderr, "%s: dlq drop %" PRIu64 ": %s\n", ctx->prog, id, ef_strerror(rc));
        return 1;
    }
    printf("{\"id\":%" PRIu64 ",\"dropped\":true}\n", id);
    return 0;
}

static int ctl_dlq(struct ctl_ctx *ctx, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(ctx->prog, "dlq: missing subcommand (list, retry ID or drop ID)");
    const char *sub = argv[1];
    int list = strcmp(sub, "list") == 0;
    int retry = strcmp(sub, "retry") == 0;
    int drop = strcmp(sub, "drop") == 0;
    if (!list && !retry && !drop)
        return cli_usage_error(ctx->prog, "dlq: unknown subcommand '%s' (list, retry ID or drop ID)", sub);
    if (list && argc > 2)
        return cli_usage_error(ctx->prog, "dlq list: unexpected argument '%s'", argv[2]);
    if (!list && argc < 3)
        return cli_usage_error(ctx->prog, "dlq %s: missing ID", sub);
    if (!list && argc > 3)
        return cli_usage_error(ctx->prog, "dlq %s: unexpected argument '%s'", sub, argv[3]);
    uint64_t id = 0;
    if (!list) {
        char *end;
        errno = 0;
        id = strtoull(argv[2], &end, 10);
        if (*argv[2] < '0' || *argv[2] > '9' || *end || id == 0 || errno)
            return cli_usage_error(ctx->prog, "dlq %s: ID must be a positive integer, got '%s'", sub,
                                   argv[2]);
    }
    struct read_handles h;
    int rc = open_handles(ctx, list, &h);
    if (rc)
        return rc;
    rc = list ? dlq_list(ctx, &h) : retry ? dlq_retry(ctx, &h, id) : dlq_drop(ctx, &h, id);
    close_handles(&h);
    return rc;
}

const struct ctl_command ctl_read_commands[] = {
    { "status", "status", "read model and log status (JSON, as GET /api/status)", ctl_status },
    { "snapshot", "snapshot", "take a read-model and a write-model snapshot now", ctl_snapshot },
    { "rebuild", "rebuild [--from-scratch]", "rebuild the read model (newest valid snapshot, or position 1)", ctl_rebuild },
    { "dlq", "dlq list | retry ID | drop ID", "list, re-apply or discard dead letters", ctl_dlq },
    { NULL, NULL, NULL, NULL },
};
