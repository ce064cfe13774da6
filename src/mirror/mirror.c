#include <config.h>

#include "mirror/mirror.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "mirror/mcheck.h"
#include "mirror/mnats.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "util/lockfile.h"
#include "util/path.h"
#include "util/replica.h"

/* A batch ends when the client holds no more messages, or at these limits: each batch is
 * one fdatasync, and the next batch is taken only after it. */
#define BATCH_EVENTS 4096
#define BATCH_BYTES (8u << 20)
#define WAIT_MS 250             /* longest wait for a message: how soon SIGTERM is seen */
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
#define STATE_EVERY_NS 200000000ull /* mirror.state at most this often while busy */
#define STATE_IDLE_NS 1000000000ull /* and at least this often while idle */

struct mirror {
    const struct mirror_options *opt;
    const struct ef_config *cfg;
    struct log *lg;
    struct mnats *mn;
    struct mcheck mc;
    int lock_fd;
    uint64_t next;        /* the position the next message must carry: log head + 1 */
    uint32_t head_crc;    /* CRC32C of the record at next - 1 (when next > 1) */
    uint64_t stream_last; /* the stream's last sequence, as the newest message told */
    int subscribed;
    int followed;         /* 1 once following has been logged */
    int backoff_ms;
    char waiting[256];    /* why the mirror waits, as last logged ("" while following) */
    uint64_t state_ns;    /* when mirror.state was last written */
    uint64_t state_pos;
    int state_caught_up;  /* the last mirror.state written said position == stream_last */
    char *err;
    size_t errlen;
};

static int stopped(const struct mirror *m)
{
    return m->opt->stop && *m->opt->stop;
}

/* ---- the data directory ------------------------------------------------------------- */

static int take_lock(struct mirror *m)
{
    char path[EF_PATH_MAX + 32];
    if (ef_path_join(path, sizeof path, m->cfg->data_dir, "mirror.lock")) {
        snprintf(m->err, m->errlen, "data directory path too long");
        return MIRROR_EREFUSED;
    }
    int rc = ef_lock_file(path, 1, &m->lock_fd);
    if (rc == -EWOULDBLOCK) {
        snprintf(m->err, m->errlen, "another eventfold-mirror runs on %s (%s is locked)",
                 m->cfg->data_dir, path);
        return MIRROR_EREFUSED;
    }
    if (rc) {
        snprintf(m->err, m->errlen, "cannot open %s: %s", path, strerror(-rc));
        return MIRROR_EREFUSED;
    }
    return 0;
}

/* The head of an existing log without changing it (0 when there is no log yet). */
static int existing_head(struct mirror *m, uint64_t *head)
{
    char path[EF_PATH_MAX + 16];
    struct stat st;
    *head = 0;
    if (ef_path_join(path, sizeof path, m->cfg->data_dir, "log")) {
        snprintf(m->err, m->errlen, "data directory path too long");
        return MIRROR_EREFUSED;
    }
    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : (snprintf(m->err, m->errlen, "cannot stat %s: %s", path,
                                               strerror(errno)), MIRROR_EREFUSED);
    struct log_options lo = { .read_only = 1 };
    struct log *lg = NULL;
    if (log_open(path, &lo, &lg) != 0) {
        snprintf(m->err, m->errlen, "cannot open the log: %s", log_last_error(NULL));
        return MIRROR_ELOG;
    }
    *head = log_head(lg);
    log_close(lg);
    return 0;
}

/* Marks the directory as a replica of the configured stream, or refuses it. */
static int claim_dir(struct mirror *m)
{
    const char *dir = m->cfg->data_dir;
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        snprintf(m->err, m->errlen, "cannot create the data directory %s: %s", dir, strerror(errno));
        return MIRROR_EREFUSED;
    }
    int rc = take_lock(m);
    if (rc)
        return rc;
    char stream[REPLICA_STREAM_MAX];
    rc = replica_marker_read(dir, stream, sizeof stream);
    if (rc < 0) {
        snprintf(m->err, m->errlen, "cannot read %s/%s: %s", dir, REPLICA_MARKER, strerror(-rc));
        return MIRROR_EREFUSED;
    }
    if (rc == 1) {
        if (strcmp(stream, m->cfg->nats_stream) == 0)
            return 0;
        snprintf(m->err, m->errlen, "%s is a replica of the stream '%s', not of '%s' (nats_stream)",
                 dir, stream, m->cfg->nats_stream);
        return MIRROR_EREFUSED;
    }
    uint64_t head;
    if ((rc = existing_head(m, &head)) != 0)
        return rc;
    if (head > 0) {
        snprintf(m->err, m->errlen,
                 "%s holds a log written by commands (head %" PRIu64 ") and is not a replica: "
                 "a replica starts from an empty data directory",
                 dir, head);
        return MIRROR_EREFUSED;
    }
    if (strlen(m->cfg->nats_stream) >= REPLICA_STREAM_MAX ||
        (rc = replica_marker_write(dir, m->cfg->nats_stream)) != 0) {
        snprintf(m->err, m->errlen, "cannot write %s/%s: %s", dir, REPLICA_MARKER,
                 rc ? strerror(-rc) : "stream name too long");
        return MIRROR_EREFUSED;
    }
    EFLOG_INFO("event=replica_marked dir=%s stream=%s", dir, m->cfg->nats_stream);
    return 0;
}

/* The CRC32C of the replica's record at pos, as the relay states it for the same record. */
static int record_crc_at(struct mirror *m, uint64_t pos, uint32_t *crc)
{
    struct log_reader *rd = NULL;
    struct log_record rec;
    int rc = log_reader_open(m->lg, pos, &rd);
    if (rc == 0)
        rc = log_reader_next(rd, log_head(m->lg), &rec);
    if (rc == 1 && rec.position == pos) {
        struct log_event ev = {
            .stream = rec.stream, .stream_len = rec.stream_len, .type = rec.type,
            .type_len = rec.type_len, .schema_version = rec.schema_version,
            .stream_version = rec.stream_version, .timestamp_ms = rec.timestamp_ms,
            .meta = rec.meta, .meta_len = rec.meta_len, .data = rec.data, .data_len = rec.data_len,
        };
        rc = mcheck_record_crc(&m->mc, &ev, pos, crc);
    } else {
        snprintf(m->err, m->errlen, "cannot read the replica's record at position %" PRIu64 ": %s",
                 pos, rc < 0 ? log_last_error(m->lg) : "not found");
        rc = MIRROR_ELOG;
    }
    log_reader_close(rd);
    return rc;
}

static int open_log(struct mirror *m)
{
    char path[EF_PATH_MAX + 16];
    if (ef_path_join(path, sizeof path, m->cfg->data_dir, "log")) {
        snprintf(m->err, m->errlen, "data directory path too long");
        return MIRROR_ELOG;
    }
    struct log_options lo = { .segment_bytes = m->cfg->segment_bytes };
    if (log_open(path, &lo, &m->lg) != 0) {
        snprintf(m->err, m->errlen, "cannot open the log: %s", log_last_error(NULL));
        return MIRROR_ELOG;
    }
    m->next = log_head(m->lg) + 1;
    m->stream_last = m->next - 1;
    if (m->next > 1)
        return record_crc_at(m, m->next - 1, &m->head_crc);
    return 0;
}

/* ---- progress and waiting ----------------------------------------------------------- */

static void write_state(struct mirror *m, int force)
{
    uint64_t now = ef_mono_ns();
    uint64_t pos = m->next - 1;
    if (!force && now - m->state_ns < (pos != m->state_pos ? STATE_EVERY_NS : STATE_IDLE_NS))
        return;
    struct replica_state st = {
        .position = pos,
        .stream_last = m->stream_last,
        .pid = getpid(),
        .time_ms = ef_now_ms(),
    };
    snprintf(st.stream, sizeof st.stream, "%.*s", (int)sizeof st.stream - 1, m->cfg->nats_stream);
    int rc = replica_state_write(m->cfg->data_dir, &st);
    if (rc && m->state_ns == 0)
        EFLOG_WARN("event=state_not_written file=%s/%s error=\"%s\"", m->cfg->data_dir, REPLICA_STATE,
                 strerror(-rc));
    m->state_ns = now;
    m->state_pos = pos;
    m->state_caught_up = pos == m->stream_last;
}

/* Logs why the mirror waits, once per reason (a retry with the same reason is silent). */
static void set_waiting(struct mirror *m, const char *why)
{
    if (strcmp(m->waiting, why) != 0) {
        EFLOG_WARN("event=mirror_waiting position=%" PRIu64 " reason=\"%s\"", m->next, why);
        snprintf(m->waiting, sizeof m->waiting, "%s", why);
    }
}

static void set_following(struct mirror *m)
{
    if (m->waiting[0] || !m->followed)
        EFLOG_INFO("event=mirror_following stream=%s from=%" PRIu64, m->cfg->nats_stream, m->next);
    m->waiting[0] = '\0';
    m->followed = 1;
    m->backoff_ms = 0;
}

/* Sleeps the backoff (a signal cuts it short), then doubles it. */
static void back_off(struct mirror *m)
{
    m->backoff_ms = m->backoff_ms ? m->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (m->backoff_ms > BACKOFF_MAX_MS)
        m->backoff_ms = BACKOFF_MAX_MS;
    struct timespec ts = { m->backoff_ms / 1000, (long)(m->backoff_ms % 1000) * 1000000L };
    if (!stopped(m))
        nanosleep(&ts, NULL);
}

/* ---- following the stream ------------------------------------------------------------ */

/* Before following: the stream's message at the replica's head must be the replica's last
 * record (a stream recreated from another log would otherwise be spliced on silently). */
static int check_head(struct mirror *m)
{
    if (m->next == 1)
        return 0;
    char crc[16], want[16], why[256];
    int rc = mnats_lookup(m->mn, m->next - 1, crc, sizeof crc, why, sizeof why);
    if (rc < 0) {
        set_waiting(m, why);
        return MNATS_ERETRY;
    }
    if (rc == 0)
        return 0; /* the stream lost it: the relay publishes it again from the log */
    snprintf(want, sizeof want, "%08" PRIx32, m->head_crc);
    if (strcmp(crc, want) != 0) {
        snprintf(m->err, m->errlen,
                 "the stream's message at position %" PRIu64 " disagrees with the replica's "
                 "log: its Eventfold-Crc32c is '%s', the record's CRC32C %s",
                 m->next - 1, crc, want);
        return MIRROR_EDISAGREE;
    }
    return 0;
}

static int subscribe(struct mirror *m)
{
    int rc = check_head(m);
    if (rc)
        return rc;
    char why[512];
    rc = mnats_subscribe(m->mn, m->next, why, sizeof why);
    if (rc) {
        set_waiting(m, why);
        return rc;
    }
    m->subscribed = 1;
    set_following(m);
    return 0;
}

/* A message came past the expected position. The stream may still hold the missing one
 * (a message lost between server and client): then follow again from it. If the stream
 * does not hold it, the log cannot be copied further: stop. */
static int confirm_gap(struct mirror *m, const char *gap)
{
    char crc[16], why[256];
    int rc = mnats_lookup(m->mn, m->next, crc, sizeof crc, why, sizeof why);
    m->subscribed = 0;
    if (rc == 0) {
        snprintf(m->err, m->errlen, "%s", gap);
        return MIRROR_EGAP;
    }
    if (rc < 0)
        set_waiting(m, why);
    else
        EFLOG_WARN("event=delivery_gap position=%" PRIu64 " note=\"the stream holds it: following "
                 "again from it\"", m->next);
    return 0;
}

/* One message into the open append: 0 appended or dropped (a redelivery), MIRROR_EGAP
 * (err holds the gap), or a fatal code. */
static int append_one(struct mirror *m, const struct mirror_msg *msg)
{
    if (msg->seq < m->next)
        return 0; /* already in the replica's log */
    struct log_event ev;
    int rc = mcheck_rebuild(&m->mc, msg, m->next, &ev, m->err, m->errlen);
    if (rc)
        return rc;
    uint64_t pos = 0;
    rc = log_append_record(m->lg, &ev, &pos);
    if (rc) {
        snprintf(m->err, m->errlen, "cannot append position %" PRIu64 ": %s", m->next,
                 log_last_error(m->lg));
        return MIRROR_ELOG;
    }
    if (pos != m->next) {
        snprintf(m->err, m->errlen,
                 "the replica's log gave position %" PRIu64 " to the record of position %" PRIu64
                 " (does something else append to it?)", pos, m->next);
        return MIRROR_ELOG;
    }
    m->head_crc = m->mc.crc;
    m->next++;
    return 0;
}

/* Appends first and whatever else the client already holds (up to the batch limits) under
 * one append lock, then makes them durable with one fdatasync. */
static int take_batch(struct mirror *m, const struct mirror_msg *first, uint64_t last)
{
    uint64_t start = m->next;
    int rc = log_append_begin(m->lg);
    if (rc) {
        snprintf(m->err, m->errlen, "cannot lock the log: %s", log_last_error(m->lg));
        return MIRROR_ELOG;
    }
    m->stream_last = last;
    rc = append_one(m, first);
    size_t events = 1, bytes = first->body_len;
    while (rc == 0 && events < BATCH_EVENTS && bytes < BATCH_BYTES) {
        struct mirror_msg msg;
        char why[256];
        int got = mnats_next(m->mn, 0, &msg, &last, why, sizeof why);
        if (got <= 0) {
            if (got < 0) {
                set_waiting(m, why);
                m->subscribed = 0;
            }
            break;
        }
        m->stream_last = last;
        rc = append_one(m, &msg);
        events++;
        bytes += msg.body_len;
    }
    log_append_end(m->lg);
    mnats_release(m->mn);
    /* What was appended before a gap or a disagreement is good: made durable all the same. */
    if (m->next > start && log_sync(m->lg, m->next - 1) != 0) {
        snprintf(m->err, m->errlen, "cannot sync the log up to position %" PRIu64 ": %s",
                 m->next - 1, log_last_error(m->lg));
        return MIRROR_ELOG;
    }
    /* Catching up is said at once (status and lag read it); otherwise, and while it stays
     * caught up, mirror.state is rewritten at most every 200 ms. */
    write_state(m, m->next - 1 == m->stream_last && !m->state_caught_up);
    if (rc == MIRROR_EGAP) {
        char gap[512];
        snprintf(gap, sizeof gap, "%s", m->err);
        m->err[0] = '\0';
        return confirm_gap(m, gap);
    }
    return rc;
}

static int follow(struct mirror *m)
{
    while (!stopped(m)) {
        if (!m->subscribed) {
            int rc = subscribe(m);
            if (rc == MIRROR_EDISAGREE)
                return rc;
            if (rc) {
                write_state(m, 0);
                back_off(m);
                continue;
            }
        }
        struct mirror_msg msg;
        uint64_t last = 0;
        char why[256];
        int got = mnats_next(m->mn, WAIT_MS, &msg, &last, why, sizeof why);
        if (got < 0) {
            set_waiting(m, why);
            m->subscribed = 0;
            back_off(m);
            continue;
        }
        if (got == 0) {
            write_state(m, 0);
            continue;
        }
        if (m->waiting[0])
            set_following(m);
        int rc = take_batch(m, &msg, last);
        if (rc)
            return rc;
    }
    return 0;
}

int mirror_run(const struct mirror_options *opt, char *err, size_t errlen)
{
    struct mirror m = {
        .opt = opt, .cfg = opt->cfg, .lock_fd = -1, .err = err, .errlen = errlen,
    };
    err[0] = '\0';
    int rc = claim_dir(&m);
    if (rc == 0)
        rc = open_log(&m);
    if (rc == 0) {
        rc = mnats_open(m.cfg, &m.mn, err, errlen);
        if (rc)
            rc = MIRROR_EREFUSED;
    }
    if (rc == 0) {
        EFLOG_INFO("event=mirror_start dir=%s stream=%s head=%" PRIu64 " servers=\"%s\"",
                 m.cfg->data_dir, m.cfg->nats_stream, m.next - 1, m.cfg->nats_url);
        write_state(&m, 1);
        rc = follow(&m);
        write_state(&m, 1);
    }
    if (rc == 0)
        EFLOG_INFO("event=mirror_stop position=%" PRIu64, m.next - 1);
    mnats_close(m.mn);
    mcheck_free(&m.mc);
    log_close(m.lg);
    ef_unlock_file(m.lock_fd);
    return rc;
}
