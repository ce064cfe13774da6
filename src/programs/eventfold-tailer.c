/* eventfold-tailer: folds the log into the read model (src/fold/tailer.c does the work).
 * Exit status: 0 after SIGTERM/SIGINT or --once, 1 on an error (logged: damage names
 * segment and offset), 2 on bad usage. */
#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "fold/tailer.h"
#include "util/cli.h"
#include "util/config.h"
#include "util/eflog.h"

enum { OPT_ONCE = 256 };

static int on_option(int id, const char *arg, void *ctx, char *err, size_t errlen)
{
    (void)arg, (void)err, (void)errlen;
    if (id == OPT_ONCE)
        *(int *)ctx = 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *prog = "eventfold-tailer";
    eflog_init(prog, EF_INFO);
    struct ef_config cfg;
    ef_config_defaults(&cfg);
    int once = 0;
    static const struct cli_option options[] = { { "once", 0, OPT_ONCE }, { NULL, 0, 0 } };
    const struct cli_spec spec = {
        .prog = prog,
        .synopsis = "--data DIR [--config FILE] [--log-level L] [--once]\n"
                    "Folds the event log into the read model and takes snapshots.\n"
                    "  --once   catch up to the durable head, then exit 0\n",
        .common = CLI_DATA,
        .options = options,
        .on_option = on_option,
        .ctx = &once,
    };
    int first = 0, status = 2;
    if (cli_parse(&spec, argc, argv, &cfg, &first, &status) == CLI_EXIT)
        return status;
    if (first < argc)
        return cli_usage_error(prog, "unexpected argument '%s'", argv[first]);
    if (cli_check_data_dir(prog, cfg.data_dir) != 0)
        return 1;
    volatile sig_atomic_t *stop_requested = cli_stop_signals(prog);
    if (!stop_requested)
        return 1;
    struct tailer_options opt = {
        .data_dir = cfg.data_dir,
        .segment_bytes = cfg.segment_bytes,
        .map_bytes = cfg.read_map_bytes,
        .once = once,
        .snapshot_every = cfg.snapshot_every,
        .snapshot_keep = cfg.snapshot_keep,
        .stop = stop_requested,
    };
    /* A failure was logged by the tailer with its cause, once. */
    return tailer_run(&opt) ? 1 : 0;
}
