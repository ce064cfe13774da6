/* eventfold-mirror: makes a data directory a read replica fed from NATS JetStream
 * (src/mirror/mirror.c does the work). Exit status: 0 after SIGTERM/SIGINT, 1 on an error
 * (one line: a gap or a disagreement names the position), 2 on bad usage. */
#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <nats/nats.h>

#include "mirror/mirror.h"
#include "util/cli.h"
#include "util/config.h"
#include "util/ef_error.h"
#include "util/eflog.h"

int main(int argc, char **argv)
{
    const char *prog = "eventfold-mirror";
    eflog_init(prog, EF_INFO);
    struct ef_config cfg;
    ef_config_defaults(&cfg);
    const struct cli_spec spec = {
        .prog = prog,
        .synopsis = "--data DIR [--config FILE] [--log-level L]\n"
                    "Makes DIR a read replica: copies the JetStream stream nats_stream (servers\n"
                    "nats_url) into DIR's log; run eventfold-tailer and eventfold-query on DIR.\n",
        .common = CLI_DATA,
    };
    int first = 0, status = 2;
    if (cli_parse(&spec, argc, argv, &cfg, &first, &status) == CLI_EXIT)
        return status;
    if (first < argc)
        return cli_usage_error(prog, "unexpected argument '%s'", argv[first]);
    volatile sig_atomic_t *stop_requested = cli_stop_signals(prog);
    if (!stop_requested)
        return 1;
    char err[EF_PATH_MAX + 1024];
    struct mirror_options opt = { .cfg = &cfg, .stop = stop_requested };
    int rc = mirror_run(&opt, err, sizeof err);
    nats_Close();
    if (rc) {
        fprintf(stderr, "%s: %s\n", prog, err[0] ? err : ef_strerror(rc));
        return 1;
    }
    return 0;
}
