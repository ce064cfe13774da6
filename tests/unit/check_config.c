/* Unit tests of util/config (defaults, every key, values, FILE:LINE errors) and util/cli
 * (config file then flags, --config, the default file, --help/--version, exit status 2
 * with one line on stderr). */
#include <config.h>

#include "testdir.h"

#include "util/cli.h"
#include "util/config.h"
#include "util/eflog.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static void setup(void) { td_setup(); }

static void teardown(void) { td_teardown(); }

/* Writes text to td_dir/name and returns the path (static buffer per call site). */
static const char *write_file(const char *name, const char *text)
{
    static char path[4][128];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 128, "%s/%s", td_dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    return p;
}

START_TEST(test_defaults)
{
    struct ef_config c;
    ef_config_defaults(&c);
    ck_assert_str_eq(c.data_dir, "/var/lib/eventfold");
    ck_assert_str_eq(c.listen, "");
    ck_assert_int_eq(c.workers, 2);
    ck_assert_int_eq(c.threads, 4);
    ck_assert_int_eq(c.command_threads, 8);
    ck_assert_uint_eq(c.segment_bytes, 67108864u);
    ck_assert_uint_eq(c.write_map_bytes, 67108864u);
    ck_assert_uint_eq(c.read_map_bytes, 268435456u);
    ck_assert_uint_eq(c.snapshot_every, 100000u);
    ck_assert_int_eq(c.snapshot_keep, 3);
    ck_assert_int_eq(c.max_wait_seconds, 10);
    ck_assert_int_eq(c.idempotency_ttl_hours, 48);
    ck_assert_int_eq(c.log_level, EF_INFO);
    ck_assert_int_eq(c.log_requests, 0);
    ck_assert_int_eq(c.max_waiting, 10000);
    ck_assert_int_eq(c.send_timeout_seconds, 30);
    ck_assert_str_eq(c.nats_url, "nats://127.0.0.1:4222");
    ck_assert_str_eq(c.nats_stream, "EVENTFOLD");
    ck_assert_int_eq(c.nats_replicas, 3);
    ck_assert_str_eq(c.kafka_topic, "eventfold.events");
    ck_assert_int_eq(c.kafka_nprops, 0);
}
END_TEST

START_TEST(test_every_key_from_file)
{
    const char *p = write_file("all.conf",
                               "# every key\n"
                               "\n"
                               "data = /srv/ef\n"
                               "listen=unix:/run/ef/command.sock\n"
                               "  workers\t=  7  \n"
                               "threads = 9 # inline comment\n"
                               "command_threads = 11\n"
                               "segment_bytes = 8M\n"
                               "write_map_bytes = 2G\n"
                               "read_map_bytes = 3145728\n"
                               "snapshot_every = 0\n"
                               "snapshot_keep = 5\n"
                               "max_wait_seconds = 20\n"
                               "idempotency_ttl_hours = 72\n"
                               "log_level = debug\n"
                               "log_requests = yes\r\n");
    struct ef_config c;
    char err[256] = "";
    ef_config_defaults(&c);
    ck_assert_msg(ef_config_load(&c, p, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(c.data_dir, "/srv/ef");
    ck_assert_str_eq(c.listen, "unix:/run/ef/command.sock");
    ck_assert_int_eq(c.workers, 7);
    ck_assert_int_eq(c.threads, 9);
    ck_assert_int_eq(c.command_threads, 11);
    ck_assert_uint_eq(c.segment_bytes, 8u << 20);
    ck_assert_uint_eq(c.write_map_bytes, 2ull << 30);
    ck_assert_uint_eq(c.read_map_bytes, 3145728u);
    ck_assert_uint_eq(c.snapshot_every, 0);
    ck_assert_int_eq(c.snapshot_keep, 5);
    ck_assert_int_eq(c.max_wait_seconds, 20);
    ck_assert_int_eq(c.idempotency_ttl_hours, 72);
    ck_assert_int_eq(c.log_level, EF_DEBUG);
    ck_assert_int_eq(c.log_requests, 1);
}
END_TEST

struct value_case {
    const char *key, *value;
    int ok;
};

static const struct value_case value_cases[] = {
    { "segment_bytes", "4096", 1 },        { "segment_bytes", "4095", 0 },
    { "segment_bytes", "64k", 1 },         { "segment_bytes", "1T", 0 },
    { "segment_bytes", "12X", 0 },         { "segment_bytes", "-1", 0 },
    { "segment_bytes", "", 0 },            { "segment_bytes", "1 M", 0 },
    { "read_map_bytes", "99999999999999999999", 0 },
    { "read_map_bytes", "17179869184G", 0 }, /* overflows with the suffix */
    { "workers", "0", 0 },                 { "workers", "256", 1 },
    { "workers", "257", 0 },               { "workers", "2k", 0 },
    { "workers", "+3", 0 },                { "threads", "1", 1 },
    { "snapshot_every", "10M", 0 },        { "snapshot_keep", "0", 0 },
    { "idempotency_ttl_hours", "23", 0 },  { "idempotency_ttl_hours", "24", 1 },
    { "max_wait_seconds", "0", 1 },        { "log_level", "warning", 1 },
    { "log_level", "loud", 0 },            { "log_requests", "true", 1 },
    { "log_requests", "1", 1 },            { "log_requests", "no", 1 },
    { "log_requests", "false", 1 },        { "log_requests", "0", 1 },
    { "log_requests", "maybe", 0 },        { "listen", "", 1 },
    { "listen", "127.0.0.1:9000", 1 },     { "listen", "[::1]:9000", 1 },
    { "listen", "127.0.0.1:0", 0 },        { "listen", "127.0.0.1:65536", 0 },
    { "listen", "localhost", 0 },          { "listen", "unix:", 0 },
    { "listen", ":9000", 0 },              { "data", "", 0 },
    { "nonsense", "1", 0 },                { "max_waiting", "0", 1 },
    { "max_waiting", "1000001", 0 },       { "send_timeout_seconds", "0", 0 },
    { "nats_url", "nats://a:1,nats://b:2", 1 }, { "nats_url", "", 0 },
    { "nats_stream", "EF-1_x", 1 },        { "nats_stream", "EF.1", 0 },
    { "nats_stream", "a b", 0 },           { "nats_replicas", "6", 0 },
    { "nats_subject_prefix", "shop.events", 1 }, { "kafka_topic", "", 0 },
    { "kafka_brokers", "127.0.0.1:9092", 1 }, { "kafka.", "x", 0 },
    { "kafka.linger.ms", "5", 1 },
};

START_TEST(test_values)
{
    const struct value_case *vc = &value_cases[_i];
    struct ef_config c;
    char err[256] = "";
    ef_config_defaults(&c);
    int rc = ef_config_set(&c, vc->key, vc->value, err, sizeof err);
    ck_assert_msg(rc == (vc->ok ? 0 : -EINVAL), "%s = '%s': rc=%d err=%s", vc->key, vc->value, rc,
                  err);
    if (!vc->ok)
        ck_assert_msg(strstr(err, vc->key) != NULL, "error does not name the key: %s", err);
}
END_TEST

/* kafka.PROPERTY lines are kept in order; a repeated property keeps its later value. */
START_TEST(test_kafka_props)
{
    struct ef_config c;
    char err[256];
    ef_config_defaults(&c);
    ck_assert_int_eq(ef_config_set(&c, "kafka.linger.ms", "5", err, sizeof err), 0);
    ck_assert_int_eq(ef_config_set(&c, "kafka.compression.type", "zstd", err, sizeof err), 0);
    ck_assert_int_eq(ef_config_set(&c, "kafka.linger.ms", "10", err, sizeof err), 0);
    ck_assert_int_eq(c.kafka_nprops, 2);
    ck_assert_str_eq(c.kafka_props[0].name, "linger.ms");
    ck_assert_str_eq(c.kafka_props[0].value, "10");
    ck_assert_str_eq(c.kafka_props[1].name, "compression.type");
    for (int i = 2; i < EF_KAFKA_PROPS_MAX; i++) {
        char name[32];
        snprintf(name, sizeof name, "kafka.p%d", i);
        ck_assert_int_eq(ef_config_set(&c, name, "v", err, sizeof err), 0);
    }
    ck_assert_int_eq(ef_config_set(&c, "kafka.one.too.many", "v", err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "kafka.one.too.many"));
}
END_TEST

START_TEST(test_bool_values_apply)
{
    struct ef_config c;
    char err[256];
    ef_config_defaults(&c);
    ck_assert_int_eq(ef_config_set(&c, "log_requests", "true", err, sizeof err), 0);
    ck_assert_int_eq(c.log_requests, 1);
    ck_assert_int_eq(ef_config_set(&c, "log_requests", "0", err, sizeof err), 0);
    ck_assert_int_eq(c.log_requests, 0);
    ck_assert_int_eq(ef_config_set(&c, "segment_bytes", "1g", err, sizeof err), 0);
    ck_assert_uint_eq(c.segment_bytes, 1ull << 30);
}
END_TEST

struct error_case {
    const char *text;
    const char *expect; /* suffix after "PATH" */
};

static const struct error_case error_cases[] = {
    { "workers = 2\n\nbogus = 1\n", ":3: unknown key 'bogus'" },
    { "# c\nworkers 2\n", ":2: expected 'key = value', got 'workers 2'" },
    { "workers = many\n", ":1: workers: expected an integer 1..256, got 'many'" },
    { "data = /x\n = 3\n", ":2: missing key before '='" },
    { "log_requests = y\n", ":1: log_requests: expected yes/no/true/false/1/0, got 'y'" },
};

START_TEST(test_file_errors)
{
    const char *p = write_file("bad.conf", error_cases[_i].text);
    struct ef_config c;
    char err[512] = "", expect[512];
    ef_config_defaults(&c);
    ck_assert_int_eq(ef_config_load(&c, p, err, sizeof err), -EINVAL);
    snprintf(expect, sizeof expect, "%s%s", p, error_cases[_i].expect);
    ck_assert_str_eq(err, expect);
}
END_TEST

START_TEST(test_missing_file)
{
    struct ef_config c;
    char err[512] = "", path[128];
    ef_config_defaults(&c);
    snprintf(path, sizeof path, "%s/nope.conf", td_dir);
    ck_assert_int_eq(ef_config_load(&c, path, err, sizeof err), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, "No such file"));
}
END_TEST

/* ---- cli ---- */

struct captured {
    char out[4096];
    char err[4096];
};

static void read_all(int fd, char *buf, size_t cap)
{
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    ssize_t n = read(fd, buf, cap - 1);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
}

struct prog_opts {
    int once;
    char from[64];
};

static int on_option(int id, const char *arg, void *ctx, char *err, size_t errlen)
{
    struct prog_opts *po = ctx;
    if (id == 300) {
        po->once = 1;
        return 0;
    }
    if (id == 301 && strcmp(arg, "bad") != 0) {
        snprintf(po->from, sizeof po->from, "%s", arg);
        return 0;
    }
    snprintf(err, errlen, "--from: bad position '%s'", arg);
    return -1;
}

static const struct cli_option prog_options[] = { { "once", 0, 300 }, { "from", 1, 301 }, { NULL, 0, 0 } };

/* Runs cli_parse on the words of `line` with stdout/stderr captured. */
static enum cli_result run_cli(const char *line, unsigned common, int stop, struct ef_config *cfg,
                               struct prog_opts *po, int *first, int *status, struct captured *cap)
{
    char buf[1024], *argv[32];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    for (char *tok = strtok(buf, " "); tok && argc < 31; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    argv[argc] = NULL;
    char defconf[128];
    snprintf(defconf, sizeof defconf, "%s/default.conf", td_dir);
    struct cli_spec spec = { .prog = "eventfold-test", .synopsis = "[options]", .common = common,
                             .options = prog_options, .on_option = on_option, .ctx = po,
                             .stop_at_operand = stop, .default_config = defconf };
    char outp[128], errp[128];
    snprintf(outp, sizeof outp, "%s/stdout", td_dir);
    snprintf(errp, sizeof errp, "%s/stderr", td_dir);
    int ofd = open(outp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    int efd = open(errp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(ofd, 0);
    ck_assert_int_ge(efd, 0);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    ck_assert_int_eq(dup2(ofd, 1), 1);
    ck_assert_int_eq(dup2(efd, 2), 2);
    enum cli_result r = cli_parse(&spec, argc, argv, cfg, first, status);
    fflush(stdout);
    fflush(stderr);
    ck_assert_int_eq(dup2(saved_out, 1), 1);
    ck_assert_int_eq(dup2(saved_err, 2), 2);
    close(saved_out);
    close(saved_err);
    read_all(ofd, cap->out, sizeof cap->out);
    read_all(efd, cap->err, sizeof cap->err);
    close(ofd);
    close(efd);
    return r;
}

START_TEST(test_cli_flags_override_file)
{
    const char *conf = write_file("f.conf", "workers = 3\nthreads = 5\ndata = /from/file\n");
    char line[512];
    snprintf(line, sizeof line, "prog --workers 6 --config %s --data=/from/flag --once --log-level warn", conf);
    struct ef_config c;
    struct prog_opts po = { 0 };
    struct captured cap;
    int first = -1, status = -1;
    ef_config_defaults(&c);
    ck_assert_int_eq(run_cli(line, CLI_FASTCGI, 0, &c, &po, &first, &status, &cap), CLI_RUN);
    ck_assert_int_eq(status, 0);
    ck_assert_int_eq(c.workers, 6);     /* flag beats file, though it came first */
    ck_assert_int_eq(c.threads, 5);     /* from the file */
    ck_assert_str_eq(c.data_dir, "/from/flag");
    ck_assert_int_eq(c.log_level, EF_WARN);
    ck_assert_int_eq(eflog_level(), EF_WARN);
    ck_assert_int_eq(po.once, 1);
    ck_assert_str_eq(cap.err, "");
    eflog_set_level(EF_INFO);
}
END_TEST

START_TEST(test_cli_default_config)
{
    struct ef_config c;
    struct prog_opts po = { 0 };
    struct captured cap;
    int first, status;
    ef_config_defaults(&c);
    /* absent default file: fine */
    ck_assert_int_eq(run_cli("prog", CLI_FASTCGI, 0, &c, &po, &first, &status, &cap), CLI_RUN);
    ck_assert_int_eq(c.workers, 2);
    write_file("default.conf", "workers = 4\n");
    ck_assert_int_eq(run_cli("prog", CLI_FASTCGI, 0, &c, &po, &first, &status, &cap), CLI_RUN);
    ck_assert_int_eq(c.workers, 4);
    /* a broken default file is an error */
    write_file("default.conf", "workers = x\n");
    ck_assert_int_eq(run_cli("prog", CLI_FASTCGI, 0, &c, &po, &first, &status, &cap), CLI_EXIT);
    ck_assert_int_eq(status, 2);
    ck_assert_ptr_nonnull(strstr(cap.err, "default.conf:1: workers:"));
}
END_TEST

struct usage_case {
    const char *line;
    unsigned common;
    const char *err_has;
};

static const struct usage_case usage_cases[] = {
    { "prog --bogus", CLI_FASTCGI, "unknown option '--bogus'" },
    { "prog -x", CLI_FASTCGI, "unknown option '-x'" },
    { "prog --workers", CLI_FASTCGI, "option '--workers' needs an argument" },
    { "prog --workers 0", CLI_FASTCGI, "--workers: workers: expected an integer 1..256" },
    { "prog --listen nowhere", CLI_FASTCGI, "--listen: listen: expected unix:PATH or HOST:PORT" },
    { "prog --listen unix:/x", CLI_DATA, "unknown option '--listen'" },
    { "prog --config /nonexistent/eventfold.conf", CLI_FASTCGI, "/nonexistent/eventfold.conf: No such file" },
    { "prog --log-level loud", CLI_FASTCGI, "--log-level: log_level: expected debug" },
    { "prog --from bad", CLI_FASTCGI, "--from: bad position 'bad'" },
};

START_TEST(test_cli_usage_errors)
{
    const struct usage_case *uc = &usage_cases[_i];
    struct ef_config c;
    struct prog_opts po = { 0 };
    struct captured cap;
    int first, status = -1;
    ef_config_defaults(&c);
    ck_assert_int_eq(run_cli(uc->line, uc->common, 0, &c, &po, &first, &status, &cap), CLI_EXIT);
    ck_assert_int_eq(status, 2);
    ck_assert_msg(strncmp(cap.err, "eventfold-test: ", 16) == 0, "%s", cap.err);
    ck_assert_msg(strstr(cap.err, uc->err_has) != NULL, "'%s' lacks '%s'", cap.err, uc->err_has);
    char *nl = strchr(cap.err, '\n');
    ck_assert_msg(nl && nl[1] == '\0', "not exactly one line: '%s'", cap.err);
    ck_assert_str_eq(cap.out, "");
}
END_TEST

START_TEST(test_cli_help_version)
{
    struct ef_config c;
    struct prog_opts po = { 0 };
    struct captured cap;
    int first, status = -1;
    ef_config_defaults(&c);
    ck_assert_int_eq(run_cli("prog --version", CLI_FASTCGI, 0, &c, &po, &first, &status, &cap), CLI_EXIT);
    ck_assert_int_eq(status, 0);
    ck_assert_str_eq(cap.out, "eventfold-test (eventfold) " PACKAGE_VERSION "\n");
    ck_assert_int_eq(run_cli("prog --workers 3 --help", CLI_FASTCGI, 0, &c, &po, &first, &status, &cap), CLI_EXIT);
    ck_assert_int_eq(status, 0);
    ck_assert_ptr_nonnull(strstr(cap.out, "Usage: eventfold-test [options]"));
    ck_assert_ptr_nonnull(strstr(cap.out, "--listen SPEC"));
    ck_assert_str_eq(cap.err, "");
    /* a program without --listen does not advertise it */
    ck_assert_int_eq(run_cli("prog --help", CLI_DATA, 0, &c, &po, &first, &status, &cap), CLI_EXIT);
    ck_assert_ptr_null(strstr(cap.out, "--listen"));
}
END_TEST

START_TEST(test_cli_operands)
{
    struct ef_config c;
    struct prog_opts po = { 0 };
    struct captured cap;
    int first = -1, status;
    ef_config_defaults(&c);
    /* stop at the first operand: later flags belong to the subcommand */
    ck_assert_int_eq(run_cli("ctl --data /d dump --from 5", CLI_DATA, 1, &c, &po, &first, &status, &cap), CLI_RUN);
    ck_assert_int_eq(first, 3);
    ck_assert_str_eq(c.data_dir, "/d");
    ck_assert_str_eq(po.from, "");
    /* permuting mode: flags after operands are parsed, operands move to the end */
    ck_assert_int_eq(run_cli("ctl verify --from 7", CLI_DATA, 0, &c, &po, &first, &status, &cap), CLI_RUN);
    ck_assert_str_eq(po.from, "7");
    ck_assert_int_eq(first, 3);
}
END_TEST

START_TEST(test_cli_usage_error_helper)
{
    struct captured cap;
    char errp[128];
    snprintf(errp, sizeof errp, "%s/stderr", td_dir);
    int efd = open(errp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(efd, 0);
    fflush(stderr);
    int saved = dup(2);
    ck_assert_int_eq(dup2(efd, 2), 2);
    int st = cli_usage_error("eventfoldctl", "unknown command '%s'", "frob");
    fflush(stderr);
    ck_assert_int_eq(dup2(saved, 2), 2);
    close(saved);
    read_all(efd, cap.err, sizeof cap.err);
    close(efd);
    ck_assert_int_eq(st, 2);
    ck_assert_str_eq(cap.err, "eventfoldctl: unknown command 'frob'\n");
}
END_TEST

/* Client bytes in a log line: control characters, a forged newline, quotes and bytes past
 * ASCII are escaped, a long field is cut, and NULL is "-". */
START_TEST(test_eflog_esc)
{
    char out[EFLOG_ESC_CAP];
    const char evil[] = "/api/x\nerror: forged\x1b[2J\"q\"\\\xff";
    ck_assert_str_eq(eflog_esc(evil, sizeof evil - 1, out, sizeof out),
                     "/api/x\\x0aerror: forged\\x1b[2J\\x22q\\x22\\x5c\\xff");
    ck_assert_str_eq(eflog_esc("a\0b", 3, out, sizeof out), "a\\x00b");
    ck_assert_str_eq(EFLOG_S((const char *)NULL), "-");
    ck_assert_str_eq(EFLOG_S("GET"), "GET");
    char big[5000];
    memset(big, '\n', sizeof big);
    const char *e = eflog_esc(big, sizeof big, out, sizeof out);
    ck_assert_uint_eq(strlen(e), EFLOG_FIELD_MAX * 4 + 3);
    ck_assert_str_eq(e + strlen(e) - 7, "\\x0a...");
    memset(big, 'a', sizeof big);
    ck_assert_uint_eq(strlen(eflog_esc(big, sizeof big, out, sizeof out)), EFLOG_FIELD_MAX + 3);
    char tiny[8];
    ck_assert_str_eq(eflog_esc(evil, sizeof evil - 1, tiny, sizeof tiny), "/api...");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_unchecked_fixture(tc, td_case_setup, td_case_teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_every_key_from_file);
    tcase_add_loop_test(tc, test_values, 0, (int)(sizeof value_cases / sizeof value_cases[0]));
    tcase_add_test(tc, test_bool_values_apply);
    tcase_add_test(tc, test_kafka_props);
    tcase_add_loop_test(tc, test_file_errors, 0, (int)(sizeof error_cases / sizeof error_cases[0]));
    tcase_add_test(tc, test_missing_file);
    suite_add_tcase(s, tc);
    TCase *tcli = tcase_create("cli");
    tcase_add_checked_fixture(tcli, setup, teardown);
    tcase_add_unchecked_fixture(tcli, td_case_setup, td_case_teardown);
    tcase_add_test(tcli, test_cli_flags_override_file);
    tcase_add_test(tcli, test_cli_default_config);
    tcase_add_loop_test(tcli, test_cli_usage_errors, 0, (int)(sizeof usage_cases / sizeof usage_cases[0]));
    tcase_add_test(tcli, test_cli_help_version);
    tcase_add_test(tcli, test_cli_operands);
    tcase_add_test(tcli, test_cli_usage_error_helper);
    tcase_add_test(tcli, test_eflog_esc);
    suite_add_tcase(s, tcli);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
