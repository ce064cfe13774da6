/* bench_wsnap: how much faster the command side starts from a write-model snapshot.
 *
 * Builds, in a temp dir, a log of about EF_BENCH_WSNAP_EVENTS events (default 200 000)
 * through write_execute() (users, deposits, items, restocks, orders paid and shipped;
 * fdatasync is skipped: durability is not what is measured), takes a write-model snapshot
 * when 90% are in, appends the rest, then times into fresh environments:
 *   - a rebuild from the log alone (write_model_rebuild), and
 *   - a restore from the snapshot plus the log after it (write_model_restore).
 * One line on stdout:
 *   wsnap_events=N snapshot_position=P snapshot_bytes=B snapshot_ms=T
 *   full_replay_ms=F restore_ms=R restore_replayed=K speedup=X
 * The temp dir is removed at the end.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/io.h"
#include "log/log.h"
#include "util/clock.h"
#include "util/eflog.h"
#include "write/execute.h"
#include "write/model.h"
#include "write/replay.h"
#include "write/wsnap.h"

#define MAP_BYTES (64ull << 20) /* the default write_map_bytes; the map grows from there */

static int no_sync(int fd)
{
    (void)fd;
    return 0;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_wsnap: %s\n", what);
    exit(1);
}

static void cmd(struct write_ctx *ctx, const char *path, const char *body)
{
    struct write_request q = { .method = "POST", .path = path, .content_type = "application/json",
                               .body = body, .body_len = strlen(body) };
    struct write_response r;
    write_execute(ctx, &q, &r);
    if (r.status >= 300) {
        fprintf(stderr, "bench_wsnap: %s %s: %d %s\n", path, body, r.status, r.body.data);
        exit(1);
    }
    write_response_free(&r);
}

/* One round: 7 events (user, deposit, item, restock, order, pay, ship). */
static void round_of(struct write_ctx *ctx, unsigned i)
{
    char path[96], body[256];
    snprintf(body, sizeof body, "{\"user_id\":\"u%u\",\"name\":\"User %u\"}", i, i);
    cmd(ctx, "/api/users", body);
    snprintf(path, sizeof path, "/api/users/u%u/deposits", i);
    cmd(ctx, path, "{\"amount_cents\":100000}");
    snprintf(body, sizeof body, "{\"item_id\":\"i%u\",\"name\":\"Item %u\",\"category\":\"c%u\",\"price_cents\":250}", i, i, i % 16);
    cmd(ctx, "/api/items", body);
    snprintf(path, sizeof path, "/api/items/i%u/restock", i);
    cmd(ctx, path, "{\"quantity\":50}");
    snprintf(body, sizeof body, "{\"user_id\":\"u%u\",\"order_id\":\"o%u\",\"items\":[{\"item_id\":\"i%u\",\"quantity\":2}]}", i, i, i);
    cmd(ctx, "/api/orders", body);
    snprintf(path, sizeof path, "/api/orders/o%u/pay", i);
    cmd(ctx, path, "{}");
    snprintf(path, sizeof path, "/api/orders/o%u/ship", i);
    cmd(ctx, path, "{}");
}

static struct wm *fresh(const char *tmp, const char *name)
{
    char path[256];
    struct wm *wm;
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    if (wm_open(path, MAP_BYTES, &wm) != 0)
        die("cannot open a write model");
    return wm;
}

int main(void)
{
    const char *env = getenv("EF_BENCH_WSNAP_EVENTS");
    uint64_t want = env ? strtoull(env, NULL, 10) : 200000;
    char tmp[] = "/tmp/ef-bench-wsnap-XXXXXX", path[256], snaps[SNAPDIR_PATH_MAX], err[512];
    if (!mkdtemp(tmp))
        die("mkdtemp failed");
    eflog_init("bench_wsnap", EF_WARN);
    log_io.fdatasync = no_sync;
    struct write_ctx ctx = { .idempotency_ttl_hours = 48 };
    snprintf(path, sizeof path, "%s/log", tmp);
    if (log_open(path, NULL, &ctx.log) != 0)
        die("cannot open the log");
    snprintf(path, sizeof path, "%s/write", tmp);
    if (write_model_open(path, MAP_BYTES, ctx.log, &ctx.wm) != 0 || wsnap_dir(path, snaps) != 0)
        die("cannot open the write model");
    unsigned i = 0;
    while (log_head(ctx.log) < want * 9 / 10)
        round_of(&ctx, i++);
    struct snapshot_info s;
    uint64_t t0 = ef_mono_ns();
    if (wsnap_take(ctx.wm, ctx.log, snaps, 2, 0, &s) != 0)
        die("snapshot failed");
    uint64_t snap_ns = ef_mono_ns() - t0;
    while (log_head(ctx.log) < want)
        round_of(&ctx, i++);

    struct wm *a = fresh(tmp, "w-replay"), *b = fresh(tmp, "w-restore");
    struct wsnap_restored res;
    if (log_append_begin(ctx.log) != 0)
        die("cannot take the append lock");
    t0 = ef_mono_ns();
    if (write_model_rebuild(a, ctx.log, err, sizeof err) != 0)
        die(err);
    uint64_t full_ns = ef_mono_ns() - t0;
    t0 = ef_mono_ns();
    if (write_model_restore(b, ctx.log, snaps, &res, err, sizeof err) != 0)
        die("restore failed");
    uint64_t rest_ns = ef_mono_ns() - t0;
    log_append_end(ctx.log);
    printf("wsnap_events=%" PRIu64 " snapshot_position=%" PRIu64 " snapshot_bytes=%" PRIu64
           " snapshot_ms=%.1f full_replay_ms=%.1f restore_ms=%.1f restore_replayed=%" PRIu64
           " speedup=%.1f\n",
           log_head(ctx.log), s.position, s.bytes, snap_ns / 1e6, full_ns / 1e6, rest_ns / 1e6,
           res.replayed, rest_ns ? (double)full_ns / (double)rest_ns : 0.0);
    wm_close(a);
    wm_close(b);
    write_ctx_release(&ctx);
    wm_close(ctx.wm);
    log_close(ctx.log);
    snprintf(path, sizeof path, "rm -rf '%s'", tmp);
    if (system(path) != 0)
        die("cannot remove the temp dir");
    return 0;
}
