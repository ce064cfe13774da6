/* eventfold-command: the FastCGI command workers (API.md sections 2-4).
 *
 * Thin: flags and config (util/cli.h), then the server's process model with the write
 * side's handler. Each worker runs command_threads request threads: every decision is
 * made inside the log's cross-process append lock (held for well under a millisecond),
 * and the long part of a command is the wait for its fdatasync after the lock, which the
 * log's group commit shares among all commands in flight in every worker.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>

#include "domain/command.h"
#include "server/server.h"
#include "util/cli.h"
#include "util/config.h"
#include "util/eflog.h"
#include "util/path.h"
#include "write/handler.h"

int main(int argc, char **argv)
{
    static const struct cli_spec spec = {
        .prog = "eventfold-command",
        .synopsis = "--data DIR [--listen unix:PATH | HOST:PORT] [--workers N] [--config FILE]",
        .common = CLI_FASTCGI,
    };
    struct ef_config cfg;
    int first, status;
    eflog_init("eventfold-command", EF_INFO);
    ef_config_defaults(&cfg);
    if (cli_parse(&spec, argc, argv, &cfg, &first, &status) == CLI_EXIT)
        return status;
    if (first < argc)
        return cli_usage_error(spec.prog, "unexpected argument '%s'", argv[first]);
    char err[EF_PATH_MAX + 1024]; /* a log error names a segment path and offset */
    if (write_preflight(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", spec.prog, err);
        return 1;
    }
    /* The query program renders the command workers' request counters and latencies on
     * its /metrics from this file (server_metrics_render_files). */
    char metrics[EF_PATH_MAX + 32];
    if (ef_path_join(metrics, sizeof metrics, cfg.data_dir, "command.metrics")) {
        fprintf(stderr, "%s: data directory path too long\n", spec.prog);
        return 1;
    }
    struct server_options opt = {
        .prog = spec.prog,
        .cfg = &cfg,
        .threads = cfg.command_threads,
        .max_body = CMD_BODY_MAX,
        .worker_init = write_worker_init,
        .worker_fini = write_worker_fini,
        .handler = write_handler,
        .answer_position = write_position,
        .metrics_file = metrics,
        .close_at_once = 1, /* threads wait for fdatasync: do not also wait for nginx */
    };
    status = server_run(&opt);
    write_preflight_end();
    return status;
}
