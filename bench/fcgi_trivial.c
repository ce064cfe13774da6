/* fcgi_trivial: the benchmark ceiling.
 *
 * A FastCGI responder with the very process model of eventfold-command and
 * eventfold-query (server_run: the same socket handling, pre-forked workers, request
 * threads, body reading, answer path and metrics), whose handler answers every request
 * with a fixed small JSON body. Measured behind the same nginx, the difference between
 * it and the real programs is the cost of eventfold's own logic.
 *
 *   fcgi_trivial [--listen unix:PATH|HOST:PORT] [--workers N] [--threads N]
 */
#include <config.h>

#include "server/server.h"
#include "util/cli.h"
#include "util/config.h"
#include "util/eflog.h"

#include <stdio.h>

#define OPT_THREADS 256

static const char trivial_body[] = "{\"ok\":true}";

static void trivial_handler(struct server_request *req, void *worker_ctx)
{
    (void)worker_ctx;
    server_set_route(req, "trivial");
    server_respond(req, 200, "application/json", NULL, trivial_body, sizeof trivial_body - 1);
}

static int on_option(int id, const char *arg, void *ctx, char *err, size_t errlen)
{
    struct ef_config *cfg = ctx;
    if (id == OPT_THREADS)
        return ef_config_set(cfg, "threads", arg, err, errlen);
    snprintf(err, errlen, "unexpected option");
    return -1;
}

int main(int argc, char **argv)
{
    struct ef_config cfg;
    ef_config_defaults(&cfg);
    eflog_init("fcgi_trivial", EF_INFO);
    static const struct cli_option options[] = { { "threads", 1, OPT_THREADS }, { NULL, 0, 0 } };
    struct cli_spec spec = {
        .prog = "fcgi_trivial",
        .synopsis = "[--listen unix:PATH|HOST:PORT] [--workers N] [--threads N]",
        .common = CLI_LISTEN | CLI_WORKERS,
        .options = options,
        .on_option = on_option,
        .ctx = &cfg,
    };
    int first, status;
    if (cli_parse(&spec, argc, argv, &cfg, &first, &status) == CLI_EXIT)
        return status;
    if (first < argc)
        return cli_usage_error(spec.prog, "unexpected argument '%s'", argv[first]);
    struct server_options opt = {
        .prog = "fcgi_trivial",
        .cfg = &cfg,
        .threads = cfg.threads,
        .max_body = 64 * 1024,
        .handler = trivial_handler,
    };
    return server_run(&opt);
}
