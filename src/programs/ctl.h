/* ctl: the commands of eventfoldctl, one function each, in files by topic.
 *
 * A command gets the parsed configuration and its own arguments (argv[0] is the command
 * name) and returns the process exit status: 0 success, 1 the operation failed or found
 * damage (with a one-line message on stderr), 2 bad usage (a one-line message on stderr).
 * Output meant for scripts goes to stdout as JSON (one object per line).
 *
 * Adding commands: implement them in ctl_<topic>.c with a NULL-terminated table
 * `const struct ctl_command ctl_<topic>_commands[]`, declare the table here, add its name
 * to the list in eventfoldctl.c (one line) and the file to src/programs/eventfoldctl.inc.
 */
#ifndef EF_CTL_H
#define EF_CTL_H

#include "util/config.h"

struct ctl_ctx {
    const char *prog;             /* "eventfoldctl", for messages */
    const struct ef_config *cfg;  /* data_dir etc., after file and flags */
};

typedef int (*ctl_command_fn)(struct ctl_ctx *ctx, int argc, char **argv);

/* A table entry; tables end with a NULL name. */
struct ctl_command {
    const char *name;
    const char *usage; /* "dump [--from POS] [--limit N]" */
    const char *help;  /* one line for --help */
    ctl_command_fn run;
};

/* Log commands (ctl_log.c): verify, dump. */
int ctl_verify(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_dump(struct ctl_ctx *ctx, int argc, char **argv);
extern const struct ctl_command ctl_log_commands[];

/* Read-side commands (ctl_read.c): status, snapshot, rebuild, dlq. */
extern const struct ctl_command ctl_read_commands[];

/* DATA_DIR/log into out (EF_PATH_MAX bytes); returns 0, or 2 after a usage message when
 * the path does not fit. */
int ctl_log_dir(struct ctl_ctx *ctx, char *out);

#endif
