/* config: the settings every eventfold program reads.
 *
 * Sources, later ones winning: built-in defaults, the config file (`key = value` lines,
 * `#` comments, blank lines; an unknown key or a bad value is an error naming file, line
 * and key), then command-line flags. conf/eventfold.conf documents every key.
 *
 * Keys (default):
 *   data             /var/lib/eventfold      data directory (--data)
 *   listen           (fd 0)                  unix:PATH or HOST:PORT (--listen)
 *   workers          2                       worker processes per FastCGI program (--workers)
 *   threads          4                       request threads per query worker
 *   command_threads  8                       request threads per command worker
 *   segment_bytes    67108864                log segment size limit (64 MiB)
 *   write_map_bytes  67108864                LMDB map size of the write model
 *   read_map_bytes   268435456               LMDB map size of the read model
 *   snapshot_every   100000                  events between snapshots, read and write model (0: never)
 *   snapshot_keep    3                       snapshots kept, of each model
 *   max_wait_seconds 10                      upper bound of Prefer: wait
 *   idempotency_ttl_hours 48                 how long idempotency keys are remembered (>= 24)
 *   log_level        info                    debug, info, warn, error
 *   log_requests     no                      one log line per request
 */
#ifndef EF_CONFIG_H
#define EF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define EF_PATH_MAX 4096

struct ef_config {
    char data_dir[EF_PATH_MAX];
    char listen[EF_PATH_MAX]; /* "" = fd 0 / LISTEN_FDS */
    int workers;
    int threads;
    int command_threads;
    uint64_t segment_bytes;
    uint64_t write_map_bytes;
    uint64_t read_map_bytes;
    uint64_t snapshot_every;
    int snapshot_keep;
    int max_wait_seconds;
    int idempotency_ttl_hours;
    int log_level; /* enum ef_level */
    int log_requests;
};

/* Fills cfg with the built-in defaults. */
void ef_config_defaults(struct ef_config *cfg);
/* Reads path into cfg. Returns 0, or -1 with a one-line message in err
 * ("FILE:LINE: unknown key 'x'"). */
int ef_config_load(struct ef_config *cfg, const char *path, char *err, size_t errlen);
/* Sets one key from its text form, as the file and flags do. Returns 0 or -1 with err set. */
int ef_config_set(struct ef_config *cfg, const char *key, const char *value, char *err, size_t errlen);

#endif
