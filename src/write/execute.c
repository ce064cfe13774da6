#include <config.h>

#include "write/execute.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include <xxhash.h>

#include "domain/command.h"
#include "domain/shop.h"
#include "util/clock.h"
#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"
#include "util/uuid7.h"
#include "util/xalloc.h"
#include "write/apply.h"
#include "write/replay.h"
#include "write/wsnap.h"

#define PRUNE_PER_COMMAND 8
#define WRITE_READER_CHECK_EVERY 1024
#define WRITE_GROW_TRIES 8 /* doublings of the map for one command (one is the rule) */

enum { EXEC_QUEUED, EXEC_LEAD, EXEC_DONE }; /* write_exec.state, see combine() */

/* Everything one execution needs. The small fields come first and are zeroed; cmd comes
 * last (its order-line array is only written as far as the command has lines). */
struct write_exec {
    struct write_ctx *ctx;
    const struct write_request *req;
    struct write_response *resp;
    struct problem p;
    struct cmd_route route;
    int has_idem;
    char idem_key[EV_IDEM_KEY_MAX + 1]; /* the request is gone once the command is queued */
    unsigned char fingerprint[EV_FINGERPRINT_LEN];
    int has_if_match;
    int if_match_any;  /* If-Match: * */
    int if_match_weak; /* W/"V": never matches */
    uint64_t if_match;
    /* The outcome, besides p: the record to make durable before answering (0: none), the
     * stored answer of an idempotent repeat (NULL: none), and the sync's result. */
    uint64_t position;
    struct wm_idem *e;
    int sync_rc;
    /* The worker's queue (see combine()): the next command queued, then of the batch. */
    struct write_exec *next;
    _Atomic uint32_t state;    /* EXEC_QUEUED until the thread running it says otherwise */
    uint32_t wake_bit;         /* the futex bit its thread waits with */
    uint64_t queued_ns, locked_ns, unlocked_ns; /* for the stage metrics */
    write_done_fn done;        /* NULL: write_finish, which waits for it */
    int waiting;               /* its thread sleeps until it is done (see combine()) */
    void *done_arg;
    struct write_response own; /* the answer of a prepared command (resp points here) */
    /* Appended: the answer, rendered from the event at once (the event itself lives in
     * the batch's scratch and is gone after the batch). */
    int ok_status;
    uint64_t ok_version;
    struct sbuf ok_body;
    /* While its batch runs: what the rules read and the event they made (batch_scratch). */
    struct shop_view *view;
    struct event *ev;
    struct command cmd;
};

/* What one command of a batch needs only while it is decided, applied and appended: the
 * rules' view (order-line arrays included, 64 KiB) and the event (60 KiB). One per batch
 * runner, reused command after command, rather than one per command waiting in a queue: a
 * worker may hold as many commands in flight as nginx has connections. */
struct batch_scratch {
    struct shop_view view;
    struct event ev;
};

void write_response_free(struct write_response *resp)
{
    sbuf_free(&resp->body);
}

void write_fingerprint(const char *method, const char *path, const char *body, size_t len,
                       unsigned char out[16])
{
    XXH3_state_t *st = xcheck(XXH3_createState());
    XXH3_128bits_reset(st);
    XXH3_128bits_update(st, method, strlen(method));
    XXH3_128bits_update(st, "\n", 1);
    XXH3_128bits_update(st, path, strlen(path));
    XXH3_128bits_update(st, "\n", 1);
    XXH3_128bits_update(st, body, len);
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    memcpy(out, c.digest, 16);
}

/* --- answers ----------------------------------------------------------------------- */

static void answer_problem(struct write_exec *x)
{
    struct write_response *r = x->resp;
    assert(x->p.status >= 400);
    r->status = x->p.status;
    r->content_type = "application/problem+json";
    sbuf_reset(&r->body);
    problem_render(&x->p, &r->body);
    snprintf(r->headers, sizeof r->headers, "%sLog-Position: %" PRIu64 "\r\n",
             x->p.status == 405 ? "Allow: POST\r\n" : "", log_durable(x->ctx->log));
}

static void answer_ok(struct write_exec *x, int status, const char *body, size_t len, uint64_t position,
                      uint64_t version)
{
    struct write_response *r = x->resp;
    r->status = status;
    r->content_type = "application/json";
    sbuf_reset(&r->body);
    sbuf_append(&r->body, body, len);
    snprintf(r->headers, sizeof r->headers, "Log-Position: %" PRIu64 "\r\nETag: \"%" PRIu64 "\"\r\n",
             position, version);
}

static void log_unavailable(struct write_exec *x, const char *what, int rc)
{
    EFLOG_ERROR("command failed: %s err=\"%s\" log=\"%s\"%s", what, ef_strerror(rc),
              log_last_error(x->ctx->log),
              rc == MDB_MAP_FULL ? " hint=\"the write model's map cannot grow any more\"" : "");
    problem_set(&x->p, 503, "log_unavailable", "the log cannot be written (%s: %s); nothing was appended",
                what, ef_strerror(rc));
}

/* --- request checks (no lock) ------------------------------------------------------- */

/* "application/json", any case, optionally followed by parameters. An absent type is let
 * through only with an empty body, which the parser then refuses as 400 invalid_json (the
 * more useful answer for a bodiless POST). */
static int check_content_type(struct write_exec *x)
{
    const char *ct = x->req->content_type ? x->req->content_type : "";
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == 0 && x->req->body_len == 0)
        return 0;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return 0;
    problem_set(&x->p, 415, "unsupported_media_type", "Content-Type must be application/json");
    return -1;
}

static int check_idempotency_key(struct write_exec *x)
{
    const char *k = x->req->idempotency_key;
    if (!k)
        return 0;
    size_t n = strlen(k);
    int ok = n >= 1 && n <= EV_IDEM_KEY_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = k[i] >= 0x20 && k[i] <= 0x7e;
    if (!ok) {
        problem_set(&x->p, 400, "validation_failed", "invalid Idempotency-Key header");
        problem_add_error(&x->p, "Idempotency-Key", "must be 1 to %d printable ASCII characters",
                          EV_IDEM_KEY_MAX);
        return -1;
    }
    x->has_idem = 1;
    memcpy(x->idem_key, k, n + 1);
    return 0;
}

/* If-Match: "V", V (unquoted digits, for convenience), or *. A weak tag W/"V" is well
 * formed but never matches: If-Match uses the strong comparison (RFC 9110 13.1.1). */
static int check_if_match(struct write_exec *x)
{
    const char *v = x->req->if_match;
    if (!v)
        return 0;
    while (*v == ' ')
        v++;
    x->has_if_match = 1;
    if (strcmp(v, "*") == 0) {
        x->if_match_any = 1;
        return 0;
    }
    if (strncmp(v, "W/", 2) == 0) {
        x->if_match_weak = 1;
        v += 2;
    }
    size_t n = strlen(v);
    while (n > 0 && v[n - 1] == ' ')
        n--;
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    uint64_t ver = 0;
    int ok = n >= 1 && n <= 19;
    for (size_t i = 0; ok && i < n; i++) {
        ok = isdigit((unsigned char)v[i]);
        ver = ver * 10 + (uint64_t)(v[i] - '0');
    }
    if (!ok) {
        problem_set(&x->p, 400, "validation_failed", "invalid If-Match header");
        problem_add_error(&x->p, "If-Match", "must be a stream version such as \"3\"");
        return -1;
    }
    x->if_match = ver;
    return 0;
}

/* A time-ordered (version 7) UUID in its lower-case text form, for an order without an
 * id: its keys then land on the last leaves of the models' trees (util/uuid7.h says why).
 * The random part comes from the kernel's getrandom(), 64 ids' worth per call
 * (util/randbytes.h): libuuid's uuid_generate() made six system calls per id (it reseeds
 * its fallback generator from getpid, getuid, ... every time), a twentieth of a command's
 * CPU time. libuuid's random (version 4) UUID stays the fallback should getrandom fail
 * (ENOSYS on old kernels); Debian 12's libuuid has no version 7. */
static void new_order_id(char out[37])
{
    if (ef_uuid7(out) == 0)
        return;
    unsigned char u[16];
    uuid_generate(u);
    uuid_unparse_lower(u, out);
}

static int parse_request(struct write_exec *x)
{
    const struct write_request *q = x->req;
    if (cmd_route_match(q->method, q->path, &x->route, &x->p) < 0)
        return -1;
    x->resp->route = x->route.label;
    if (q->body_len > CMD_BODY_MAX) {
        problem_set(&x->p, 413, "payload_too_large", "the body is larger than %d bytes",
                    CMD_BODY_MAX);
        return -1;
    }
    if (check_content_type(x) < 0 || check_idempotency_key(x) < 0 || check_if_match(x) < 0)
        return -1;
    if (cmd_parse_body(&x->route, q->body, q->body_len, &x->cmd, &x->p) < 0)
        return -1;
    if (x->cmd.kind == CMD_CREATE_ORDER && !x->cmd.id[0])
        new_order_id(x->cmd.id);
    if (x->has_idem)
        write_fingerprint(q->method, q->path, q->body, q->body_len, x->fingerprint);
    return 0;
}

static void observe(struct write_exec *x, enum write_stage stage, uint64_t ns)
{
    if (x->ctx->observe)
        x->ctx->observe(stage, ns);
}

/* --- under the lock ------------------------------------------------------------------ */

/* Catch-up, and a rebuild if the model cannot be caught up: when it is ahead of the log,
 * and when a record does not apply (once per handle: if the record itself is bad, the
 * rebuild fails the same way, and repeating a whole-log replay per command would only turn
 * one bad record into an outage of the disk as well). */
static int catch_up(struct write_exec *x)
{
    char err[512] = "";
    uint64_t n = 0;
    int rc = wm_catch_up(x->ctx->wm, x->ctx->log, &n, err, sizeof err);
    if (n)
        EFLOG_INFO("write model caught up with the log records=%" PRIu64, n);
    if (rc == WM_EAHEAD || (rc == WM_EAPPLY && !x->ctx->apply_rebuild_tried)) {
        x->ctx->apply_rebuild_tried |= rc == WM_EAPPLY;
        EFLOG_WARN("rebuilding the write model reason=\"%s\"", err);
        /* From the newest usable snapshot when there is one: a full replay would hold the
         * append lock, and so every command, for as long as the whole log takes. */
        rc = x->ctx->snap_dir ? write_model_rebuild_from(x->ctx->wm, x->ctx->log, x->ctx->snap_dir, err, sizeof err)
                              : write_model_rebuild(x->ctx->wm, x->ctx->log, err, sizeof err);
    }
    if (rc)
        EFLOG_ERROR("write model catch-up failed err=\"%s\"", err);
    return rc;
}

/* Begins the command's write transaction on a model that has applied every published
 * record. The common case, a model already at log_head(), is seen inside the write
 * transaction itself; only a model behind (or unreadable) goes through catch_up() first.
 * Append lock held, so the head cannot move in between. */
static int begin_current(struct write_exec *x, MDB_txn **txn)
{
    struct wm *wm = x->ctx->wm;
    uint64_t applied = 0;
    int rc = wm_begin(wm, 1, txn);
    if (rc)
        return rc;
    if (wm_get_applied(wm, *txn, &applied) == 0 && applied == log_head(x->ctx->log))
        return 0;
    mdb_txn_abort(*txn);
    *txn = NULL;
    if ((rc = catch_up(x)) != 0)
        return rc;
    return wm_begin(wm, 1, txn);
}

/* Loads what the command's rules need. Returns 0 or a negative code. */
static int load_view(struct write_exec *x, MDB_txn *txn)
{
    struct wm *wm = x->ctx->wm;
    struct shop_view *v = x->view;
    const struct command *c = &x->cmd;
    int rc = 0;
    switch (c->kind) {
    case CMD_REGISTER_USER:
        rc = v->user_found = wm_get_user(wm, txn, c->id, &v->user);
        break;
    case CMD_DEPOSIT:
        if ((rc = v->user_found = wm_get_user(wm, txn, c->id, &v->user)) >= 0)
            rc = wm_get_deposited(wm, txn, &v->deposited);
        break;
    case CMD_ADD_ITEM:
    case CMD_RESTOCK:
        rc = v->item_found = wm_get_item(wm, txn, c->id, &v->item);
        break;
    case CMD_CREATE_ORDER:
        if ((rc = v->order_found = wm_get_order(wm, txn, c->id, &v->order)) < 0)
            break;
        if ((rc = v->user_found = wm_get_user(wm, txn, c->user_id, &v->user)) < 0)
            break;
        for (size_t i = 0; i < c->nlines && rc >= 0; i++)
            rc = v->line_found[i] = wm_get_item(wm, txn, c->lines[i].item_id, &v->line_items[i]);
        break;
    default:
        if ((rc = v->order_found = wm_get_order(wm, txn, c->id, &v->order)) == 1)
            rc = v->user_found = wm_get_user(wm, txn, v->order.user_id, &v->user);
        break;
    }
    return rc < 0 ? rc : 0;
}

/* A missing target of a non-create command is 404 (the rules say which); If-Match is
 * compared only with an existing stream's version, or with 0 for a create ("create only
 * if it does not exist yet"); "*" matches any existing stream. */
static int check_version(struct write_exec *x)
{
    if (!x->has_if_match)
        return 0;
    uint64_t cur = shop_version(&x->cmd, x->view);
    if (cur == 0 && !cmd_is_create(x->cmd.kind))
        return 0; /* shop_decide answers 404 */
    if (x->if_match_any ? cur != 0 : (cur == x->if_match && !x->if_match_weak))
        return 0;
    problem_set(&x->p, 412, "version_mismatch", "If-Match does not match: the stream is at version %" PRIu64, cur);
    return -1;
}

/* Looks the Idempotency-Key up. Returns 0 if it is new, 1 if it is known (*e filled; x->p
 * set to 422 when it was used for a different request), or a negative code. */
static int lookup_idem(struct write_exec *x, MDB_txn *txn, struct wm_idem *e)
{
    int rc = wm_get_idem(x->ctx->wm, txn, x->idem_key, e);
    if (rc == 1 && memcmp(e->fingerprint, x->fingerprint, sizeof x->fingerprint) != 0)
        problem_set(&x->p, 422, "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request");
    return rc;
}

/* Applies ev, which will be the record at ev->position, to the model: the same
 * wm_apply_event() that catch-up and rebuild call on the decoded record. Decoding the
 * bytes just encoded would give ev back (event_decode(event_encode(ev)) == ev for every
 * event shop_decide makes; the unit tests check that the live model equals one rebuilt
 * from the log), and it cost about a seventh of a command's CPU time. */
static int apply_own(struct write_exec *x, MDB_txn *txn)
{
    char err[512];
    int rc = wm_apply_event(x->ctx->wm, txn, x->ev, err, sizeof err);
    if (rc && rc != MDB_MAP_FULL)
        EFLOG_ERROR("own event does not apply err=\"%s\"", err);
    return rc;
}

/* The model's commit failed after the append: the event stands (it is published), so the
 * model is one record behind the log. A full map is the expected case: catch_up() grows
 * the map and applies the record now. Anything else is left to the next command's
 * catch-up. */
static void commit_failed(struct write_exec *x, uint64_t position, int rc)
{
    if (rc == MDB_MAP_FULL) {
        EFLOG_INFO("write model commit after append filled the map position=%" PRIu64
                 ": growing it and catching up", position);
        catch_up(x);
        return;
    }
    EFLOG_ERROR("write model commit failed after append position=%" PRIu64
              " err=\"%s\": the event stands, the next command catches the model up",
              position, ef_strerror(rc));
}

static void wake_threads(struct write_ctx *ctx, uint32_t bits);

static void abort_txn(MDB_txn **txn)
{
    mdb_txn_abort(*txn);
    *txn = NULL;
}

/* Steps 5-7 in the batch's transaction. Returns 0 when x has its outcome: x->position set
 * (decided, applied, appended), or x->p set. A refusal (4xx) leaves *txn as it was (the
 * view was only read); a failure aborts it (*txn NULL). Returns MDB_MAP_FULL, *txn
 * aborted and x->p not set, when the map filled up before anything was appended. */
static int decide_and_append(struct write_exec *x, MDB_txn **txn)
{
    struct log *lg = x->ctx->log;
    struct sbuf data = SBUF_INIT, meta = SBUF_INIT;
    char stream[EV_STREAM_MAX];
    int rc, ret = 0;
    if ((rc = load_view(x, *txn)) != 0) {
        abort_txn(txn);
        log_unavailable(x, "reading the write model", rc);
        return 0;
    }
    if (check_version(x) < 0 || shop_decide(&x->cmd, x->view, x->ev, &x->p) < 0)
        return 0;
    struct event *ev = x->ev;
    ev->position = log_head(lg) + 1;
    ev->at_ms = ef_now_ms();
    if (x->has_idem) {
        ev->has_idem = 1;
        snprintf(ev->idem_key, sizeof ev->idem_key, "%s", x->idem_key);
        memcpy(ev->fingerprint, x->fingerprint, sizeof ev->fingerprint);
    }
    event_encode_data(ev, &data);
    event_encode_meta(ev, &meta);
    event_stream(ev, stream, sizeof stream);
    const char *type = vocab_event_name(ev->type);
    struct log_event le = {
        .stream = stream, .stream_len = strlen(stream),
        .type = type, .type_len = strlen(type),
        .schema_version = ev->schema, .stream_version = ev->version,
        .timestamp_ms = ev->at_ms,
        .meta = meta.data, .meta_len = meta.len,
        .data = data.data, .data_len = data.len,
    };
    uint64_t position = 0;
    if ((rc = apply_own(x, *txn)) != 0) {
        abort_txn(txn);
        if (rc == MDB_MAP_FULL)
            ret = rc;
        else
            log_unavailable(x, "updating the write model", rc);
    } else if ((rc = log_append_record(lg, &le, &position)) != 0) {
        /* The transaction holds this event's changes: it goes, and the records of the
         * batch appended before this one are applied again by the next begin_current(). */
        abort_txn(txn);
        log_unavailable(x, "appending", rc);
    } else {
        /* The lock is held and the model was caught up: the log assigns exactly head+1. */
        assert(position == ev->position);
        x->position = position;
        sbuf_reset(&x->ok_body);
        event_response(ev, &x->ok_status, &x->ok_body);
        x->ok_version = ev->version;
    }
    sbuf_free(&data);
    sbuf_free(&meta);
    return ret;
}

/* Steps 4-7 for x in the batch's open transaction. Returns 0 when x has its outcome
 * (x->position, x->e or x->p), or MDB_MAP_FULL when the map filled up before anything of x
 * was appended (*txn aborted, x->p not set). Whatever fails so that x's changes may be in
 * the transaction aborts it: the commands of the batch before x are in the log, so the
 * next transaction's begin_current() applies them again from there. */
static int run_in_txn(struct write_exec *x, MDB_txn **txn)
{
    int rc;
    if (x->has_idem) {
        x->e = xmalloc(sizeof *x->e);
        if ((rc = lookup_idem(x, *txn, x->e)) != 0) {
            if (rc < 0) {
                abort_txn(txn);
                log_unavailable(x, "reading the idempotency table", rc);
            } else if (!x->p.status) {
                x->position = x->e->position; /* a repeat */
            }
            return 0;
        }
        free(x->e);
        x->e = NULL;
    }
    int64_t cutoff = ef_now_ms() - (int64_t)x->ctx->idempotency_ttl_hours * 3600 * 1000;
    if ((rc = wm_prune_idem(x->ctx->wm, *txn, cutoff, PRUNE_PER_COMMAND, NULL)) != 0) {
        abort_txn(txn);
        if (rc == MDB_MAP_FULL)
            return rc;
        log_unavailable(x, "pruning the idempotency table", rc);
        return 0;
    }
    /* Neither the batch's previous command nor a first attempt may leave anything here. */
    shop_view_clear(x->view);
    event_clear(x->ev);
    return decide_and_append(x, txn);
}

/* Steps 3-7 for one command of a batch. *txn is the batch's transaction, begun here when
 * there is none (the first command, or after one that aborted it). A full write-model map
 * is grown (wm_grow: the append lock keeps the other processes' transactions out, model.c
 * the snapshot copy) and the command decided again: nothing of it had been appended. */
static void run_one(struct write_exec *x, MDB_txn **txn)
{
    for (int grown = 0;; grown++) {
        int rc = *txn ? 0 : begin_current(x, txn);
        if (rc) {
            *txn = NULL;
            log_unavailable(x, "catching the write model up", rc);
            return;
        }
        if (run_in_txn(x, txn) != MDB_MAP_FULL)
            return;
        if (grown == WRITE_GROW_TRIES || (rc = wm_grow(x->ctx->wm)) != 0) {
            log_unavailable(x, "updating the write model", rc ? rc : MDB_MAP_FULL);
            return;
        }
    }
}

/* Steps 2-8 for a batch of commands (a list through ->next), in order, under one hold of
 * the append lock and in one write-model transaction: each command is decided on a model
 * that holds every command before it, of the batch or not. */
static void run_batch(struct write_ctx *ctx, struct write_exec *batch, struct batch_scratch *scratch)
{
    struct log *lg = ctx->log;
    int rc = log_append_begin(lg);
    uint64_t locked = ef_mono_ns();
    for (struct write_exec *x = batch; x; x = x->next)
        x->locked_ns = x->unlocked_ns = locked;
    if (rc) {
        for (struct write_exec *x = batch; x; x = x->next)
            log_unavailable(x, "taking the append lock", rc);
        return;
    }
    /* Killed workers can leave stale LMDB reader slots that pin old pages; clear them
     * now and then (cheap, and done under the lock so only one process does it at once). */
    unsigned before = ctx->commands;
    for (struct write_exec *x = batch; x; x = x->next)
        ctx->commands++;
    if (ctx->commands / WRITE_READER_CHECK_EVERY != before / WRITE_READER_CHECK_EVERY)
        wm_reader_check(ctx->wm);
    MDB_txn *txn = NULL;
    uint64_t last = 0;
    for (struct write_exec *x = batch; x; x = x->next) {
        x->view = &scratch->view;
        x->ev = &scratch->ev;
        run_one(x, &txn);
        x->view = NULL;
        x->ev = NULL;
        if (x->position && !x->e)
            last = x->position;
    }
    if (txn && (rc = mdb_txn_commit(txn)) != 0)
        commit_failed(batch, last, ef_mdb_rc(rc));
    log_append_end(lg);
    uint64_t unlocked = ef_mono_ns();
    for (struct write_exec *x = batch; x; x = x->next)
        x->unlocked_ns = unlocked;
}

static void exec_answer(struct write_exec *x);
static void exec_free(struct write_exec *x);

/* Step 9 for the batches run (a list through ->next): one log_sync covers every record
 * they answer with. A failed sync fails only the commands whose records it leaves
 * beyond the durable position. Then every command but `self` is finished: answered
 * through its callback and freed, or marked done and its thread woken (see combine()). */
static void sync_batches(struct write_ctx *ctx, struct write_exec *done, struct write_exec *self)
{
    uint64_t target = 0;
    for (struct write_exec *x = done; x; x = x->next)
        if (!x->p.status && x->position > target)
            target = x->position;
    int rc = target ? log_sync(ctx->log, target) : 0;
    uint64_t synced = ef_mono_ns();
    if (rc)
        EFLOG_ERROR("fdatasync failed position=%" PRIu64 " err=\"%s\"", target, log_strerror(rc));
    uint64_t durable = rc ? log_durable(ctx->log) : target;
    uint32_t bits = 0;
    struct write_exec *next;
    for (struct write_exec *x = done; x; x = next) {
        next = x->next; /* x may be gone once it is finished */
        observe(x, WRITE_STAGE_LOCK_WAIT, x->locked_ns - x->queued_ns);
        observe(x, WRITE_STAGE_LOCKED, x->unlocked_ns - x->locked_ns);
        if (!x->p.status && x->position) {
            observe(x, WRITE_STAGE_SYNC_WAIT, synced - x->unlocked_ns);
            x->sync_rc = x->position <= durable ? 0 : rc;
        }
        if (x == self)
            continue;
        if (!x->waiting) {
            exec_answer(x);
            x->done(x->done_arg, x->resp);
            exec_free(x);
        } else {
            bits |= x->wake_bit;
            atomic_store(&x->state, EXEC_DONE);
        }
    }
    if (bits)
        wake_threads(ctx, bits);
}

/* Step 9's answer: nothing is acknowledged before an fdatasync covers it. */
static void answer_durable(struct write_exec *x)
{
    if (x->p.status || x->position == 0)
        return;
    if (x->sync_rc != 0) {
        /* The record is published and cannot be taken back (others may have read it); it
         * may still become durable with a later fdatasync. Not acknowledging it is the
         * only honest answer: a retry with the same Idempotency-Key gets the original
         * answer once it is durable. */
        problem_set(&x->p, 503, "log_unavailable",
                    "the log could not be synced (%s); the command was not acknowledged",
                    log_strerror(x->sync_rc));
    } else if (x->e) {
        answer_ok(x, x->e->status, x->e->body, x->e->body_len, x->e->position, x->e->version);
    } else {
        answer_ok(x, x->ok_status, x->ok_body.data, x->ok_body.len, x->position, x->ok_version);
    }
}

/* --- the worker's queue -------------------------------------------------------------- */

/* The threads of a worker share one write_ctx. Rather than each taking the append lock,
 * opening a transaction and waiting for an fdatasync of its own (two sleeps and two
 * wake-ups per command when the lock is busy, the bulk of a command's CPU cost on a
 * loaded machine), a command that arrives while another thread of the worker runs
 * commands queues up, and that thread (the combiner) runs it in its next batch: up to
 * COMBINE_ROUNDS batches, each one hold of the append lock and one transaction, then one
 * log_sync for all of them. The combiner keeps the lead through the sync: what arrives
 * meanwhile is its next batch, so a busy worker has one thread appending and syncing in
 * turn with batches as large as the sync is long, rather than several threads each
 * sleeping in a sync of its own for one or two commands (measured: 4 to 5 commands per
 * batch instead of 2, and a tenth less CPU per command).
 *
 * A command queued by write_finish_async costs its thread no sleep at all: the combiner
 * answers it through its callback (unless WRITE_QUEUE_MAX commands are queued already).
 * One queued by write_finish sleeps once, until it is done, and its thread answers it.
 * A combiner goes on while commands are queued; only one whose own thread waits for its
 * answer hands the lead to the first queued command instead, when that one's thread
 * waits too. Invariant (under queue_mu): ctx->combining is 1 exactly while some thread
 * runs batches or syncs them or has been handed the lead, so a queued command is always
 * run by somebody. */
#define COMBINE_ROUNDS 4
#define WRITE_QUEUE_MAX 64 /* commands queued per handle before their threads wait */

static pthread_mutex_t queue_mu = PTHREAD_MUTEX_INITIALIZER; /* every write_ctx's queue */
static _Atomic uint32_t next_bit;
static _Thread_local uint32_t thread_bit;

/* Threads sleep on ctx->done_seq with a bit of their own (32 threads without sharing
 * one), so that finishing a batch wakes its threads and not the ones of the next batch. */
static uint32_t own_bit(void)
{
    if (!thread_bit)
        thread_bit = 1u << (atomic_fetch_add(&next_bit, 1) % 32);
    return thread_bit;
}

static void wake_threads(struct write_ctx *ctx, uint32_t bits)
{
    atomic_fetch_add(&ctx->done_seq, 1);
    if (syscall(SYS_futex, &ctx->done_seq, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, NULL, NULL, bits) < 0)
        EFLOG_ERROR("cannot wake command threads err=%s", strerror(errno));
}

/* Sleeps until x is done or handed the lead; returns its state. */
static uint32_t wait_turn(struct write_ctx *ctx, struct write_exec *x)
{
    for (;;) {
        uint32_t seq = atomic_load(&ctx->done_seq), st = atomic_load(&x->state);
        if (st != EXEC_QUEUED)
            return st;
        if (syscall(SYS_futex, &ctx->done_seq, FUTEX_WAIT_BITSET_PRIVATE, seq, NULL, NULL,
                    x->wake_bit) < 0 && errno != EAGAIN && errno != EINTR) {
            EFLOG_ERROR("cannot wait for the command's batch err=%s", strerror(errno));
            sched_yield();
        }
    }
}

/* Runs x (prepared) to its outcome, in this thread's batches or another's. Returns 1 when
 * x is still the caller's, with its outcome (x->waiting: write_finish, or a queue too long
 * to add to without waiting); 0 when the thread that runs it answers it through x->done
 * and frees it (this one, or another after this call returned). */
static int combine(struct write_ctx *ctx, struct write_exec *x)
{
    x->queued_ns = ef_mono_ns();
    pthread_mutex_lock(&queue_mu);
    if (ctx->queue_tail)
        ctx->queue_tail->next = x;
    else
        ctx->queue_head = x;
    ctx->queue_tail = x;
    /* A full queue makes the thread wait like write_finish: it accepts no more requests
     * while the ones queued would only wait longer (a stalled disk). */
    x->waiting = !x->done || ++ctx->nqueued > WRITE_QUEUE_MAX;
    x->wake_bit = x->waiting ? own_bit() : 0;
    int waits = x->waiting, lead = !ctx->combining, owned = waits;
    ctx->combining = 1;
    pthread_mutex_unlock(&queue_mu);
    if (!lead && (!waits || wait_turn(ctx, x) == EXEC_DONE))
        return owned;
    if (!ctx->scratch) /* only the combiner uses it, one at a time */
        ctx->scratch = xmalloc(sizeof *ctx->scratch);
    pthread_mutex_lock(&queue_mu);
    for (;;) {
        struct write_exec *done = NULL, **done_tail = &done;
        for (int round = 0; round < COMBINE_ROUNDS && ctx->queue_head; round++) {
            struct write_exec *batch = ctx->queue_head;
            ctx->queue_head = ctx->queue_tail = NULL;
            ctx->nqueued = 0;
            pthread_mutex_unlock(&queue_mu);
            run_batch(ctx, batch, ctx->scratch);
            for (*done_tail = batch; *done_tail; done_tail = &(*done_tail)->next)
                ;
            pthread_mutex_lock(&queue_mu);
        }
        struct write_exec *heir = ctx->queue_head;
        uint32_t heir_bit = 0;
        if (heir && waits && heir->waiting) {
            heir_bit = heir->wake_bit; /* heir may be gone once it is told */
            atomic_store(&heir->state, EXEC_LEAD); /* ctx->combining stays 1, for it */
        }
        pthread_mutex_unlock(&queue_mu);
        if (heir_bit)
            wake_threads(ctx, heir_bit);
        sync_batches(ctx, done, waits ? x : NULL);
        if (heir_bit)
            return owned;
        waits = 0; /* x has its outcome, or was answered */
        pthread_mutex_lock(&queue_mu);
        if (!ctx->queue_head) {
            ctx->combining = 0;
            pthread_mutex_unlock(&queue_mu);
            return owned;
        }
    }
}

/* Spare executions kept per handle. A write_exec is freed by the combiner, not by the
 * thread that allocated it; when it still held the view and the event (140 KiB), such
 * frees went back to malloc's top chunk and were trimmed, and the page faults of fresh
 * ones were a tenth of a command's CPU time. At 14 KiB that was not measured again; the
 * pool stays because it costs little (at most SPARE_EXECS of them per worker). */
#define SPARE_EXECS 32

static struct write_exec *exec_new(struct write_ctx *ctx, const struct write_request *req,
                                   struct write_response *resp)
{
    pthread_mutex_lock(&queue_mu);
    struct write_exec *x = ctx->spare;
    if (x) {
        ctx->spare = x->next;
        ctx->nspare--;
    }
    pthread_mutex_unlock(&queue_mu);
    if (!x)
        x = xmalloc(sizeof *x);
    memset(x, 0, offsetof(struct write_exec, cmd));
    x->ctx = ctx;
    x->req = req;
    x->resp = resp;
    memset(resp, 0, sizeof *resp);
    problem_init(&x->p);
    return x;
}

/* Renders x's outcome into x->resp. */
static void exec_answer(struct write_exec *x)
{
    answer_durable(x);
    if (x->p.status)
        answer_problem(x);
    assert(x->resp->status != 0);
}

static void exec_free(struct write_exec *x)
{
    struct write_ctx *ctx = x->ctx;
    write_response_free(&x->own);
    sbuf_free(&x->ok_body);
    free(x->e);
    pthread_mutex_lock(&queue_mu);
    if (ctx->nspare < SPARE_EXECS) {
        x->next = ctx->spare;
        ctx->spare = x;
        ctx->nspare++;
        x = NULL;
    }
    pthread_mutex_unlock(&queue_mu);
    free(x);
}

void write_ctx_release(struct write_ctx *ctx)
{
    free(ctx->scratch);
    ctx->scratch = NULL;
    struct write_exec *x;
    while ((x = ctx->spare) != NULL) {
        ctx->spare = x->next;
        free(x);
    }
    ctx->nspare = 0;
}

struct write_exec *write_prepare(struct write_ctx *ctx, const struct write_request *req,
                                 struct write_response *resp)
{
    struct write_exec *x = exec_new(ctx, req, resp);
    if (parse_request(x) < 0) {
        answer_problem(x);
        exec_free(x);
        return NULL;
    }
    x->own.route = resp->route;
    x->resp = &x->own;
    x->req = NULL;
    return x;
}

void write_finish(struct write_exec *x, struct write_response *resp)
{
    combine(x->ctx, x);
    exec_answer(x);
    *resp = x->own;
    sbuf_init(&x->own.body);
    exec_free(x);
}

void write_finish_async(struct write_exec *x, write_done_fn done, void *arg)
{
    x->done = done;
    x->done_arg = arg;
    if (combine(x->ctx, x)) {
        exec_answer(x);
        done(arg, x->resp);
        exec_free(x);
    }
}

void write_execute(struct write_ctx *ctx, const struct write_request *req,
                   struct write_response *resp)
{
    struct write_exec *x = write_prepare(ctx, req, resp);
    if (x)
        write_finish(x, resp);
}

void write_execute_batch(struct write_ctx *ctx, const struct write_request *reqs,
                         struct write_response *resps, size_t n)
{
    struct write_exec **xs = xcalloc(n ? n : 1, sizeof *xs), *batch = NULL, **tail = &batch;
    uint64_t now = ef_mono_ns();
    for (size_t i = 0; i < n; i++) {
        if ((xs[i] = write_prepare(ctx, &reqs[i], &resps[i])) != NULL) {
            xs[i]->queued_ns = now;
            xs[i]->waiting = 1; /* finished below, by this thread */
            *tail = xs[i];
            tail = &xs[i]->next;
        }
    }
    if (batch) {
        struct batch_scratch *scratch = xmalloc(sizeof *scratch);
        run_batch(ctx, batch, scratch);
        free(scratch);
        sync_batches(ctx, batch, NULL); /* marks them done; wakes nobody (no bits) */
    }
    for (size_t i = 0; i < n; i++) {
        if (xs[i]) {
            exec_answer(xs[i]);
            resps[i] = xs[i]->own;
            sbuf_init(&xs[i]->own.body);
            exec_free(xs[i]);
        }
    }
    free(xs);
}
