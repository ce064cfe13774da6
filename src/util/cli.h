/* cli: the command line every eventfold program shares.
 *
 * Common flags: --data DIR, --listen SPEC, --workers N, --config FILE, --log-level L,
 * --help, --version (a program picks which of the first four it takes). Program flags
 * (--once, --from ...) are declared with struct cli_option and handed to a callback.
 *
 * Order of sources: built-in defaults, then the config file (--config FILE, which must
 * exist; without it the default EF_SYSCONFDIR/eventfold/eventfold.conf, only if that
 * exists), then the flags, whatever their position on the command line. All flags go
 * through ef_config_set(), so a flag is validated exactly like the same key in the file.
 *
 * Guarantees: on bad usage (unknown flag, missing argument, bad value, bad config file)
 * exactly one line "PROG: CAUSE" goes to stderr and the caller is told to exit with
 * status 2; --help writes the usage to stdout and --version writes
 * "PROG (eventfold) VERSION", both then exit 0. On success the final log level is applied
 * with eflog_set_level().
 *
 * Caveat: uses getopt_long(), so it is not reentrant (resets optind itself).
 */
#ifndef EF_CLI_H
#define EF_CLI_H

#include <signal.h>

#include "util/config.h"

/* Which common flags a program accepts (--config, --log-level, --help, --version
 * are always accepted). */
enum {
    CLI_DATA = 1 << 0,
    CLI_LISTEN = 1 << 1,
    CLI_WORKERS = 1 << 2,
    CLI_FASTCGI = CLI_DATA | CLI_LISTEN | CLI_WORKERS,
};

/* A program-specific long option; `has_arg` is 0 or 1. `id` is what the callback gets
 * (use values >= 256 so they never clash with short options). */
struct cli_option {
    const char *name;
    int has_arg;
    int id;
};

/* Called for each program option, after the config file and the common flags are
 * applied, in command-line order. Returns 0, or -1 with a one-line cause in err (the
 * program then exits 2). */
typedef int (*cli_option_fn)(int id, const char *arg, void *ctx, char *err, size_t errlen);

struct cli_spec {
    const char *prog;          /* "eventfold-command"; also the log prefix */
    const char *synopsis;      /* usage text after "Usage: PROG ", may span lines */
    unsigned common;           /* CLI_* flags accepted */
    const struct cli_option *options; /* NULL-name-terminated array, or NULL */
    cli_option_fn on_option;   /* required when options is non-NULL */
    void *ctx;                 /* passed to on_option */
    int stop_at_operand;       /* 1: stop at the first operand (eventfoldctl COMMAND ...) */
    const char *default_config; /* NULL: EF_SYSCONFDIR "/eventfold/eventfold.conf" */
};

enum cli_result { CLI_RUN = 0, CLI_EXIT = 1 };

/* Parses argv into cfg (which the caller fills with ef_config_defaults() first).
 * Returns CLI_RUN with *first_operand = index of the first non-option argument, or
 * CLI_EXIT with *exit_status set (0 after --help/--version, 2 on bad usage, the line
 * already written). */
enum cli_result cli_parse(const struct cli_spec *spec, int argc, char **argv,
                          struct ef_config *cfg, int *first_operand, int *exit_status);

/* Writes "PROG: MESSAGE" as one line to stderr; for the programs' own usage errors
 * (a missing operand, an unknown COMMAND). Returns 2, the bad-usage exit status. */
int cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checks that dir is an existing directory this process may search and read (a program's
 * start, before anything that would report a missing one less clearly). Returns 0, or 1
 * (the failure exit status) after writing "PROG: data directory 'DIR': CAUSE" to stderr. */
int cli_check_data_dir(const char *prog, const char *dir);

/* For the programs that run a loop until asked to stop (tailer, relay, mirror): SIGTERM and
 * SIGINT set the returned flag, without SA_RESTART so that a sleep or a futex wait in the
 * loop is cut short and the loop sees the flag at once; SIGPIPE is ignored (a peer that went
 * away is an error return, not a death). Returns the flag, or NULL after writing
 * "PROG: cannot install signal handlers: CAUSE" to stderr. Call once. */
volatile sig_atomic_t *cli_stop_signals(const char *prog);

#endif
