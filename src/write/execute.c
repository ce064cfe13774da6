#include <config.h>

#include "write/execute.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <uuid/uuid.h>
#include <xxhash.h>

#include "domain/command.h"
#include "domain/shop.h"
#include "util/clock.h"
#include "util/ef_error.h"
#include "util/eflog.h"
#include "util/lmdb_map.h"
#include "util/xalloc.h"
#include "write/apply.h"
#include "write/replay.h"
#include "write/wsnap.h"

#define PRUNE_PER_COMMAND 8
#define WRITE_READER_CHECK_EVERY 1024
#define WRITE_GROW_TRIES 8 /* doublings of the map for one command (one is the rule) */

/* Everything one execution needs; heap-allocated (the structs are large). The small
 * fields come first and are zeroed; cmd, view and ev clear themselves (each leaves its
 * unused order-line array alone, see event_clear). */
struct exec {
    struct write_ctx *ctx;
    const struct write_request *req;
    struct write_response *resp;
    struct problem p;
    struct cmd_route route;
    int has_idem;
    unsigned char fingerprint[EV_FINGERPRINT_LEN];
    int has_if_match;
    int if_match_any;  /* If-Match: * */
    int if_match_weak; /* W/"V": never matches */
    uint64_t if_match;
    struct command cmd;
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

static void answer_problem(struct exec *x)
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

static void answer_ok(struct exec *x, int status, const char *body, size_t len, uint64_t position,
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

static void log_unavailable(struct exec *x, const char *what, int rc)
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
static int check_content_type(struct exec *x)
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

static int check_idempotency_key(struct exec *x)
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
    return 0;
}

/* If-Match: "V", V (unquoted digits, for convenience), or *. A weak tag W/"V" is well
 * formed but never matches: If-Match uses the strong comparison (RFC 9110 13.1.1). */
static int check_if_match(struct exec *x)
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

/* A random (version 4) UUID in its lower-case text form, for an order without an id.
 * One getrandom() call: libuuid's uuid_generate() made five more system calls (it reseeds
 * its fallback generator from getpid, getuid, ... every time), a twentieth of a command's
 * CPU time. libuuid stays the fallback should getrandom fail (ENOSYS on old kernels). */
static void new_order_id(char out[37])
{
    unsigned char u[16];
    if (getrandom(u, sizeof u, 0) != (ssize_t)sizeof u) {
        uuid_generate(u);
        uuid_unparse_lower(u, out);
        return;
    }
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* variant 1 (RFC 9562) */
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[u[i] >> 4];
        *o++ = hex[u[i] & 15];
    }
    *o = '\0';
}

static int parse_request(struct exec *x)
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

static void observe(struct exec *x, enum write_stage stage, uint64_t ns)
{
    if (x->ctx->observe)
        x->ctx->observe(stage, ns);
}

/* --- under the lock ------------------------------------------------------------------ */

/* Catch-up, and a rebuild if the model cannot be caught up: when it is ahead of the log,
 * and when a record does not apply (once per handle: if the record itself is bad, the
 * rebuild fails the same way, and repeating a whole-log replay per command would only turn
 * one bad record into an outage of the disk as well). */
static int catch_up(struct exec *x)
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
static int begin_current(struct exec *x, MDB_txn **txn)
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
static int load_view(struct exec *x, MDB_txn *txn)
{
    struct wm *wm = x->ctx->wm;
    struct shop_view *v = &x->view;
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
static int check_version(struct exec *x)
{
    if (!x->has_if_match)
        return 0;
    uint64_t cur = shop_version(&x->cmd, &x->view);
    if (cur == 0 && !cmd_is_create(x->cmd.kind))
        return 0; /* shop_decide answers 404 */
    if (x->if_match_any ? cur != 0 : (cur == x->if_match && !x->if_match_weak))
        return 0;
    problem_set(&x->p, 412, "version_mismatch", "If-Match does not match: the stream is at version %" PRIu64, cur);
    return -1;
}

/* Looks the Idempotency-Key up. Returns 0 if it is new, 1 if it is known (*e filled; x->p
 * set to 422 when it was used for a different request), or a negative code. */
static int lookup_idem(struct exec *x, MDB_txn *txn, struct wm_idem *e)
{
    int rc = wm_get_idem(x->ctx->wm, txn, x->req->idempotency_key, e);
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
static int apply_own(struct exec *x, MDB_txn *txn)
{
    char err[512];
    int rc = wm_apply_event(x->ctx->wm, txn, &x->ev, err, sizeof err);
    if (rc && rc != MDB_MAP_FULL)
        EFLOG_ERROR("own event does not apply err=\"%s\"", err);
    return rc;
}

/* The model's commit failed after the append: the event stands (it is published), so the
 * model is one record behind the log. A full map is the expected case: catch_up() grows
 * the map and applies the record now. Anything else is left to the next command's
 * catch-up. */
static void commit_failed(struct exec *x, uint64_t position, int rc)
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

/* Steps 5-8 of the flow; txn is consumed (committed or aborted). On success *position is
 * the appended record's. Returns 0; -1 with x->p set; or MDB_MAP_FULL, x->p not set, when
 * the map filled up before anything was appended (the caller grows it and starts over). */
static int decide_and_append(struct exec *x, MDB_txn *txn, uint64_t *position)
{
    struct log *lg = x->ctx->log;
    struct sbuf data = SBUF_INIT, meta = SBUF_INIT;
    char stream[EV_STREAM_MAX];
    int rc, ret = -1;
    if ((rc = load_view(x, txn)) != 0) {
        log_unavailable(x, "reading the write model", rc);
        goto fail;
    }
    if (check_version(x) < 0 || shop_decide(&x->cmd, &x->view, &x->ev, &x->p) < 0)
        goto fail;
    struct event *ev = &x->ev;
    ev->position = log_head(lg) + 1;
    ev->at_ms = ef_now_ms();
    if (x->has_idem) {
        ev->has_idem = 1;
        snprintf(ev->idem_key, sizeof ev->idem_key, "%s", x->req->idempotency_key);
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
    if ((rc = apply_own(x, txn)) != 0) {
        if (rc == MDB_MAP_FULL)
            ret = rc;
        else
            log_unavailable(x, "updating the write model", rc);
        goto fail;
    }
    if ((rc = log_append_record(lg, &le, position)) != 0) {
        log_unavailable(x, "appending", rc);
        goto fail;
    }
    /* The lock is held and the model was caught up: the log assigns exactly head+1. */
    assert(*position == ev->position);
    if ((rc = mdb_txn_commit(txn)) != 0)
        commit_failed(x, *position, ef_mdb_rc(rc));
    sbuf_free(&data);
    sbuf_free(&meta);
    return 0;
fail:
    mdb_txn_abort(txn);
    sbuf_free(&data);
    sbuf_free(&meta);
    *position = 0;
    return ret;
}

/* Steps 3-8: what a full map makes start over, from the write transaction's begin to the
 * append. Returns 0 when the command has its outcome (*position, *e or x->p, as
 * run_locked says), or MDB_MAP_FULL when the map filled up before anything was appended
 * (every transaction ended, x->p not set). */
static int run_txn(struct exec *x, struct wm_idem **e, uint64_t *position)
{
    MDB_txn *txn = NULL;
    int rc;
    if ((rc = begin_current(x, &txn)) != 0) {
        log_unavailable(x, "catching the write model up", rc);
        return 0;
    }
    if (x->has_idem) {
        *e = xmalloc(sizeof **e);
        if ((rc = lookup_idem(x, txn, *e)) != 0) {
            mdb_txn_abort(txn);
            if (rc < 0)
                log_unavailable(x, "reading the idempotency table", rc);
            else if (!x->p.status)
                *position = (*e)->position; /* a repeat */
            return 0;
        }
        free(*e);
        *e = NULL;
    }
    int64_t cutoff = ef_now_ms() - (int64_t)x->ctx->idempotency_ttl_hours * 3600 * 1000;
    if ((rc = wm_prune_idem(x->ctx->wm, txn, cutoff, PRUNE_PER_COMMAND, NULL)) != 0) {
        mdb_txn_abort(txn);
        if (rc == MDB_MAP_FULL)
            return rc;
        log_unavailable(x, "pruning the idempotency table", rc);
        return 0;
    }
    shop_view_clear(&x->view); /* a second attempt must not see the first one's lookups */
    if ((rc = decide_and_append(x, txn, position)) == 0)
        x->ev.position = *position;
    return rc == MDB_MAP_FULL ? rc : 0;
}

/* Steps 2-8, under the append lock. On return *position is the record to make durable
 * before answering (0: none), and *e the stored answer of an idempotent repeat (NULL:
 * none; the caller frees it); or x->p is set. A full write-model map is grown (wm_grow:
 * the lock keeps the other command threads' transactions out, model.c the snapshot copy) and
 * the command decided again: nothing had been appended. */
static void run_locked(struct exec *x, struct wm_idem **e, uint64_t *position)
{
    struct log *lg = x->ctx->log;
    uint64_t t0 = ef_mono_ns();
    int rc = log_append_begin(lg);
    if (rc) {
        log_unavailable(x, "taking the append lock", rc);
        return;
    }
    uint64_t t1 = ef_mono_ns();
    observe(x, WRITE_STAGE_LOCK_WAIT, t1 - t0);
    /* Killed workers can leave stale LMDB reader slots that pin old pages; clear them
     * now and then (cheap, and done under the lock so only one process does it at once). */
    if (++x->ctx->commands % WRITE_READER_CHECK_EVERY == 0)
        wm_reader_check(x->ctx->wm);
    for (int grown = 0; (rc = run_txn(x, e, position)) == MDB_MAP_FULL; grown++) {
        if (grown == WRITE_GROW_TRIES || (rc = wm_grow(x->ctx->wm)) != 0) {
            log_unavailable(x, "updating the write model", rc ? rc : MDB_MAP_FULL);
            break;
        }
    }
    log_append_end(lg);
    observe(x, WRITE_STAGE_LOCKED, ef_mono_ns() - t1);
}

/* Step 9: nothing is acknowledged before an fdatasync covers it. */
static void answer_durable(struct exec *x, const struct wm_idem *e, uint64_t position)
{
    int rc;
    if (x->p.status || position == 0)
        return;
    uint64_t t0 = ef_mono_ns();
    rc = log_sync(x->ctx->log, position);
    observe(x, WRITE_STAGE_SYNC_WAIT, ef_mono_ns() - t0);
    if (rc != 0) {
        /* The record is published and cannot be taken back (others may have read it); it
         * may still become durable with a later fdatasync. Not acknowledging it is the
         * only honest answer: a retry with the same Idempotency-Key gets the original
         * answer once it is durable. */
        EFLOG_ERROR("fdatasync failed position=%" PRIu64 " err=\"%s\"", position, log_strerror(rc));
        problem_set(&x->p, 503, "log_unavailable",
                    "the log could not be synced (%s); the command was not acknowledged",
                    log_strerror(rc));
    } else if (e) {
        answer_ok(x, e->status, e->body, e->body_len, e->position, e->version);
    } else {
        struct sbuf body = SBUF_INIT;
        int status;
        event_response(&x->ev, &status, &body);
        answer_ok(x, status, body.data, body.len, position, x->ev.version);
        sbuf_free(&body);
    }
}

void write_execute(struct write_ctx *ctx, const struct write_request *req,
                   struct write_response *resp)
{
    struct exec *x = xmalloc(sizeof *x);
    memset(x, 0, offsetof(struct exec, cmd));
    shop_view_clear(&x->view);
    event_clear(&x->ev);
    x->ctx = ctx;
    x->req = req;
    x->resp = resp;
    memset(resp, 0, sizeof *resp);
    problem_init(&x->p);
    if (parse_request(x) == 0) {
        struct wm_idem *e = NULL;
        uint64_t position = 0;
        run_locked(x, &e, &position);
        answer_durable(x, e, position);
        free(e);
    }
    if (x->p.status)
        answer_problem(x);
    assert(resp->status != 0);
    free(x);
}
