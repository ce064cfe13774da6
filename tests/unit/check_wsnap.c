/* Unit tests of the write model's snapshots (wsnap.h), on a real log and write model in a
 * temp dir, fed by a few thousand mixed commands through write_execute():
 *  - the model restored from a snapshot plus the log after it equals, byte for byte in
 *    every database, the model rebuilt from the log alone (and the live one);
 *  - a damaged newest snapshot is passed over for the older one;
 *  - a snapshot ahead of the log (the log lost its tail) is rejected for an older one;
 *  - a snapshot is not published while its position is not durable;
 *  - a worker's start after a reboot restores from the snapshot;
 *  - the worker's taker thread takes snapshots every N events and keeps `keep`. */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/io.h"
#include "log/log.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "util/sbuf.h"
#include "write/execute.h"
#include "write/model.h"
#include "write/replay.h"
#include "write/wsnap.h"
#include "testdir.h"
#include "write_testutil.h"

static char tmpdir[64];
static char snaps[SNAPDIR_PATH_MAX];
static struct write_ctx ctx;
static unsigned rng = 12345;

static void open_all(void)
{
    char path[128];
    wt_open(tmpdir, &ctx);
    snprintf(path, sizeof path, "%s/write", tmpdir);
    ck_assert_int_eq(wsnap_dir(path, snaps), 0);
}

static void close_all(void)
{
    wt_close(&ctx);
}

static void setup(void)
{
    eflog_init("check_wsnap", EF_ERROR);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ef-wsnap-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    ef_clock_set_fixed(1764201600000); /* 2025-11-27T00:00:00Z */
    rng = 12345;
    open_all();
}

static void teardown(void)
{
    log_io_reset();
    close_all();
    td_rmtree(tmpdir);
    ef_clock_set_fixed(-1);
}

static unsigned rnd(unsigned n)
{
    rng = rng * 1103515245u + 12345u;
    return (rng >> 16) % n;
}

/* One command; returns its status. */
static int run(const char *path, const char *body, const char *key)
{
    struct write_response r;
    struct write_request q = {
        .method = "POST", .path = path, .content_type = "application/json", .body = body,
        .body_len = strlen(body), .idempotency_key = key,
    };
    write_execute(&ctx, &q, &r);
    int st = r.status;
    write_response_free(&r);
    return st;
}

#define USERS 40
#define ITEMS 25

/* n mixed commands over a small world: users, deposits, items, restocks, orders of 1-3
 * lines, and their payments, shipments, deliveries and cancellations; some with an
 * Idempotency-Key (some repeated), many failing by the rules (which append nothing). */
static void traffic(int n)
{
    static unsigned orders;
    char path[128], body[512], key[32];
    if (log_head(ctx.log) == 0)
        orders = 0;
    for (int i = 0; i < n; i++) {
        unsigned u = rnd(USERS), it = rnd(ITEMS), k = rnd(100);
        const char *idem = NULL;
        if (k < 8) {
            snprintf(key, sizeof key, "k%u", rnd(300));
            idem = key;
        }
        switch (rnd(10)) {
        case 0:
            snprintf(body, sizeof body, "{\"user_id\":\"u%u\",\"name\":\"User %u\",\"email\":\"u%u@example.com\"}", u, u, u);
            run("/api/users", body, idem);
            break;
        case 1:
            snprintf(path, sizeof path, "/api/users/u%u/deposits", u);
            snprintf(body, sizeof body, "{\"amount_cents\":%u}", 100 + rnd(5000));
            run(path, body, idem);
            break;
        case 2:
            snprintf(body, sizeof body, "{\"item_id\":\"i%u\",\"name\":\"Item %u\",\"category\":\"c%u\",\"price_cents\":%u}", it, it, it % 4, 50 + rnd(500));
            run("/api/items", body, idem);
            break;
        case 3:
            snprintf(path, sizeof path, "/api/items/i%u/restock", it);
            snprintf(body, sizeof body, "{\"quantity\":%u}", 1 + rnd(20));
            run(path, body, idem);
            break;
        case 4:
        case 5: {
            int len = snprintf(body, sizeof body, "{\"user_id\":\"u%u\",\"order_id\":\"o%u\",\"items\":[", u, ++orders);
            unsigned lines = 1 + rnd(3);
            for (unsigned l = 0; l < lines; l++)
                len += snprintf(body + len, sizeof body - (size_t)len, "%s{\"item_id\":\"i%u\",\"quantity\":%u}", l ? "," : "", (it + l * 7) % ITEMS, 1 + rnd(3));
            snprintf(body + len, sizeof body - (size_t)len, "]}");
            run("/api/orders", body, idem);
            break;
        }
        default: {
            static const char *const acts[] = { "pay", "pay", "ship", "deliver" , "cancel" };
            unsigned a = rnd(5);
            snprintf(path, sizeof path, "/api/orders/o%u/%s", orders ? 1 + rnd(orders) : 1, acts[a]);
            run(path, a == 4 ? "{\"reason\":\"changed mind\"}" : "{}", idem);
            break;
        }
        }
    }
}

static void dump(struct wm *wm, struct sbuf *out)
{
    sbuf_free(out);
    *out = (struct sbuf)SBUF_INIT;
    wm_test_dump(wm, out);
}

static void assert_same(const struct sbuf *a, const struct sbuf *b)
{
    ck_assert_uint_eq(a->len, b->len);
    ck_assert_mem_eq(a->data, b->data, a->len);
}

/* A second model at name, from the log alone. */
static void rebuilt_from_log(const char *name, struct sbuf *out)
{
    char path[128], err[512];
    struct wm *wm;
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    ck_assert_int_eq(wm_open(path, 64ull << 20, &wm), 0);
    ck_assert_int_eq(log_append_begin(ctx.log), 0);
    ck_assert_int_eq(write_model_rebuild(wm, ctx.log, err, sizeof err), 0);
    log_append_end(ctx.log);
    dump(wm, out);
    wm_close(wm);
}

/* A third model at name, from the snapshots plus the log; *res says which one. */
static int restored(const char *name, struct sbuf *out, struct wsnap_restored *res)
{
    char path[128], err[512] = "";
    struct wm *wm;
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    ck_assert_int_eq(wm_open(path, 64ull << 20, &wm), 0);
    ck_assert_int_eq(log_append_begin(ctx.log), 0);
    int rc = write_model_restore(wm, ctx.log, snaps, res, err, sizeof err);
    log_append_end(ctx.log);
    if (rc == 0)
        dump(wm, out);
    wm_close(wm);
    return rc;
}

static struct snapshot_info take(void)
{
    struct snapshot_info s;
    ck_assert_int_eq(wsnap_take(ctx.wm, ctx.log, snaps, 3, 0, &s), 0);
    ck_assert_uint_eq(s.position, log_head(ctx.log));
    return s;
}

static size_t count_snapshots(void)
{
    struct snapshot_info list[SNAPDIR_LIST_MAX];
    size_t n;
    ck_assert_int_eq(snapdir_list(snaps, list, SNAPDIR_LIST_MAX, &n), 0);
    return n;
}

/* The live model, a replay of the whole log and a restore (the newest snapshot, which must
 * be the one at snap_pos, plus the log up to head) are byte for byte the same. Returns the
 * size of the model's dump. */
static size_t assert_three_agree(uint64_t snap_pos, uint64_t head)
{
    struct sbuf live = SBUF_INIT, replay = SBUF_INIT, rest = SBUF_INIT;
    struct wsnap_restored res;
    dump(ctx.wm, &live);
    rebuilt_from_log("w-replay", &replay);
    ck_assert_int_eq(restored("w-restored", &rest, &res), 0);
    ck_assert_uint_eq(res.snap.position, snap_pos);
    ck_assert_uint_eq(res.replayed, head - snap_pos);
    assert_same(&replay, &rest);
    assert_same(&live, &rest);
    size_t n = live.len;
    sbuf_free(&live);
    sbuf_free(&replay);
    sbuf_free(&rest);
    return n;
}

START_TEST(test_restore_equals_replay)
{
    traffic(2000);
    struct snapshot_info s = take();
    ck_assert_uint_gt(s.position, 500);
    ck_assert_int_eq(snapdir_verify(snaps, &s), 0);
    traffic(1500);
    uint64_t head = log_head(ctx.log);
    ck_assert_uint_gt(head, s.position + 300);
    /* a real model, not two empty ones */
    ck_assert_uint_gt(assert_three_agree(s.position, head), 10000);
}
END_TEST

START_TEST(test_damaged_newest_is_passed_over)
{
    traffic(600);
    struct snapshot_info a = take();
    traffic(600);
    struct snapshot_info b = take();
    ck_assert_uint_gt(b.position, a.position);
    traffic(300);
    /* One flipped byte in the newest copy. */
    char path[SNAPDIR_PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/%s/data.mdb", snaps, b.name);
    FILE *f = fopen(path, "r+");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, (long)(b.bytes / 2), SEEK_SET), 0);
    int c = fgetc(f);
    ck_assert_int_eq(fseek(f, (long)(b.bytes / 2), SEEK_SET), 0);
    fputc(c ^ 0x20, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(snapdir_verify(snaps, &b), -EBADMSG);
    struct sbuf replay = SBUF_INIT, rest = SBUF_INIT;
    struct wsnap_restored res;
    rebuilt_from_log("w-replay", &replay);
    ck_assert_int_eq(restored("w-restored", &rest, &res), 0);
    ck_assert_uint_eq(res.snap.position, a.position);
    assert_same(&replay, &rest);
    /* Both damaged (the older one truncated): nothing usable, the caller replays. */
    snprintf(path, sizeof path, "%s/%s/data.mdb", snaps, a.name);
    ck_assert_int_eq(truncate(path, (off_t)(a.bytes - 4096)), 0);
    ck_assert_int_eq(restored("w-none", &rest, &res), 1);
    sbuf_free(&replay);
    sbuf_free(&rest);
}
END_TEST

/* Copies the first n records of the current log into a new log at dir. */
static void copy_log_prefix(const char *dir, uint64_t n)
{
    struct log *dst;
    struct log_reader *rd;
    struct log_record rec;
    ck_assert_int_eq(log_open(dir, NULL, &dst), 0);
    ck_assert_int_eq(log_reader_open(ctx.log, 1, &rd), 0);
    ck_assert_int_eq(log_append_begin(dst), 0);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t pos;
        ck_assert_int_eq(log_reader_next(rd, log_head(ctx.log), &rec), 1);
        struct log_event ev = {
            .stream = rec.stream, .stream_len = rec.stream_len,
            .type = rec.type, .type_len = rec.type_len,
            .schema_version = rec.schema_version, .stream_version = rec.stream_version,
            .timestamp_ms = rec.timestamp_ms,
            .meta = rec.meta, .meta_len = rec.meta_len,
            .data = rec.data, .data_len = rec.data_len,
        };
        ck_assert_int_eq(log_append_record(dst, &ev, &pos), 0);
        ck_assert_uint_eq(pos, rec.position);
    }
    log_append_end(dst);
    ck_assert_int_eq(log_sync(dst, n), 0);
    log_reader_close(rd);
    log_close(dst);
}

START_TEST(test_snapshot_ahead_of_log_is_rejected)
{
    traffic(500);
    struct snapshot_info a = take();
    traffic(500);
    struct snapshot_info b = take();
    /* What a lost log tail looks like: a log that ends between the two snapshots. */
    uint64_t cut = a.position + (b.position - a.position) / 2;
    char dir[128], logdir[128];
    snprintf(dir, sizeof dir, "%s/log2", tmpdir);
    copy_log_prefix(dir, cut);
    close_all();
    snprintf(logdir, sizeof logdir, "%s/log", tmpdir);
    td_rmtree(logdir);
    ck_assert_int_eq(rename(dir, logdir), 0);
    /* The old model is ahead of this log: the start rebuilds it, from snapshot a. */
    open_all();
    ck_assert_uint_eq(log_head(ctx.log), cut);
    assert_three_agree(a.position, cut);
}
END_TEST

static int eio_fdatasync(int fd)
{
    (void)fd;
    errno = EIO;
    return -1;
}

START_TEST(test_not_published_before_durable)
{
    traffic(200);
    struct snapshot_info a = take();
    /* The next command commits the model, appends, and then its fdatasync fails: the
     * model holds a position that is not durable. */
    log_io.fdatasync = eio_fdatasync;
    ck_assert_int_eq(run("/api/users", "{\"user_id\":\"late\",\"name\":\"L\"}", NULL), 503);
    ck_assert_uint_gt(log_head(ctx.log), log_durable(ctx.log));
    struct snapshot_info s;
    ck_assert_int_eq(wsnap_take(ctx.wm, ctx.log, snaps, 3, 0, &s), LOG_ESYNCFAILED);
    ck_assert_uint_eq(count_snapshots(), 1);
    /* Nothing but the published snapshot and the lock file is left behind. */
    char cmd[SNAPDIR_PATH_MAX + 200];
    snprintf(cmd, sizeof cmd, "test \"$(ls %s)\" = \"lock\n%s\"", snaps, a.name);
    ck_assert_int_eq(system(cmd), 0);
    /* A failed fdatasync stops the log until it is recovered (log.h): still refused. */
    log_io_reset();
    ck_assert_int_eq(wsnap_take(ctx.wm, ctx.log, snaps, 3, 0, &s), LOG_ESYNCFAILED);
    ck_assert_uint_eq(count_snapshots(), 1);
    /* After a restart the unacknowledged record is cut, and the model follows. */
    close_all();
    open_all();
    ck_assert_uint_eq(log_head(ctx.log), a.position);
    ck_assert_int_eq(wsnap_take(ctx.wm, ctx.log, snaps, 3, 0, &s), 0);
    ck_assert_uint_eq(s.position, a.position);
    ck_assert_uint_le(s.position, log_durable(ctx.log));
}
END_TEST

START_TEST(test_start_after_reboot_restores)
{
    traffic(800);
    take();
    traffic(400);
    /* As after a power loss: the model is from another boot and cannot be trusted. */
    MDB_txn *txn;
    struct user_state junk = { 999, 2 };
    ck_assert_int_eq(wm_begin(ctx.wm, 1, &txn), 0);
    ck_assert_int_eq(wm_put_user(ctx.wm, txn, "u1", &junk), 0);
    ck_assert_int_eq(wm_set_boot_id(ctx.wm, txn, "00000000-0000-0000-0000-000000000000"), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    close_all();
    open_all();
    struct sbuf live = SBUF_INIT, replay = SBUF_INIT;
    dump(ctx.wm, &live);
    rebuilt_from_log("w-replay", &replay);
    assert_same(&replay, &live);
    /* A model from another boot is never copied. */
    ck_assert_int_eq(wm_begin(ctx.wm, 1, &txn), 0);
    ck_assert_int_eq(wm_set_boot_id(ctx.wm, txn, "00000000-0000-0000-0000-000000000000"), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    struct snapshot_info s;
    ck_assert_int_eq(wsnap_take(ctx.wm, ctx.log, snaps, 3, 0, &s), WSNAP_EBOOT);
    sbuf_free(&live);
    sbuf_free(&replay);
}
END_TEST

#define EVERY 40

START_TEST(test_taker_thread)
{
    char model[128];
    struct wsnap_taker *t;
    snprintf(model, sizeof model, "%s/write", tmpdir);
    ck_assert_int_eq(wsnap_taker_start(ctx.wm, ctx.log, model, EVERY, 2, &t), 0);
    ck_assert_ptr_nonnull(t);
    for (int round = 0; round < 4; round++) {
        traffic(250);
        usleep(300 * 1000); /* more than a tick of the taker */
    }
    uint64_t head = log_head(ctx.log);
    ck_assert_uint_gt(head, 3 * EVERY);
    struct snapshot_info list[SNAPDIR_LIST_MAX];
    size_t n = 0;
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(snapdir_list(snaps, list, SNAPDIR_LIST_MAX, &n), 0);
        if (n && list[0].position + EVERY > head)
            break;
        usleep(100 * 1000);
    }
    wsnap_taker_stop(t);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_gt(list[0].position + 150, head);
    ck_assert_int_eq(snapdir_verify(snaps, &list[0]), 0);
    ck_assert_int_eq(snapdir_verify(snaps, &list[1]), 0);
    ck_assert_int_eq(wsnap_taker_start(ctx.wm, ctx.log, model, 0, 2, &t), 0);
    ck_assert_ptr_null(t);
    wsnap_taker_stop(NULL);
}
END_TEST

/* One record each: deposits to the user "uw". */
static void deposits(int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(run("/api/users/uw/deposits", "{\"amount_cents\":1}", NULL), 200);
}

static uint64_t newest_position(void)
{
    struct snapshot_info list[SNAPDIR_LIST_MAX];
    size_t n = 0;
    ck_assert_int_eq(snapdir_list(snaps, list, SNAPDIR_LIST_MAX, &n), 0);
    return n ? list[0].position : 0;
}

/* The interval counts from the newest snapshot in the directory, whoever took it: once
 * eventfoldctl (or another worker) has taken one, the taker's own count coming due does not
 * make it copy the model again; the next one comes an interval after the outside one. */
START_TEST(test_taker_counts_from_newest)
{
    char model[128];
    struct wsnap_taker *t;
    snprintf(model, sizeof model, "%s/write", tmpdir);
    ck_assert_int_eq(run("/api/users", "{\"user_id\":\"uw\",\"name\":\"W\",\"email\":\"w@example.com\"}",
                         NULL), 201);
    deposits(EVERY); /* due at once */
    ck_assert_int_eq(wsnap_taker_start(ctx.wm, ctx.log, model, EVERY, 3, &t), 0);
    for (int i = 0; i < 50 && newest_position() == 0; i++)
        usleep(100 * 1000);
    uint64_t first = newest_position();
    ck_assert_uint_eq(first, log_head(ctx.log));
    deposits(EVERY / 2);
    struct snapshot_info outside = take(); /* as eventfoldctl snapshot does */
    deposits(EVERY / 2 + 5); /* past first + EVERY, short of outside + EVERY */
    ck_assert_uint_ge(log_head(ctx.log), first + EVERY);
    ck_assert_uint_lt(log_head(ctx.log), outside.position + EVERY);
    usleep(800 * 1000); /* four ticks of the taker */
    ck_assert_uint_eq(newest_position(), outside.position);
    deposits(EVERY / 2);
    for (int i = 0; i < 50 && newest_position() == outside.position; i++)
        usleep(100 * 1000);
    wsnap_taker_stop(t);
    ck_assert_uint_ge(newest_position(), outside.position + EVERY);
}
END_TEST

/* The directory protocol itself: more snapshots than a list holds (the newest are listed
 * whatever readdir's order), same-position publishing, pruning. */
START_TEST(test_snapdir_protocol)
{
    char tmp[SNAPDIR_PATH_MAX], data[SNAPDIR_PATH_MAX + 16];
    enum { N = SNAPDIR_LIST_MAX + 6 };
    for (unsigned i = 0; i < N; i++) {
        unsigned p = (i * 37) % N + 1; /* every position 1..N once, out of order */
        struct snapshot_info s = { .position = p };
        ck_assert_int_eq(snapdir_begin(snaps, tmp), 0);
        snprintf(data, sizeof data, "%s/data.mdb", tmp);
        FILE *f = fopen(data, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "copy %u", p);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(snapdir_file_crc(data, &s.crc, &s.bytes), 0); /* as if streamed */
        ck_assert_int_eq(snapdir_seal(tmp, &s), 0);
        ck_assert_int_eq(snapdir_publish(snaps, tmp, &s, 0), 0);
    }
    struct snapshot_info list[SNAPDIR_LIST_MAX], again = { .position = N };
    size_t n;
    ck_assert_int_eq(snapdir_list(snaps, list, SNAPDIR_LIST_MAX, &n), 0);
    ck_assert_uint_eq(n, SNAPDIR_LIST_MAX);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(list[i].position, N - i);
    ck_assert_int_eq(snapdir_verify(snaps, &list[0]), 0);
    /* A second snapshot at the newest position is not published over the first. */
    ck_assert_int_eq(snapdir_begin(snaps, tmp), 0);
    snprintf(data, sizeof data, "%s/data.mdb", tmp);
    FILE *f = fopen(data, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(snapdir_file_crc(data, &again.crc, &again.bytes), 0);
    ck_assert_int_eq(snapdir_seal(tmp, &again), 0);
    ck_assert_int_eq(snapdir_publish(snaps, tmp, &again, 0), 1);
    ck_assert_int_eq(access(tmp, F_OK), -1);
    ck_assert_int_eq(snapdir_verify(snaps, &list[0]), 0);
    snapdir_prune(snaps, 3);
    ck_assert_int_eq(snapdir_list(snaps, list, SNAPDIR_LIST_MAX, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(list[2].position, N - 2);
}
END_TEST

static Suite *wsnap_suite(void)
{
    Suite *s = suite_create("wsnap");
    TCase *tc = tcase_create("wsnap");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_restore_equals_replay);
    tcase_add_test(tc, test_damaged_newest_is_passed_over);
    tcase_add_test(tc, test_snapshot_ahead_of_log_is_rejected);
    tcase_add_test(tc, test_not_published_before_durable);
    tcase_add_test(tc, test_start_after_reboot_restores);
    tcase_add_test(tc, test_taker_thread);
    tcase_add_test(tc, test_taker_counts_from_newest);
    tcase_add_test(tc, test_snapdir_protocol);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(wsnap_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
