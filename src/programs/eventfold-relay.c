/* eventfold-relay: publishes the durable log to one sink (src/relay/relay.c does the work).
 * Exit status: 0 after SIGTERM/SIGINT, 1 on an error (one line: another relay running, the
 * destination disagrees with the log naming the position, bad sink configuration), 2 on
 * bad usage (an unknown or missing --sink). */
#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "relay/relay.h"
#include "relay/sink.h"
#include "util/cli.h"
#include "util/config.h"
#include "util/ef_error.h"
#include "util/eflog.h"

enum { OPT_SINK = 256 };

/* The sinks this build has: one row per engine. */
static const struct relay_sink_ops *const sinks[] = {
    &relay_sink_nats,
    &relay_sink_kafka,
};

static void sink_names(char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof sinks / sizeof sinks[0] && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? ", " : "", sinks[i]->name);
}

static int on_option(int id, const char *arg, void *ctx, char *err, size_t errlen)
{
    const struct relay_sink_ops **sink = ctx;
    if (id != OPT_SINK)
        return 0;
    for (size_t i = 0; i < sizeof sinks / sizeof sinks[0]; i++)
        if (strcmp(arg, sinks[i]->name) == 0) {
            *sink = sinks[i];
            return 0;
        }
    char names[128];
    sink_names(names, sizeof names);
    snprintf(err, errlen, "unknown sink '%s' (this build has: %s)", arg, names);
    return -1;
}

int main(int argc, char **argv)
{
    const char *prog = "eventfold-relay";
    eflog_init(prog, EF_INFO);
    struct ef_config cfg;
    ef_config_defaults(&cfg);
    const struct relay_sink_ops *sink = NULL;
    static const struct cli_option options[] = { { "sink", 1, OPT_SINK }, { NULL, 0, 0 } };
    const struct cli_spec spec = {
        .prog = prog,
        .synopsis = "--data DIR --sink nats|kafka [--config FILE] [--log-level L]\n"
                    "Publishes every durable event of the log, in order, exactly once, to a sink.\n"
                    "  --sink nats    the JetStream stream nats_stream on nats_url (stream\n"
                    "                 sequence = log position), created if absent\n"
                    "  --sink kafka   the topic kafka_topic on kafka_brokers\n",
        .common = CLI_DATA,
        .options = options,
        .on_option = on_option,
        .ctx = &sink,
    };
    int first = 0, status = 2;
    if (cli_parse(&spec, argc, argv, &cfg, &first, &status) == CLI_EXIT)
        return status;
    if (first < argc)
        return cli_usage_error(prog, "unexpected argument '%s'", argv[first]);
    if (!sink)
        return cli_usage_error(prog, "--sink is required (nats or kafka)");
    volatile sig_atomic_t *stop_requested = cli_stop_signals(prog);
    if (!stop_requested)
        return 1;
    const struct relay_options opt = {
        .data_dir = cfg.data_dir,
        .cfg = &cfg,
        .sink = sink,
        .stop = stop_requested,
    };
    char err[1024];
    int rc = relay_run(&opt, err, sizeof err);
    if (rc) {
        fprintf(stderr, "%s: %s\n", prog, err[0] ? err : ef_strerror(rc));
        return 1;
    }
    return 0;
}
