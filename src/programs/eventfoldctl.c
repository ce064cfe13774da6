/* eventfoldctl: the operator tool. Parses the common flags, then dispatches COMMAND to
 * its implementation (ctl_*.c) through the command tables. */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "programs/ctl.h"
#include "util/cli.h"
#include "util/eflog.h"
#include "util/sbuf.h"

/* Every command table, one line each. */
static const struct ctl_command *const tables[] = {
    ctl_log_commands,
    ctl_read_commands,
    NULL,
};

static const struct ctl_command *find_command(const char *name)
{
    for (size_t t = 0; tables[t]; t++)
        for (const struct ctl_command *c = tables[t]; c->name; c++)
            if (strcmp(c->name, name) == 0)
                return c;
    return NULL;
}

/* The --help text after "Usage: eventfoldctl ", built from the tables. */
static void build_synopsis(struct sbuf *sb)
{
    sbuf_puts(sb, "[--data DIR] [--config FILE] [--log-level L] COMMAND [ARGS]\nCommands:\n");
    for (size_t t = 0; tables[t]; t++)
        for (const struct ctl_command *c = tables[t]; c->name; c++)
            sbuf_printf(sb, "  %-32s %s\n", c->usage, c->help);
}

int main(int argc, char **argv)
{
    const char *prog = "eventfoldctl";
    eflog_init(prog, EF_WARN);
    struct ef_config cfg;
    ef_config_defaults(&cfg);
    struct sbuf synopsis = SBUF_INIT;
    build_synopsis(&synopsis);
    const struct cli_spec spec = {
        .prog = prog, .synopsis = sbuf_str(&synopsis), .common = CLI_DATA, .stop_at_operand = 1,
    };
    int first = 0, status = 2;
    if (cli_parse(&spec, argc, argv, &cfg, &first, &status) == CLI_EXIT)
        goto out;
    if (first >= argc) {
        status = cli_usage_error(prog, "missing COMMAND (try --help)");
        goto out;
    }
    const struct ctl_command *cmd = find_command(argv[first]);
    if (!cmd) {
        status = cli_usage_error(prog, "unknown command '%s' (try --help)", argv[first]);
        goto out;
    }
    if ((status = cli_check_data_dir(prog, cfg.data_dir)) != 0)
        goto out;
    struct ctl_ctx ctx = { .prog = prog, .cfg = &cfg };
    status = cmd->run(&ctx, argc - first, argv + first);
out:
    sbuf_free(&synopsis);
    return status;
}
