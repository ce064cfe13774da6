/* Tailer tests against a real log in a temp dir: catch-up, a tailer killed with SIGKILL in
 * the middle of a large catch-up then resumed ends byte-identical to a model built from
 * scratch, the tailer stops on a damaged record, and snapshots. */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "readmodel/rdir.h"
#include "fold/rebuild.h"
#include "readmodel/rmodel.h"
#include "readmodel/rmodel_dlq.h"
#include "readmodel/rmodel_env.h"
#include "readmodel/rmodel_fold.h"
#include "readmodel/rmodel_internal.h"
#include "readmodel/rmodel_query.h"
#include "readmodel/rpos.h"
#include "readmodel/rsnap.h"
#include "fold/tailer.h"
#include "testdir.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "util/sbuf.h"
#include "util/snapdir.h"

static char tmpdir[TD_PATH_MAX];

static void setup(void)
{
    td_setup();
    strcpy(tmpdir, td_dir);
}

static void log_dir(char *out, size_t n) { snprintf(out, n, "%s/log", tmpdir); }

/* Appends one event under the held append lock. */
static void append(struct log *lg, const char *stream, uint64_t ver, const char *type, int schema,
                   const char *data)
{
    struct log_event ev = { stream, strlen(stream), type, strlen(type), (uint16_t)schema, ver,
                            1767261600000LL + (int64_t)ver * 1000, "{}", 2, data, strlen(data) };
    uint64_t pos;
    int rc = log_append_record(lg, &ev, &pos);
    ck_assert_msg(rc == 0, "append: %s", log_strerror(rc));
}

/* A log of about n events: users, items, then orders through every transition. Returns
 * the durable head. */
static uint64_t build_log(unsigned n, uint64_t segment_bytes)
{
    char dir[128], stream[64], data[512];
    log_dir(dir, sizeof dir);
    struct log *lg;
    struct log_options lo = { .segment_bytes = segment_bytes };
    ck_assert_int_eq(log_open(dir, &lo, &lg), 0);
    ck_assert_int_eq(log_append_begin(lg), 0);
    for (int i = 0; i < 10; i++) {
        snprintf(stream, sizeof stream, "user-u%d", i);
        snprintf(data, sizeof data, "{\"user_id\":\"u%d\",\"name\":\"User %d\",\"email\":null}", i, i);
        append(lg, stream, 1, "UserRegistered", 1, data);
        snprintf(data, sizeof data, "{\"user_id\":\"u%d\",\"amount_cents\":100000000,\"balance_cents\":100000000}", i);
        append(lg, stream, 2, "FundsDeposited", 1, data);
        snprintf(stream, sizeof stream, "item-i%d", i);
        snprintf(data, sizeof data, "{\"item_id\":\"i%d\",\"name\":\"Item %d\",\"category\":\"c%d\",\"price_cents\":%d}",
                 i, i, i % 3, 100 + i);
        append(lg, stream, 1, "ItemAdded", 1, data);
        snprintf(data, sizeof data, "{\"item_id\":\"i%d\",\"quantity\":1000000,\"available\":1000000}", i);
        append(lg, stream, 2, "ItemRestocked", 1, data);
    }
    static const char *const next[] = { "PaymentProcessed", "OrderShipped", "OrderDelivered" };
    unsigned count = 40;
    for (unsigned k = 0; count < n; k++) {
        int u = (int)(k % 10), it = (int)(k % 7);
        snprintf(stream, sizeof stream, "order-o%u", k);
        snprintf(data, sizeof data,
                 "{\"order_id\":\"o%u\",\"user_id\":\"u%d\",\"lines\":[{\"item_id\":\"i%d\",\"name\":\"Item %d\","
                 "\"category\":\"c%d\",\"quantity\":2,\"price_cents\":%d}],\"amount_cents\":%d}",
                 k, u, it, it, it % 3, 100 + it, 2 * (100 + it));
        append(lg, stream, 1, "OrderCreated", 2, data);
        count++;
        unsigned steps = k % 5; /* 0: stays created, 4: cancelled after payment */
        for (unsigned s = 0; s < steps && s < 3 && count < n; s++, count++) {
            snprintf(data, sizeof data,
                     "{\"order_id\":\"o%u\",\"user_id\":\"u%d\",\"amount_cents\":%d,\"balance_cents\":0}",
                     k, u, 2 * (100 + it));
            append(lg, stream, 2 + s, next[s], 1, data);
        }
        if (steps == 4 && count < n) {
            /* k%5==4 ran pay, ship, deliver above: a fresh order for a cancellation. */
            snprintf(stream, sizeof stream, "order-c%u", k);
            char cdata[512];
            snprintf(cdata, sizeof cdata,
                     "{\"order_id\":\"c%u\",\"user_id\":\"u%d\",\"lines\":[{\"item_id\":\"i%d\",\"name\":\"Item %d\","
                     "\"category\":\"c%d\",\"quantity\":1,\"price_cents\":%d}],\"amount_cents\":%d}",
                     k, u, it, it, it % 3, 100 + it, 100 + it);
            append(lg, stream, 1, "OrderCreated", 2, cdata);
            count++;
            snprintf(data, sizeof data,
                     "{\"order_id\":\"c%u\",\"user_id\":\"u%d\",\"reason\":null,\"refunded_cents\":0,"
                     "\"previous_status\":\"created\"}", k, u);
            if (count < n) {
                append(lg, stream, 2, "OrderCancelled", 1, data);
                count++;
            }
        }
    }
    log_append_end(lg);
    uint64_t head = log_head(lg);
    ck_assert_int_eq(log_sync(lg, head), 0);
    log_close(lg);
    return head;
}

static int run_tailer(const char *data_dir, int once, uint64_t max_records)
{
    struct tailer_options opt = { .data_dir = data_dir, .map_bytes = 256u << 20, .once = once,
                                  .max_records = max_records };
    return tailer_run(&opt);
}

static uint64_t model_position(const char *data_dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/read/current", data_dir);
    struct rmodel_env *env;
    struct rmodel_options ro = { 256u << 20, 1 };
    ck_assert_int_eq(rmodel_env_open(path, &ro, &env), 0);
    struct rmodel_txn *t;
    uint64_t pos;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    ck_assert_int_eq(rmodel_position(t, &pos), 0);
    rmodel_txn_abort(t);
    rmodel_env_close(env);
    return pos;
}

/* Every key and value of every dbi, in order, as one byte string. */
static void dump_model(const char *model_dir, struct sbuf *out)
{
    struct rmodel_env *env;
    struct rmodel_options ro = { 256u << 20, 1 };
    ck_assert_int_eq(rmodel_env_open(model_dir, &ro, &env), 0);
    struct rmodel_txn *t;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    for (int i = 0; i < RMODEL_DB_COUNT; i++) {
        MDB_cursor *c;
        ck_assert_int_eq(mdb_cursor_open(t->txn, env->dbi[i], &c), 0);
        MDB_val k, v;
        sbuf_printf(out, "[%s]", rmodel_dbi_names[i]);
        int rc;
        for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            sbuf_printf(out, "%zu:", k.mv_size);
            sbuf_append(out, k.mv_data, k.mv_size);
            sbuf_printf(out, "%zu:", v.mv_size);
            sbuf_append(out, v.mv_data, v.mv_size);
        }
        ck_assert_int_eq(rc, MDB_NOTFOUND);
        mdb_cursor_close(c);
    }
    rmodel_txn_abort(t);
    rmodel_env_close(env);
}

/* A model built from scratch: every record of the log folded in one transaction (dead
 * letters included). */
static void build_reference(const char *model_dir)
{
    char dir[128];
    log_dir(dir, sizeof dir);
    struct log *lg;
    struct log_options lo = { .read_only = 1 };
    ck_assert_int_eq(log_open(dir, &lo, &lg), 0);
    struct log_reader *rd;
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    struct rmodel_env *env;
    struct rmodel_options ro = { 256u << 20, 0 };
    ck_assert_int_eq(rmodel_env_open(model_dir, &ro, &env), 0);
    struct rmodel_txn *t;
    ck_assert_int_eq(rmodel_txn_begin(env, 0, &t), 0);
    struct log_record rec;
    uint64_t pos = 0;
    while (log_reader_next(rd, log_durable(lg), &rec) == 1) {
        ck_assert_int_ge(rmodel_fold(t, &rec), 0); /* 1: a dead letter */
        pos = rec.position;
    }
    ck_assert_int_eq(rmodel_set_position(t, pos), 0);
    ck_assert_int_eq(rmodel_txn_commit(t), 0);
    rmodel_env_close(env);
    log_reader_close(rd);
    log_close(lg);
}

/* The model in directory dir has the rows of one transaction folding the whole log. */
static void assert_model_same_as_reference(const char *dir)
{
    char ref[128];
    snprintf(ref, sizeof ref, "%s/reference", tmpdir);
    if (mkdir(ref, 0755) == 0) /* built once per test */
        build_reference(ref);
    else
        ck_assert_int_eq(errno, EEXIST);
    struct sbuf a = SBUF_INIT, b = SBUF_INIT;
    dump_model(ref, &a);
    dump_model(dir, &b);
    ck_assert_uint_gt(a.len, 1000);
    ck_assert_uint_eq(a.len, b.len);
    ck_assert_msg(memcmp(a.data, b.data, a.len) == 0, "models differ");
    sbuf_free(&a);
    sbuf_free(&b);
}

static void assert_same_as_reference(void)
{
    char cur[128];
    snprintf(cur, sizeof cur, "%s/read/current", tmpdir);
    assert_model_same_as_reference(cur);
}

START_TEST(test_catch_up_once)
{
    uint64_t head = build_log(3000, 64 << 10); /* several segments */
    ck_assert_int_eq(run_tailer(tmpdir, 1, 0), 0);
    ck_assert_uint_eq(model_position(tmpdir), head);
    /* The published position matches the model. */
    char path[128];
    snprintf(path, sizeof path, "%s/read/position", tmpdir);
    struct rpos *rp;
    ck_assert_int_eq(rpos_open(path, &rp), 0);
    ck_assert_uint_eq(rpos_position(rp), head);
    rpos_close(rp);
    assert_same_as_reference();
}
END_TEST

START_TEST(test_resume_after_partial_run)
{
    uint64_t head = build_log(5000, 0);
    ck_assert_int_eq(run_tailer(tmpdir, 1, 1234), 0); /* stops after 1234 records */
    ck_assert_uint_eq(model_position(tmpdir), 1234);
    ck_assert_int_eq(run_tailer(tmpdir, 1, 0), 0);
    ck_assert_uint_eq(model_position(tmpdir), head);
    assert_same_as_reference();
}
END_TEST

START_TEST(test_kill9_mid_catch_up)
{
    uint64_t head = build_log(30000, 1 << 20);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        eflog_set_level(EF_ERROR);
        /* Small batches: many commits, so the kill lands between two of them. */
        struct tailer_options opt = { .data_dir = tmpdir, .map_bytes = 256u << 20, .once = 1,
                                      .batch_max = 2000 };
        _exit(tailer_run(&opt) == 0 ? 0 : 1);
    }
    /* Wait (bounded) until the child committed a few batches, then kill it mid-stream. */
    char path[128];
    snprintf(path, sizeof path, "%s/read/position", tmpdir);
    struct rpos *rp = NULL;
    uint64_t seen = 0;
    for (int i = 0; i < 2000 && seen == 0; i++) {
        if (!rp && access(path, F_OK) == 0)
            ck_assert_int_eq(rpos_open(path, &rp), 0);
        if (rp) {
            rpos_wait(rp, 0, 10);
            seen = rpos_position(rp);
        } else {
            usleep(5000);
        }
    }
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    rpos_close(rp);
    uint64_t mid = model_position(tmpdir);
    ck_assert_msg(mid > 0 && mid < head, "killed at %" PRIu64 " of %" PRIu64, mid, head);
    ck_assert_int_eq(run_tailer(tmpdir, 1, 0), 0);
    ck_assert_uint_eq(model_position(tmpdir), head);
    assert_same_as_reference();
}
END_TEST

START_TEST(test_stops_on_damage)
{
    build_log(2000, 32 << 10);
    /* Flip one byte inside the data of a record in the second segment (sealed). */
    char dir[128], path[512];
    log_dir(dir, sizeof dir);
    FILE *ls;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep '\\.seg$' | sort | sed -n 2p", dir);
    ck_assert_ptr_nonnull(ls = popen(cmd, "r"));
    char name[64] = "";
    ck_assert_ptr_nonnull(fgets(name, sizeof name, ls));
    pclose(ls);
    name[strcspn(name, "\n")] = '\0';
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, 100), 1);
    b ^= 0x20;
    ck_assert_int_eq(pwrite(fd, &b, 1, 100), 1);
    close(fd);
    int rc = run_tailer(tmpdir, 1, 0);
    ck_assert_msg(rc == TAILER_EDAMAGE || rc == LOG_ECORRUPT, "rc=%d %s", rc, tailer_strerror(rc));
    uint64_t first = strtoull(name, NULL, 10);
    char model[256];
    snprintf(model, sizeof model, "%s/read/current/data.mdb", tmpdir);
    if (access(model, F_OK) == 0) /* the model never passes the damaged record */
        ck_assert_uint_lt(model_position(tmpdir), first + 1);
}
END_TEST

/* Runs the tailer for `records` more records with snapshots every `every`. */
static void fold_some(uint64_t records, uint64_t every)
{
    struct tailer_options opt = { .data_dir = tmpdir, .map_bytes = 256u << 20, .once = 1,
                                  .snapshot_every = every, .snapshot_keep = 2, .max_records = records };
    ck_assert_int_eq(tailer_run(&opt), 0);
}

START_TEST(test_snapshot_take_and_verify)
{
    uint64_t head = build_log(3000, 0);
    fold_some(1000, 1000);
    fold_some(1000, 1000);
    fold_some(1000, 1000);
    struct snapshot_info list[8];
    size_t n;
    ck_assert_int_eq(rsnap_list(tmpdir, list, 8, &n), 0);
    ck_assert_uint_eq(n, 2); /* at 1000, 2000 and 3000; the 2 newest kept */
    ck_assert_uint_eq(list[0].position, head);
    ck_assert_uint_eq(list[1].position, 2000);
    ck_assert_int_eq(rsnap_verify(tmpdir, &list[0]), 0);
    /* Damage the newest: verification fails, the older one is still good. */
    char path[512];
    snprintf(path, sizeof path, "%s/read/snapshots/%s/data.mdb", tmpdir, list[0].name);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "X", 1, 5000), 1);
    close(fd);
    ck_assert_int_eq(rsnap_verify(tmpdir, &list[0]), -EBADMSG);
    ck_assert_int_eq(rsnap_verify(tmpdir, &list[1]), 0);
}
END_TEST

/* The fold goes on while a snapshot is copied: the first copy (held back by the test seam)
 * waits until the tailer has folded the whole log, which it can only do if the loop does
 * not wait for the copy. With a copy inside the fold loop this would wait in vain. The
 * condition does not depend on when the copy's thread gets to run. */
static _Atomic uint64_t folded_to, fold_target;
static _Atomic int fold_went_on;

static void record_progress(uint64_t position, uint64_t head, void *arg)
{
    (void)head;
    (void)arg;
    atomic_store(&folded_to, position);
}

static void hold_first_copy(void)
{
    static _Atomic int calls;
    if (atomic_fetch_add(&calls, 1) != 0)
        return;
    for (int i = 0; i < 3000; i++) { /* at most 30 s */
        if (atomic_load(&folded_to) >= atomic_load(&fold_target)) {
            atomic_store(&fold_went_on, 1);
            return;
        }
        usleep(10000);
    }
}

START_TEST(test_snapshot_beside_the_fold)
{
    uint64_t head = build_log(3000, 0);
    atomic_store(&fold_target, head);
    rsnap_job_before_copy = hold_first_copy;
    struct tailer_options opt = { .data_dir = tmpdir, .map_bytes = 256u << 20, .once = 1,
                                  .snapshot_every = 500, .snapshot_keep = 3, .batch_max = 50,
                                  .progress = record_progress };
    ck_assert_int_eq(tailer_run(&opt), 0);
    rsnap_job_before_copy = NULL;
    ck_assert_msg(atomic_load(&fold_went_on), "folding waited for the snapshot copy");
    ck_assert_uint_eq(model_position(tmpdir), head);
    struct snapshot_info list[8];
    size_t n;
    ck_assert_int_eq(rsnap_list(tmpdir, list, 8, &n), 0);
    ck_assert_uint_ge(n, 1);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(rsnap_verify(tmpdir, &list[i]), 0);
    /* The held copy started at or after position 500 and holds what it read then. */
    ck_assert_uint_ge(list[n - 1].position, 500);
}
END_TEST

/* `eventfoldctl snapshot` takes read-model snapshots in a process of its own. The tailer
 * counts its interval from the newest snapshot in the directory, not from its own last
 * one, so it does not copy the model again soon after one. The outside snapshot here is a
 * manifest alone (listing snapshots reads only manifests), made once the fold passes 1500.
 * From 1900 on the fold is paced (20 ms per batch of 50), so that a copy holds about the
 * position at which it was started: one started at 2000, where the tailer's own count
 * would start it, would hold less than 2500. */
static int outside_made;

static void snapshot_from_outside(uint64_t position, uint64_t head, void *arg)
{
    (void)head;
    (void)arg;
    if (position >= 1900)
        usleep(20000);
    if (outside_made || position < 1500)
        return;
    outside_made = 1;
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/read/snapshots/snap-%020d", tmpdir, 1500);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/manifest", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "eventfold-snapshot 1\nposition 1500\ntaken_at 0\nbytes 0\ncrc32c 0\n");
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_snapshot_interval_counts_from_newest)
{
    uint64_t head = build_log(3000, 0);
    fold_some(1000, 1000); /* the tailer's own snapshot at 1000 */
    outside_made = 0;
    struct tailer_options opt = { .data_dir = tmpdir, .map_bytes = 256u << 20, .once = 1,
                                  .snapshot_every = 1000, .snapshot_keep = 3, .batch_max = 50,
                                  .progress = snapshot_from_outside };
    ck_assert_int_eq(tailer_run(&opt), 0);
    ck_assert_int_eq(outside_made, 1);
    ck_assert_uint_eq(model_position(tmpdir), head);
    struct snapshot_info list[8];
    size_t n;
    ck_assert_int_eq(rsnap_list(tmpdir, list, 8, &n), 0);
    /* Newest first: the tailer's next one, started once 1500 + 1000 was reached; the outside
     * one; the tailer's first. None between them. */
    ck_assert_uint_eq(n, 3);
    ck_assert_msg(list[0].position >= 2500, "a snapshot at %" PRIu64 ", before 1500 + 1000",
                  list[0].position);
    ck_assert_uint_eq(list[1].position, 1500);
    ck_assert_uint_eq(list[2].position, 1000);
}
END_TEST

/* DIR/read holds one model directory: the current one (nothing replaced or unfinished left). */
static void assert_one_model_dir(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test $(ls -d '%s'/read/model-* | wc -l) -eq 1", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static void rebuild(int from_scratch, uint64_t want_from)
{
    struct rebuild_options ro = { .data_dir = tmpdir, .map_bytes = 256u << 20, .from_scratch = from_scratch };
    struct rebuild_result res;
    ck_assert_int_eq(rebuild_run(&ro, &res), 0);
    ck_assert_uint_eq(res.from_position, want_from);
    assert_same_as_reference();
}

START_TEST(test_rebuild_scratch_snapshot_fallback)
{
    uint64_t head = build_log(3000, 64 << 10);
    fold_some(1500, 1500); /* snapshot at 1500 (the run stops there) */
    fold_some(0, 1500);    /* to the head: snapshot at 3000 */
    ck_assert_uint_eq(model_position(tmpdir), head);
    rebuild(1, 0);     /* from scratch */
    rebuild(0, head);  /* from the newest snapshot */
    /* Damage the newest snapshot: the rebuild falls back to the one at 1500. */
    char path[512];
    snprintf(path, sizeof path, "%s/read/snapshots/snap-%020" PRIu64 "/data.mdb", tmpdir, head);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "X", 1, 4096 + 100), 1);
    close(fd);
    rebuild(0, 1500);
    /* Only the current model directory is left. */
    assert_one_model_dir();
}
END_TEST

/* Writes DIR/read/current/unsynced as a tailer of another boot would have left it. */
static void plant_foreign_marker(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/read/current/%s", tmpdir, RMODEL_UNSYNCED_FILE);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("00000000-0000-0000-0000-000000000000", f);
    ck_assert_int_eq(fclose(f), 0);
}

/* Lazy sync (rmodel_env.h): a clean exit leaves no marker; a marker of this boot (a killed tailer)
 * is trusted; a marker of another boot (the machine went down with unsynced commits) makes
 * every open refuse the model, and the next tailer replaces it with the newest snapshot and
 * folds on to a model identical to one built from scratch. */
START_TEST(test_unsynced_model_after_machine_crash)
{
    uint64_t head = build_log(3000, 0);
    fold_some(1500, 1500); /* snapshot at 1500 */
    char marker[256];
    snprintf(marker, sizeof marker, "%s/read/current/%s", tmpdir, RMODEL_UNSYNCED_FILE);
    ck_assert_int_eq(access(marker, F_OK), -1); /* synced on close */
    plant_foreign_marker();
    char cur[128];
    snprintf(cur, sizeof cur, "%s/read/current", tmpdir);
    struct rmodel_env *env;
    struct rmodel_options ro = { 256u << 20, 1 };
    ck_assert_int_eq(rmodel_env_open(cur, &ro, &env), RMODEL_EUNSYNCED);
    fold_some(0, 0);
    ck_assert_uint_eq(model_position(tmpdir), head);
    assert_same_as_reference();
    ck_assert_int_eq(access(marker, F_OK), -1);
    /* The damaged model was replaced, not kept beside the new one. */
    assert_one_model_dir();
}
END_TEST

/* Stores layout version f in the model of directory dir, as another release would have. */
static void set_format(const char *dir, unsigned char f)
{
    MDB_env *e;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&e), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(e, 32), 0);
    ck_assert_int_eq(mdb_env_set_mapsize(e, 256u << 20), 0);
    ck_assert_int_eq(mdb_env_open(e, dir, 0, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(e, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    MDB_val k = { 6, (void *)"format" }, v = { 1, &f };
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(e);
}

/* After an upgrade that changed the read model's layout (RMODEL_FORMAT), the tailer replaces
 * the model of the old layout by the newest snapshot of the new one (a valid snapshot of
 * the old layout is passed over), and folds on to the model a fresh fold gives. */
START_TEST(test_model_of_another_layout_replaced)
{
    uint64_t head = build_log(3000, 0);
    fold_some(1000, 1000);
    fold_some(1000, 1000); /* snapshots at 1000 and 2000 */
    char cur[128], snap[512], lock[600];
    snprintf(cur, sizeof cur, "%s/read/current", tmpdir);
    set_format(cur, RMODEL_FORMAT - 1);
    snprintf(snap, sizeof snap, "%s/read/snapshots/snap-%020d", tmpdir, 2000);
    set_format(snap, RMODEL_FORMAT - 1);
    snprintf(lock, sizeof lock, "%s/lock.mdb", snap);
    ck_assert_int_eq(unlink(lock), 0);
    struct snapshot_info s = { .position = 2000 };
    char data[600];
    snprintf(data, sizeof data, "%s/data.mdb", snap);
    ck_assert_int_eq(snapdir_file_crc(data, &s.crc, &s.bytes), 0);
    ck_assert_int_eq(snapdir_seal(snap, &s), 0); /* valid, of the old layout */
    snprintf(s.name, sizeof s.name, "snap-%020d", 2000);
    ck_assert_int_eq(rsnap_verify(tmpdir, &s), 0);
    struct rmodel_env *env;
    struct rmodel_options ro = { 256u << 20, 1 };
    ck_assert_int_eq(rmodel_env_open(cur, &ro, &env), RMODEL_ELAYOUT);
    int format = 0;
    ck_assert_int_eq(rsnap_format(tmpdir, &s, &format), 0);
    ck_assert_int_eq(format, RMODEL_FORMAT - 1);
    ck_assert_int_eq(access(lock, F_OK), -1); /* read without writing into the snapshot */
    fold_some(0, 0);
    ck_assert_uint_eq(model_position(tmpdir), head);
    assert_same_as_reference();
    assert_one_model_dir();
    /* The next snapshot removes the one of the old layout, though its position is newer
     * than the one of this layout kept at 1000 (which stays, as keep allows). */
    ck_assert_int_eq(rmodel_env_open(cur, &ro, &env), 0);
    struct snapshot_info taken;
    ck_assert_int_eq(rsnap_take(tmpdir, env, 3, &taken), 0);
    rmodel_env_close(env);
    ck_assert_uint_eq(taken.position, head);
    ck_assert_int_eq(rsnap_format(tmpdir, &taken, &format), 0);
    ck_assert_int_eq(format, RMODEL_FORMAT);
    ck_assert_int_eq(access(snap, F_OK), -1);
    struct snapshot_info list[8];
    size_t n;
    ck_assert_int_eq(rsnap_list(tmpdir, list, 8, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(list[0].position, head);
    ck_assert_uint_eq(list[1].position, 1000);
}
END_TEST

/* A log written by an older eventfold (OrderCreated schema 1) and a newer one (schema 2)
 * folds into the same read model: v1 lines are upcast from the items. */
START_TEST(test_log_with_both_order_schemas)
{
    char dir[128];
    log_dir(dir, sizeof dir);
    struct log *lg;
    struct log_options lo = { .segment_bytes = 0 };
    ck_assert_int_eq(log_open(dir, &lo, &lg), 0);
    ck_assert_int_eq(log_append_begin(lg), 0);
    append(lg, "user-u1", 1, "UserRegistered", 1, "{\"user_id\":\"u1\",\"name\":\"Ann\",\"email\":null}");
    append(lg, "item-A", 1, "ItemAdded", 1,
           "{\"item_id\":\"A\",\"name\":\"Book\",\"category\":\"books\",\"price_cents\":1000}");
    append(lg, "item-A", 2, "ItemRestocked", 1, "{\"item_id\":\"A\",\"quantity\":10,\"available\":10}");
    append(lg, "order-old", 1, "OrderCreated", 1,
           "{\"order_id\":\"old\",\"user_id\":\"u1\",\"lines\":[{\"item_id\":\"A\",\"quantity\":3}],"
           "\"amount_cents\":3000}");
    append(lg, "order-new", 1, "OrderCreated", 2,
           "{\"order_id\":\"new\",\"user_id\":\"u1\",\"lines\":[{\"item_id\":\"A\",\"name\":\"Book\","
           "\"category\":\"books\",\"quantity\":1,\"price_cents\":1000}],\"amount_cents\":1000}");
    log_append_end(lg);
    ck_assert_int_eq(log_sync(lg, log_head(lg)), 0);
    log_close(lg);
    ck_assert_int_eq(run_tailer(tmpdir, 1, 0), 0);

    char path[256];
    snprintf(path, sizeof path, "%s/read/current", tmpdir);
    struct rmodel_env *env;
    struct rmodel_options ro = { 256u << 20, 1 };
    ck_assert_int_eq(rmodel_env_open(path, &ro, &env), 0);
    struct rmodel_txn *t;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    struct sbuf out = SBUF_INIT;
    uint64_t version, dead;
    ck_assert_int_eq(rmodel_render_order(t, "old", 3, &out, &version), 0);
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "\"items\":[{\"item_id\":\"A\",\"name\":\"Book\","
                                                 "\"quantity\":3,\"price_cents\":1000}]"));
    sbuf_reset(&out);
    ck_assert_int_eq(rmodel_render_item(t, "A", 1, &out), 0);
    ck_assert_ptr_nonnull(strstr(sbuf_str(&out), "\"available\":6,\"reserved\":4,\"sold\":0"));
    ck_assert_int_eq(rmodel_dlq_count(t, &dead), 0);
    ck_assert_uint_eq(dead, 0);
    rmodel_txn_abort(t);
    rmodel_env_close(env);
    sbuf_free(&out);
}
END_TEST

/* Appends, after build_log's events, what a rebuild must fold exactly as the live tailer:
 * OrderCreated of schema 1 (lines upcast from the items) beside schema 2, dead letters of
 * every kind (unknown type, unknown schema, bad JSON, unknown order, unknown item in an
 * upcast, an existing user registered again), a category counter that falls back to zero
 * (its row deleted), and two records of one stream version (the later one is indexed). */
static void append_odd_events(void)
{
    char dir[128];
    log_dir(dir, sizeof dir);
    struct log *lg;
    struct log_options lo = { .segment_bytes = 0 };
    ck_assert_int_eq(log_open(dir, &lo, &lg), 0);
    ck_assert_int_eq(log_append_begin(lg), 0);
    append(lg, "user-u99", 1, "UserRegistered", 1, "{\"user_id\":\"u99\",\"name\":\"Zed\",\"email\":null}");
    append(lg, "user-u99", 2, "UserRegistered", 1, "{\"user_id\":\"u99\",\"name\":\"Zed\",\"email\":null}");
    append(lg, "user-u99", 3, "FundsDeposited", 1, "{\"user_id\":\"u99\",\"amount_cents\":5000,\"balance_cents\":5000}");
    append(lg, "order-v1", 1, "OrderCreated", 1,
           "{\"order_id\":\"v1\",\"user_id\":\"u99\",\"lines\":[{\"item_id\":\"i3\",\"quantity\":2},"
           "{\"item_id\":\"i4\",\"quantity\":1}],\"amount_cents\":310}");
    append(lg, "order-v1", 2, "OrderCancelled", 1,
           "{\"order_id\":\"v1\",\"user_id\":\"u99\",\"reason\":null,\"refunded_cents\":0,"
           "\"previous_status\":\"created\"}");
    append(lg, "order-v2", 1, "OrderCreated", 1,
           "{\"order_id\":\"v2\",\"user_id\":\"u99\",\"lines\":[{\"item_id\":\"nope\",\"quantity\":2}],"
           "\"amount_cents\":10}");
    append(lg, "order-v3", 1, "OrderCreated", 2,
           "{\"order_id\":\"v3\",\"user_id\":\"u99\",\"lines\":[{\"item_id\":\"i5\",\"name\":\"Item 5\","
           "\"category\":\"c2\",\"quantity\":1,\"price_cents\":105}],\"amount_cents\":105}");
    append(lg, "order-v3", 2, "PaymentProcessed", 1,
           "{\"order_id\":\"v3\",\"user_id\":\"u99\",\"amount_cents\":105,\"balance_cents\":4895}");
    append(lg, "order-v4", 1, "OrderCreated", 9, "{\"order_id\":\"v4\"}");
    append(lg, "order-zz", 1, "OrderShipped", 1, "{\"order_id\":\"zz\"}");
    append(lg, "user-u98", 1, "FundsDeposited", 1, "{");
    append(lg, "odd-1", 1, "Bogus", 1, "{}");
    append(lg, "odd-1", 1, "Bogus", 1, "{\"again\":true}");
    log_append_end(lg);
    ck_assert_int_eq(log_sync(lg, log_head(lg)), 0);
    log_close(lg);
}

static uint64_t dead_letters(const char *model_dir)
{
    struct rmodel_env *env;
    struct rmodel_options ro = { 256u << 20, 1 };
    ck_assert_int_eq(rmodel_env_open(model_dir, &ro, &env), 0);
    struct rmodel_txn *t;
    uint64_t n;
    ck_assert_int_eq(rmodel_txn_begin(env, 1, &t), 0);
    ck_assert_int_eq(rmodel_dlq_count(t, &n), 0);
    rmodel_txn_abort(t);
    rmodel_env_close(env);
    return n;
}

/* A rebuild folds with bulk transactions (in memory, appended at once into the empty model;
 * several commits when the memory budget is small) and the live tailer with small batches:
 * the same log gives the same rows in every database, dead letters included (their time
 * is the clock's, fixed here). */
START_TEST(test_rebuild_same_as_live_batches)
{
    ef_clock_set_fixed(1767261600000);
    uint64_t head = build_log(3000, 64 << 10);
    append_odd_events();
    head += 13;
    struct tailer_options opt = { .data_dir = tmpdir, .map_bytes = 256u << 20, .once = 1, .batch_max = 7 };
    ck_assert_int_eq(tailer_run(&opt), 0);
    ck_assert_uint_eq(model_position(tmpdir), head);
    char cur[128];
    snprintf(cur, sizeof cur, "%s/read/current", tmpdir);
    ck_assert_uint_eq(dead_letters(cur), 7);
    struct sbuf live = SBUF_INIT, rebuilt = SBUF_INIT;
    dump_model(cur, &live);
    ck_assert_uint_gt(live.len, 1000);
    /* One bulk txn, then budgets that force several commits (the later ones into a model
     * that is no longer empty), then one that commits every 256 records. */
    static const uint64_t budgets[] = { 0, 1u << 20, 1 };
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
        struct rebuild_options ro = { .data_dir = tmpdir, .map_bytes = 256u << 20, .from_scratch = 1,
                                      .memory_bytes = budgets[i] };
        struct rebuild_result res;
        ck_assert_int_eq(rebuild_run(&ro, &res), 0);
        ck_assert_uint_eq(res.position, head);
        sbuf_reset(&rebuilt);
        dump_model(cur, &rebuilt);
        ck_assert_uint_eq(live.len, rebuilt.len);
        ck_assert_msg(memcmp(live.data, rebuilt.data, live.len) == 0, "models differ (budget %" PRIu64 ")",
                      budgets[i]);
    }
    sbuf_free(&live);
    sbuf_free(&rebuilt);
    ef_clock_set_fixed(-1);
}
END_TEST

/* A rebuild with a memory budget and a map of its own (0: the default budget). */
static void rebuild_with(int from_scratch, uint64_t memory, uint64_t map, uint64_t want_from)
{
    struct rebuild_options ro = { .data_dir = tmpdir, .map_bytes = map, .from_scratch = from_scratch,
                                  .memory_bytes = memory };
    struct rebuild_result res;
    ck_assert_int_eq(rebuild_run(&ro, &res), 0);
    ck_assert_uint_eq(res.from_position, want_from);
    assert_same_as_reference();
}

/* The pipeline of a rebuild (a batch committed by a writer thread while the next one is
 * folded) with batches of 256 records, dead letters in many of them, and a map far too
 * small: the writer's commits fill it again and again, and each time the fold goes back
 * to the position the model holds (one or two batches were folded past it) and folds on
 * in the grown map. The model is still the one a single transaction folds. */
START_TEST(test_rebuild_pipeline_map_full_dead_letters)
{
    ef_clock_set_fixed(1767261600000);
    build_log(1500, 64 << 10);
    for (int i = 0; i < 3; i++) { /* every round after the first: mostly dead letters */
        append_odd_events();
        build_log(700, 64 << 10);
    }
    rebuild_with(1, 1, 256u << 10, 0); /* no model yet: the map starts at 256 KiB */
    rebuild_with(1, 0, 256u << 20, 0);
    ef_clock_set_fixed(-1);
}
END_TEST

/* A rebuild from a snapshot in batches: the model it starts from already holds rows, so a
 * row the batches did not write is looked up in LMDB (no filter of written keys). */
START_TEST(test_rebuild_pipeline_from_snapshot)
{
    ef_clock_set_fixed(1767261600000);
    build_log(2000, 64 << 10);
    fold_some(1200, 1200); /* a snapshot at 1200 */
    append_odd_events();
    build_log(600, 64 << 10);
    rebuild_with(0, 1, 256u << 20, 1200);
    ef_clock_set_fixed(-1);
}
END_TEST

/* Bulk txns committed one by one in this thread (what a rebuild does where its writer
 * thread cannot start): every 300 records, the first appending into the empty model, the
 * later ones into a model that holds rows. Same model as one transaction. */
START_TEST(test_bulk_txns_without_pipeline)
{
    ef_clock_set_fixed(1767261600000);
    build_log(2500, 64 << 10);
    append_odd_events();
    build_log(500, 64 << 10);
    char dir[128], model[128];
    log_dir(dir, sizeof dir);
    snprintf(model, sizeof model, "%s/bulk", tmpdir);
    ck_assert_int_eq(mkdir(model, 0755), 0);
    struct log *lg;
    struct log_options lo = { .read_only = 1 };
    ck_assert_int_eq(log_open(dir, &lo, &lg), 0);
    struct log_reader *rd;
    ck_assert_int_eq(log_reader_open(lg, 1, &rd), 0);
    struct rmodel_env *env;
    struct rmodel_options ro = { 256u << 20, 0 };
    ck_assert_int_eq(rmodel_env_open(model, &ro, &env), 0);
    struct log_record rec;
    int more = 1;
    uint64_t pos = 0;
    while (more) {
        struct rmodel_txn *t;
        ck_assert_int_eq(rmodel_txn_begin_bulk(env, 1000, &t), 0);
        int n = 0;
        while (n < 300 && (more = log_reader_next(rd, log_durable(lg), &rec) == 1) != 0) {
            ck_assert_int_ge(rmodel_fold(t, &rec), 0);
            pos = rec.position;
            n++;
        }
        ck_assert_int_eq(rmodel_set_position(t, pos), 0);
        ck_assert_int_eq(rmodel_txn_commit(t), 0);
    }
    rmodel_env_close(env);
    log_reader_close(rd);
    log_close(lg);
    assert_model_same_as_reference(model);
    ef_clock_set_fixed(-1);
}
END_TEST

/* A damaged record in the middle of a sealed segment stops a rebuild's bulk fold there
 * (nothing is skipped), and the current model is kept. */
START_TEST(test_rebuild_stops_on_damage)
{
    uint64_t head = build_log(2000, 32 << 10);
    ck_assert_int_eq(run_tailer(tmpdir, 1, 0), 0);
    char dir[128], path[512], cmd[256], name[64] = "";
    log_dir(dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "ls '%s' | grep '\\.seg$' | sort | sed -n 2p", dir);
    FILE *ls = popen(cmd, "r");
    ck_assert_ptr_nonnull(ls);
    ck_assert_ptr_nonnull(fgets(name, sizeof name, ls));
    pclose(ls);
    name[strcspn(name, "\n")] = '\0';
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, 8000), 1); /* well after the segment's first record */
    b ^= 0x20;
    ck_assert_int_eq(pwrite(fd, &b, 1, 8000), 1);
    close(fd);
    struct rebuild_options ro = { .data_dir = tmpdir, .map_bytes = 256u << 20, .from_scratch = 1 };
    struct rebuild_result res;
    int rc = rebuild_run(&ro, &res);
    ck_assert_msg(rc == TAILER_EDAMAGE || rc == LOG_ECORRUPT, "rc=%d %s", rc, tailer_strerror(rc));
    ck_assert_uint_eq(model_position(tmpdir), head); /* not switched */
    assert_one_model_dir(); /* the unfinished model was removed */
}
END_TEST

/* A map too small for the log is grown by the tailer (doubled, several times here) and the
 * batch that did not fit is folded again: one run reaches the head, nothing skipped. */
START_TEST(test_map_full_grows)
{
    uint64_t head = build_log(3000, 0);
    struct tailer_options opt = { .data_dir = tmpdir, .map_bytes = 256u << 10, .once = 1 };
    ck_assert_int_eq(tailer_run(&opt), 0);
    ck_assert_uint_eq(model_position(tmpdir), head);
}
END_TEST

static Suite *tailer_suite(void)
{
    Suite *s = suite_create("fold_tailer");
    TCase *tc = tcase_create("tailer");
    tcase_add_unchecked_fixture(tc, td_case_setup, td_case_teardown);
    tcase_add_checked_fixture(tc, setup, td_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_catch_up_once);
    tcase_add_test(tc, test_resume_after_partial_run);
    tcase_add_test(tc, test_kill9_mid_catch_up);
    tcase_add_test(tc, test_stops_on_damage);
    tcase_add_test(tc, test_snapshot_take_and_verify);
    tcase_add_test(tc, test_snapshot_beside_the_fold);
    tcase_add_test(tc, test_snapshot_interval_counts_from_newest);
    tcase_add_test(tc, test_rebuild_scratch_snapshot_fallback);
    tcase_add_test(tc, test_rebuild_same_as_live_batches);
    tcase_add_test(tc, test_rebuild_stops_on_damage);
    tcase_add_test(tc, test_rebuild_pipeline_map_full_dead_letters);
    tcase_add_test(tc, test_rebuild_pipeline_from_snapshot);
    tcase_add_test(tc, test_bulk_txns_without_pipeline);
    tcase_add_test(tc, test_log_with_both_order_schemas);
    tcase_add_test(tc, test_map_full_grows);
    tcase_add_test(tc, test_unsynced_model_after_machine_crash);
    tcase_add_test(tc, test_model_of_another_layout_replaced);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    eflog_init("check_fold_tailer", EF_ERROR);
    SRunner *sr = srunner_create(tailer_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
