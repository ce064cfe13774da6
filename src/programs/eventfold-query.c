/* eventfold-query: FastCGI query workers (read side). The process model is the server
 * module's; the handlers are src/query/query*.c. */
#include <config.h>

#include <stdio.h>

#include "query/query.h"
#include "server/server.h"
#include "util/cli.h"
#include "util/config.h"
#include "util/eflog.h"

int main(int argc, char **argv)
{
    const char *prog = "eventfold-query";
    eflog_init(prog, EF_INFO);
    struct ef_config cfg;
    ef_config_defaults(&cfg);
    const struct cli_spec spec = {
        .prog = prog,
        .synopsis = "--data DIR [--listen unix:PATH | HOST:PORT] [--workers N] [--config FILE]\n"
                    "Serves the queries of the read side over FastCGI (GET only).\n",
        .common = CLI_FASTCGI,
    };
    int first = 0, status = 2;
    if (cli_parse(&spec, argc, argv, &cfg, &first, &status) == CLI_EXIT)
        return status;
    if (first < argc)
        return cli_usage_error(prog, "unexpected argument '%s'", argv[first]);
    char err[EF_PATH_MAX + 1024]; /* a log error names a segment path and offset */
    if (query_preflight(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    const struct server_options opt = {
        .prog = prog,
        .cfg = &cfg,
        .threads = cfg.threads > 0 ? cfg.threads : 4,
        .max_body = 64 * 1024,
        .worker_init = query_worker_init,
        .worker_fini = query_worker_fini,
        .handler = query_handle,
        .position = query_position,
        .answer_position = query_position,
        .wait_position = query_wait_published,
        .housekeeping = query_housekeeping,
        .park_headers = query_park_headers,
    };
    return server_run(&opt);
}
