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
 *   max_waiting      10000                   parked waits per query program (then 503)
 *   send_timeout_seconds 30                  seconds an answer may take to be sent
 *   nats_url         nats://127.0.0.1:4222   NATS servers, comma-separated (relay, mirror)
 *   nats_stream      EVENTFOLD               JetStream stream carrying the log
 *   nats_replicas    3                       replicas of a stream the relay creates
 *   nats_subject_prefix eventfold            subjects are PREFIX.CATEGORY.TYPE
 *   kafka_brokers    127.0.0.1:9092          bootstrap servers of the Kafka sink
 *   kafka_topic      eventfold.events        topic of the Kafka sink
 *
 * Besides these, any number of `kafka.PROPERTY = VALUE` lines are kept in kafka_props and
 * handed to librdkafka as they are by the Kafka sink.
 */
#ifndef EF_CONFIG_H
#define EF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define EF_PATH_MAX 4096
#define EF_TEXT_MAX 1024       /* longest value of a text key (URLs, names) */
#define EF_KAFKA_PROPS_MAX 64  /* kafka.PROPERTY lines kept */

/* One `kafka.PROPERTY = VALUE` line: name without the "kafka." prefix. */
struct ef_config_prop {
    char name[128];
    char value[EF_TEXT_MAX];
};

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
    int max_waiting;
    int send_timeout_seconds;
    char nats_url[EF_TEXT_MAX];
    char nats_stream[EF_TEXT_MAX];
    int nats_replicas;
    char nats_subject_prefix[EF_TEXT_MAX];
    char kafka_brokers[EF_TEXT_MAX];
    char kafka_topic[EF_TEXT_MAX];
    /* kafka.PROPERTY lines in file order; a property given twice keeps the later value. */
    struct ef_config_prop kafka_props[EF_KAFKA_PROPS_MAX];
    int kafka_nprops;
};

/* Fills cfg with the built-in defaults. */
void ef_config_defaults(struct ef_config *cfg);
/* Reads path into cfg. Returns 0, or a negative errno value (-EINVAL for a bad line, else
 * why the file could not be read) with a one-line message in err
 * ("FILE:LINE: unknown key 'x'"). */
int ef_config_load(struct ef_config *cfg, const char *path, char *err, size_t errlen);
/* Sets one key from its text form, as the file and flags do. Returns 0 or -EINVAL with err
 * set. */
int ef_config_set(struct ef_config *cfg, const char *key, const char *value, char *err, size_t errlen);

#endif
