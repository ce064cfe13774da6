/* <config.h>, not "config.h": the quoted form would find util/config.h next to this file
 * before the build directory's autoconf header. */
#include <config.h>
#include <string.h>
#include <unistd.h>

#include "util/cli.h"

#include "util/eflog.h"
#include "util/xalloc.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#ifndef EF_SYSCONFDIR
#define EF_SYSCONFDIR "/etc"
#endif

/* Ids of the common flags; program options use ids >= 256 (see cli.h). */
enum { OPT_DATA = 1, OPT_LISTEN, OPT_WORKERS, OPT_CONFIG, OPT_LOG_LEVEL, OPT_HELP = 'h', OPT_VERSION = 'V' };

struct common_flag {
    const char *name;
    int id;
    unsigned needs;     /* CLI_* bit the program must accept, 0 = always */
    const char *key;    /* config key it sets, NULL if none */
    const char *help;
};

static const struct common_flag common_flags[] = {
    { "data", OPT_DATA, CLI_DATA, "data", "--data DIR         data directory" },
    { "listen", OPT_LISTEN, CLI_LISTEN, "listen", "--listen SPEC      unix:PATH or HOST:PORT (default: the socket on fd 0)" },
    { "workers", OPT_WORKERS, CLI_WORKERS, "workers", "--workers N        worker processes" },
    { "config", OPT_CONFIG, 0, NULL, "--config FILE      config file (default " EF_SYSCONFDIR "/eventfold/eventfold.conf if present)" },
    { "log-level", OPT_LOG_LEVEL, 0, "log_level", "--log-level L      debug, info, warn or error" },
};

#define N_COMMON (sizeof common_flags / sizeof common_flags[0])

/* One flag as seen on the command line, applied after the config file is read. */
struct seen_opt {
    int id;
    const char *arg;
};

int cli_usage_error(const char *prog, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", prog, msg);
    return 2;
}

static size_t count_options(const struct cli_option *o)
{
    size_t n = 0;
    while (o && o[n].name)
        n++;
    return n;
}

/* Builds the getopt_long table: accepted common flags, then the program's options. */
static struct option *build_longopts(const struct cli_spec *spec)
{
    size_t nprog = count_options(spec->options);
    struct option *lo = xcalloc(N_COMMON + nprog + 3, sizeof *lo);
    size_t n = 0;
    for (size_t i = 0; i < N_COMMON; i++) {
        if (common_flags[i].needs && !(spec->common & common_flags[i].needs))
            continue;
        lo[n++] = (struct option){ common_flags[i].name, required_argument, NULL, common_flags[i].id };
    }
    lo[n++] = (struct option){ "help", no_argument, NULL, OPT_HELP };
    lo[n++] = (struct option){ "version", no_argument, NULL, OPT_VERSION };
    for (size_t i = 0; i < nprog; i++)
        lo[n++] = (struct option){ spec->options[i].name,
                                   spec->options[i].has_arg ? required_argument : no_argument,
                                   NULL, spec->options[i].id };
    return lo;
}

static void print_help(const struct cli_spec *spec)
{
    printf("Usage: %s %s\n\nCommon options:\n", spec->prog, spec->synopsis ? spec->synopsis : "");
    for (size_t i = 0; i < N_COMMON; i++)
        if (!common_flags[i].needs || (spec->common & common_flags[i].needs))
            printf("  %s\n", common_flags[i].help);
    printf("  --help             this text\n  --version          print the version\n");
}

static const struct common_flag *common_by_id(int id)
{
    for (size_t i = 0; i < N_COMMON; i++)
        if (common_flags[i].id == id)
            return &common_flags[i];
    return NULL;
}

/* Loads --config FILE (must exist), or the default file if it exists. */
static int load_config(const struct cli_spec *spec, const char *explicit_path,
                       struct ef_config *cfg, char *err, size_t errlen)
{
    const char *path = explicit_path;
    if (!path) {
        struct stat st;
        path = spec->default_config ? spec->default_config : EF_SYSCONFDIR "/eventfold/eventfold.conf";
        if (stat(path, &st) < 0 && errno == ENOENT)
            return 0;
    }
    return ef_config_load(cfg, path, err, errlen);
}

/* Applies the flags in command-line order over the loaded config. */
static int apply_flags(const struct cli_spec *spec, const struct seen_opt *seen, size_t nseen,
                       struct ef_config *cfg, char *err, size_t errlen)
{
    char msg[512];
    for (size_t i = 0; i < nseen; i++) {
        const struct common_flag *c = common_by_id(seen[i].id);
        if (c && !c->key)
            continue; /* --config, already applied */
        if (c) {
            if (ef_config_set(cfg, c->key, seen[i].arg, msg, sizeof msg) < 0) {
                snprintf(err, errlen, "--%s: %s", c->name, msg);
                return -1;
            }
            continue;
        }
        if (spec->on_option(seen[i].id, seen[i].arg, spec->ctx, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* Describes getopt's complaint about argv[optind - 1] in one line. */
static void describe_bad_option(int rc, int argc, char **argv, char *err, size_t errlen)
{
    const char *bad = optind - 1 < argc && optind >= 1 ? argv[optind - 1] : "?";
    if (rc == ':')
        snprintf(err, errlen, "option '%s' needs an argument (see --help)", bad);
    else if (optopt && optopt != '?')
        snprintf(err, errlen, "unknown option '-%c' (see --help)", optopt);
    else
        snprintf(err, errlen, "unknown option '%s' (see --help)", bad);
}

enum cli_result cli_parse(const struct cli_spec *spec, int argc, char **argv,
                          struct ef_config *cfg, int *first_operand, int *exit_status)
{
    enum cli_result result = CLI_EXIT;
    struct option *lo = build_longopts(spec);
    struct seen_opt *seen = xcalloc((size_t)argc + 1, sizeof *seen);
    size_t nseen = 0;
    const char *config_path = NULL;
    char err[1024];
    *exit_status = 2;

    opterr = 0;
    optind = 0; /* glibc: full re-initialisation, so cli_parse can run more than once */
    for (;;) {
        int rc = getopt_long(argc, argv, spec->stop_at_operand ? "+:hV" : ":hV", lo, NULL);
        if (rc == -1)
            break;
        if (rc == '?' || rc == ':') {
            describe_bad_option(rc, argc, argv, err, sizeof err);
            goto fail;
        }
        if (rc == OPT_HELP || rc == OPT_VERSION) {
            if (rc == OPT_HELP)
                print_help(spec);
            else
                printf("%s (eventfold) %s\n", spec->prog, PACKAGE_VERSION);
            *exit_status = fflush(stdout) == 0 ? 0 : 1;
            goto out;
        }
        if (rc == OPT_CONFIG)
            config_path = optarg;
        seen[nseen++] = (struct seen_opt){ rc, optarg };
    }
    if (load_config(spec, config_path, cfg, err, sizeof err) < 0)
        goto fail;
    if (apply_flags(spec, seen, nseen, cfg, err, sizeof err) < 0)
        goto fail;
    eflog_set_level((enum ef_level)cfg->log_level);
    *first_operand = optind;
    *exit_status = 0;
    result = CLI_RUN;
    goto out;
fail:
    cli_usage_error(spec->prog, "%s", err);
out:
    free(seen);
    free(lo);
    return result;
}

int cli_check_data_dir(const char *prog, const char *dir)
{
    struct stat st;
    int err = 0;
    if (stat(dir, &st) < 0)
        err = errno;
    else if (!S_ISDIR(st.st_mode))
        err = ENOTDIR;
    else if (access(dir, R_OK | X_OK) < 0)
        err = errno;
    if (!err)
        return 0;
    fprintf(stderr, "%s: data directory '%s': %s\n", prog, dir, strerror(err));
    return 1;
}

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

volatile sig_atomic_t *cli_stop_signals(const char *prog)
{
    struct sigaction sa, ign;
    memset(&sa, 0, sizeof sa);
    memset(&ign, 0, sizeof ign);
    sa.sa_handler = on_stop_signal;
    ign.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
        sigaction(SIGPIPE, &ign, NULL) < 0) {
        fprintf(stderr, "%s: cannot install signal handlers: %s\n", prog, strerror(errno));
        return NULL;
    }
    return &stop_requested;
}
