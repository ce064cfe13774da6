#include <config.h>

#include "programs/ctl.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "readmodel/rmodel_render.h"
#include "util/cli.h"
#include "util/path.h"
#include "util/sbuf.h"

int ctl_log_dir(struct ctl_ctx *ctx, char *out)
{
    if (ef_path_join(out, EF_PATH_MAX, ctx->cfg->data_dir, "log"))
        return cli_usage_error(ctx->prog, "data directory path too long");
    return 0;
}

/* Read-only: verify and dump must work while the services run and must never repair.
 * Salvage: damage in the newest segment ends the log there rather than failing the open,
 * so that dump still gives every record before it (and verify reports the damage itself). */
static int open_log(struct ctl_ctx *ctx, struct log **lg)
{
    char dir[EF_PATH_MAX];
    int st = ctl_log_dir(ctx, dir);
    if (st)
        return st;
    struct log_options opt = { .read_only = 1, .salvage = 1 };
    int err = log_open(dir, &opt, lg);
    if (err) {
        fprintf(stderr, "%s: %s\n", ctx->prog, log_last_error(NULL));
        return 1;
    }
    return 0;
}

int ctl_verify(struct ctl_ctx *ctx, int argc, char **argv)
{
    (void)argv;
    if (argc > 1)
        return cli_usage_error(ctx->prog, "verify takes no arguments");
    struct log *lg = NULL;
    int st = open_log(ctx, &lg);
    if (st)
        return st;
    uint64_t records = 0;
    struct log_stats stats = { 0 };
    int err = log_verify(lg, &records);
    int serr = log_stats(lg, &stats);
    struct sbuf sb = SBUF_INIT;
    sbuf_puts(&sb, "{");
    sbuf_json_key(&sb, "records");
    sbuf_json_u64(&sb, records);
    sbuf_json_key(&sb, "segments");
    sbuf_json_u64(&sb, serr ? 0 : stats.segments);
    sbuf_json_key(&sb, "status");
    sbuf_json_cstr(&sb, err == 0 ? "ok" : err == LOG_ECORRUPT || err == LOG_ESEQUENCE ? "corrupt" : "error");
    if (err) {
        sbuf_json_key(&sb, "error");
        sbuf_json_cstr(&sb, log_last_error(lg));
        fprintf(stderr, "%s: %s\n", ctx->prog, log_last_error(lg));
    }
    sbuf_puts(&sb, "}\n");
    fputs(sbuf_str(&sb), stdout);
    sbuf_free(&sb);
    log_close(lg);
    return err ? 1 : 0;
}

static int parse_count(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int dump_args(struct ctl_ctx *ctx, int argc, char **argv, uint64_t *from, uint64_t *limit)
{
    static const struct option opts[] = {
        { "from", required_argument, NULL, 'f' },
        { "limit", required_argument, NULL, 'l' },
        { NULL, 0, NULL, 0 },
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
        if (c == 'f' && parse_count(optarg, from) == 0 && *from > 0)
            continue;
        if (c == 'l' && parse_count(optarg, limit) == 0)
            continue;
        if (c == 'f' || c == 'l')
            return cli_usage_error(ctx->prog, "dump: --%s needs a %s number, got '%s'",
                                   c == 'f' ? "from" : "limit", c == 'f' ? "positive" : "non-negative",
                                   optarg);
        if (c == ':') /* "+:" makes getopt tell a missing value from an unknown option */
            return cli_usage_error(ctx->prog, "dump: %s needs a value", argv[optind - 1]);
        return cli_usage_error(ctx->prog, "dump: unknown option '%s'", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage_error(ctx->prog, "dump: unexpected argument '%s'", argv[optind]);
    return 0;
}

int ctl_dump(struct ctl_ctx *ctx, int argc, char **argv)
{
    uint64_t from = 1, limit = UINT64_MAX;
    int st = dump_args(ctx, argc, argv, &from, &limit);
    if (st)
        return st;
    struct log *lg = NULL;
    if ((st = open_log(ctx, &lg)) != 0)
        return st;
    struct log_reader *rd = NULL;
    int err = log_reader_open(lg, from, &rd);
    struct log_record rec;
    struct sbuf sb = SBUF_INIT;
    uint64_t n = 0;
    while (err == 0 && n < limit && (err = log_reader_next(rd, log_head(lg), &rec)) == 1) {
        sbuf_reset(&sb);
        rmodel_render_event_meta(&rec, &sb);
        sbuf_putc(&sb, '\n');
        if (fwrite(sb.data, 1, sb.len, stdout) != sb.len)
            break;
        n++;
        err = 0;
    }
    if (err < 0)
        fprintf(stderr, "%s: %s\n", ctx->prog, log_last_error(lg));
    /* Every record up to the damage was given: say why there are no more. */
    int damaged = err == 0 && n < limit && log_damage(lg) != NULL;
    if (damaged)
        fprintf(stderr, "%s: the log ends in damage after position %" PRIu64 ": %s\n", ctx->prog,
                log_head(lg), log_damage(lg));
    int werr = fflush(stdout) != 0 || ferror(stdout);
    if (werr && err >= 0)
        fprintf(stderr, "%s: cannot write to stdout\n", ctx->prog);
    sbuf_free(&sb);
    log_reader_close(rd);
    log_close(lg);
    return err < 0 || damaged || werr ? 1 : 0;
}

const struct ctl_command ctl_log_commands[] = {
    { "verify", "verify", "check every record's checksum and the sequence (exit 1 on damage)", ctl_verify },
    { "dump", "dump [--from POS] [--limit N]", "events as JSON lines", ctl_dump },
    { NULL, NULL, NULL, NULL },
};
