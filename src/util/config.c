/* <config.h>, not "config.h": the quoted form would find util/config.h next to this file
 * before the build directory's autoconf header. */
#include <config.h>

#include "util/config.h"

#include "util/eflog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

/* One row per key. The table is the single place that knows a key's type, its field and
 * its range, so defaults, the file parser and the flags cannot disagree. */
/* CFG_TEXT: a non-empty string of at most EF_TEXT_MAX - 1 bytes without blanks at its ends
 * (names, URLs); CFG_NAME: the same, restricted to [A-Za-z0-9_-] (a NATS stream name). */
enum cfg_type { CFG_PATH, CFG_LISTEN, CFG_INT, CFG_U64, CFG_SIZE, CFG_BOOL, CFG_LEVEL, CFG_TEXT,
                CFG_NAME };

struct cfg_key {
    const char *name;
    enum cfg_type type;
    size_t offset;
    uint64_t min; /* inclusive bounds for CFG_INT, CFG_U64, CFG_SIZE */
    uint64_t max;
};

#define KEY(name, type, field, min, max) { name, type, offsetof(struct ef_config, field), min, max }
#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define TIB (1024ull * GIB)

static const struct cfg_key cfg_keys[] = {
    KEY("data", CFG_PATH, data_dir, 0, 0),
    KEY("listen", CFG_LISTEN, listen, 0, 0),
    KEY("workers", CFG_INT, workers, 1, 256),
    KEY("threads", CFG_INT, threads, 1, 256),
    KEY("command_threads", CFG_INT, command_threads, 1, 256),
    KEY("segment_bytes", CFG_SIZE, segment_bytes, 4 * KIB, 64 * GIB),
    KEY("write_map_bytes", CFG_SIZE, write_map_bytes, 1 * MIB, 64 * TIB),
    KEY("read_map_bytes", CFG_SIZE, read_map_bytes, 1 * MIB, 64 * TIB),
    KEY("snapshot_every", CFG_U64, snapshot_every, 0, 1ull << 40),
    KEY("snapshot_keep", CFG_INT, snapshot_keep, 1, 1000),
    KEY("max_wait_seconds", CFG_INT, max_wait_seconds, 0, 3600),
    KEY("idempotency_ttl_hours", CFG_INT, idempotency_ttl_hours, 24, 24 * 366),
    KEY("log_level", CFG_LEVEL, log_level, 0, 0),
    KEY("log_requests", CFG_BOOL, log_requests, 0, 0),
    KEY("max_waiting", CFG_INT, max_waiting, 0, 1000000),
    KEY("send_timeout_seconds", CFG_INT, send_timeout_seconds, 1, 3600),
    KEY("nats_url", CFG_TEXT, nats_url, 0, 0),
    KEY("nats_stream", CFG_NAME, nats_stream, 0, 0),
    KEY("nats_replicas", CFG_INT, nats_replicas, 1, 5),
    KEY("nats_subject_prefix", CFG_TEXT, nats_subject_prefix, 0, 0),
    KEY("kafka_brokers", CFG_TEXT, kafka_brokers, 0, 0),
    KEY("kafka_topic", CFG_TEXT, kafka_topic, 0, 0),
};

void ef_config_defaults(struct ef_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", "/var/lib/eventfold");
    cfg->listen[0] = '\0';
    cfg->workers = 2;
    cfg->threads = 4;
    cfg->command_threads = 8;
    cfg->segment_bytes = 64 * MIB;
    cfg->write_map_bytes = 64 * MIB;
    cfg->read_map_bytes = 256 * MIB;
    cfg->snapshot_every = 100000;
    cfg->snapshot_keep = 3;
    cfg->max_wait_seconds = 10;
    cfg->idempotency_ttl_hours = 48;
    cfg->log_level = EF_INFO;
    cfg->log_requests = 0;
    cfg->max_waiting = 10000;
    cfg->send_timeout_seconds = 30;
    snprintf(cfg->nats_url, sizeof cfg->nats_url, "%s", "nats://127.0.0.1:4222");
    snprintf(cfg->nats_stream, sizeof cfg->nats_stream, "%s", "EVENTFOLD");
    cfg->nats_replicas = 3;
    snprintf(cfg->nats_subject_prefix, sizeof cfg->nats_subject_prefix, "%s", "eventfold");
    snprintf(cfg->kafka_brokers, sizeof cfg->kafka_brokers, "%s", "127.0.0.1:9092");
    snprintf(cfg->kafka_topic, sizeof cfg->kafka_topic, "%s", "eventfold.events");
    cfg->kafka_nprops = 0;
}

static const struct cfg_key *cfg_find(const char *name)
{
    for (size_t i = 0; i < sizeof cfg_keys / sizeof cfg_keys[0]; i++)
        if (strcmp(cfg_keys[i].name, name) == 0)
            return &cfg_keys[i];
    return NULL;
}

/* Parses a decimal integer with an optional binary K/M/G/T suffix (when allow_suffix).
 * Rejects signs, empty strings, trailing garbage and overflow. */
static int parse_u64(const char *s, int allow_suffix, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -EINVAL;
    uint64_t mult = 1;
    if (allow_suffix && *end) {
        switch (*end) {
        case 'k': case 'K': mult = KIB; break;
        case 'm': case 'M': mult = MIB; break;
        case 'g': case 'G': mult = GIB; break;
        case 't': case 'T': mult = TIB; break;
        default: return -EINVAL;
        }
        end++;
    }
    if (*end)
        return -EINVAL;
    if (v > UINT64_MAX / mult)
        return -EINVAL;
    *out = (uint64_t)v * mult;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = { "yes", "true", "1", "on" };
    static const char *const no[] = { "no", "false", "0", "off" };
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -EINVAL;
}

/* A listen spec is "unix:PATH" (PATH must fit sun_path) or "HOST:PORT" (PORT 1..65535),
 * or "" for the inherited socket. Checked here so a typo fails at startup with a line
 * number rather than when the master binds. */
static int check_listen(const char *s, char *err, size_t errlen)
{
    if (*s == '\0')
        return 0;
    if (strncmp(s, "unix:", 5) == 0) {
        size_t n = strlen(s + 5);
        if (n == 0 || n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            snprintf(err, errlen, "listen: unix socket path empty or longer than %zu bytes",
                     sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
            return -EINVAL;
        }
        return 0;
    }
    const char *colon = strrchr(s, ':');
    uint64_t port;
    if (!colon || colon == s || parse_u64(colon + 1, 0, &port) < 0 || port < 1 || port > 65535) {
        snprintf(err, errlen, "listen: expected unix:PATH or HOST:PORT, got '%s'", s);
        return -EINVAL;
    }
    return 0;
}

static int set_text(char *field, const struct cfg_key *k, const char *value, char *err,
                    size_t errlen)
{
    if (k->type == CFG_PATH && *value == '\0') {
        snprintf(err, errlen, "%s: must not be empty", k->name);
        return -EINVAL;
    }
    if (strlen(value) >= EF_PATH_MAX) {
        snprintf(err, errlen, "%s: longer than %d bytes", k->name, EF_PATH_MAX - 1);
        return -EINVAL;
    }
    if (k->type == CFG_LISTEN && check_listen(value, err, errlen) < 0)
        return -EINVAL;
    snprintf(field, EF_PATH_MAX, "%s", value);
    return 0;
}

static int set_name(char *field, const struct cfg_key *k, const char *value, char *err,
                    size_t errlen)
{
    size_t n = strlen(value);
    if (n == 0) {
        snprintf(err, errlen, "%s: must not be empty", k->name);
        return -EINVAL;
    }
    if (n >= EF_TEXT_MAX) {
        snprintf(err, errlen, "%s: longer than %d bytes", k->name, EF_TEXT_MAX - 1);
        return -EINVAL;
    }
    if (k->type == CFG_NAME && strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                             "0123456789_-") != n) {
        snprintf(err, errlen, "%s: only letters, digits, '_' and '-' allowed, got '%s'", k->name,
                 value);
        return -EINVAL;
    }
    snprintf(field, EF_TEXT_MAX, "%s", value);
    return 0;
}

/* kafka.PROPERTY = VALUE: kept as text for librdkafka, which judges the property itself
 * when the Kafka sink starts (so an unknown one is reported there, by librdkafka's name). */
static int set_kafka_prop(struct ef_config *cfg, const char *key, const char *value, char *err,
                          size_t errlen)
{
    const char *name = key + strlen("kafka.");
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof cfg->kafka_props[0].name) {
        snprintf(err, errlen, "%s: property name empty or longer than %zu bytes", key,
                 sizeof cfg->kafka_props[0].name - 1);
        return -EINVAL;
    }
    if (strlen(value) >= EF_TEXT_MAX) {
        snprintf(err, errlen, "%s: longer than %d bytes", key, EF_TEXT_MAX - 1);
        return -EINVAL;
    }
    int i = 0;
    while (i < cfg->kafka_nprops && strcmp(cfg->kafka_props[i].name, name) != 0)
        i++;
    if (i == EF_KAFKA_PROPS_MAX) {
        snprintf(err, errlen, "%s: more than %d kafka.* properties", key, EF_KAFKA_PROPS_MAX);
        return -EINVAL;
    }
    snprintf(cfg->kafka_props[i].name, sizeof cfg->kafka_props[i].name, "%s", name);
    snprintf(cfg->kafka_props[i].value, sizeof cfg->kafka_props[i].value, "%s", value);
    if (i == cfg->kafka_nprops)
        cfg->kafka_nprops++;
    return 0;
}

static int set_number(char *base, const struct cfg_key *k, const char *value, char *err,
                      size_t errlen)
{
    uint64_t v;
    if (parse_u64(value, k->type == CFG_SIZE, &v) < 0 || v < k->min || v > k->max) {
        snprintf(err, errlen, "%s: expected %s %llu..%llu, got '%s'", k->name,
                 k->type == CFG_SIZE ? "a size (bytes, optional K/M/G/T suffix)" : "an integer",
                 (unsigned long long)k->min, (unsigned long long)k->max, value);
        return -EINVAL;
    }
    if (k->type == CFG_INT)
        *(int *)(void *)(base + k->offset) = (int)v;
    else
        *(uint64_t *)(void *)(base + k->offset) = v;
    return 0;
}

int ef_config_set(struct ef_config *cfg, const char *key, const char *value, char *err,
                  size_t errlen)
{
    if (strncmp(key, "kafka.", 6) == 0)
        return set_kafka_prop(cfg, key, value, err, errlen);
    const struct cfg_key *k = cfg_find(key);
    if (!k) {
        snprintf(err, errlen, "unknown key '%s'", key);
        return -EINVAL;
    }
    char *base = (char *)cfg;
    switch (k->type) {
    case CFG_PATH:
    case CFG_LISTEN:
        return set_text(base + k->offset, k, value, err, errlen);
    case CFG_TEXT:
    case CFG_NAME:
        return set_name(base + k->offset, k, value, err, errlen);
    case CFG_INT:
    case CFG_U64:
    case CFG_SIZE:
        return set_number(base, k, value, err, errlen);
    case CFG_BOOL:
        if (parse_bool(value, (int *)(void *)(base + k->offset)) == 0)
            return 0;
        snprintf(err, errlen, "%s: expected yes/no/true/false/1/0, got '%s'", k->name, value);
        return -EINVAL;
    case CFG_LEVEL: {
        int level = eflog_parse_level(value);
        if (level >= 0) {
            *(int *)(void *)(base + k->offset) = level;
            return 0;
        }
        snprintf(err, errlen, "%s: expected debug/info/warn/error, got '%s'", k->name, value);
        return -EINVAL;
    }
    }
    snprintf(err, errlen, "%s: internal error: bad key type", key);
    return -EINVAL;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* Cuts a comment: '#' at the start of the line or after a blank starts one, so a value
 * such as a path may still contain '#' when it is not preceded by a blank. */
static void strip_comment(char *s)
{
    for (char *p = s; *p; p++) {
        if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            return;
        }
    }
}

/* Applies one line; returns 0 (also for blank and comment lines) or -EINVAL with err set
 * to a message without the FILE:LINE prefix. */
static int config_line(struct ef_config *cfg, char *line, char *err, size_t errlen)
{
    strip_comment(line);
    char *s = trim(line);
    if (*s == '\0')
        return 0;
    char *eq = strchr(s, '=');
    if (!eq) {
        snprintf(err, errlen, "expected 'key = value', got '%.64s'", s);
        return -EINVAL;
    }
    *eq = '\0';
    char *key = trim(s);
    char *value = trim(eq + 1);
    if (*key == '\0') {
        snprintf(err, errlen, "missing key before '='");
        return -EINVAL;
    }
    return ef_config_set(cfg, key, value, err, errlen);
}

int ef_config_load(struct ef_config *cfg, const char *path, char *err, size_t errlen)
{
    int rc = -EINVAL;
    char *line = NULL;
    size_t cap = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    char msg[512];
    for (unsigned lineno = 1;; lineno++) {
        errno = 0;
        ssize_t n = getline(&line, &cap, f);
        if (n < 0) {
            if (errno != 0) {
                rc = -errno;
                snprintf(err, errlen, "%s:%u: %s", path, lineno, strerror(-rc));
                goto fail;
            }
            break;
        }
        if (memchr(line, '\0', (size_t)n)) {
            snprintf(err, errlen, "%s:%u: NUL byte in line", path, lineno);
            goto fail;
        }
        if (config_line(cfg, line, msg, sizeof msg) < 0) {
            snprintf(err, errlen, "%s:%u: %s", path, lineno, msg);
            goto fail;
        }
    }
    rc = 0;
fail:
    free(line);
    fclose(f);
    return rc;
}
