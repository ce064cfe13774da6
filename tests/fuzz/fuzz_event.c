/* fuzz_event: libFuzzer harness for the parsers of event data, both sides of the log
 * (src/readmodel/rmodel_event.c and src/domain/event.c).
 *
 * Input: byte 0 picks the event type (mod the number of types), byte 1 its schema version
 * (1 up to the current one); the rest is the record's data, in a heap buffer of exactly its
 * size (not NUL-terminated). Properties checked:
 *  - the read side's fast path and its yajl fallback agree: where the fast path does not
 *    give up, both accept with the same fields (strings compared by content) or both reject
 *    with the same reason; rmodel_ev_parse (what the fold calls) gives yajl's answer always;
 *  - what they accept has the invariants the folds rely on: every required field present
 *    (lines: 1..RMODEL_MAX_LINES, each with an item and a quantity > 0), strings inside the
 *    record's data or the event's own memory;
 *  - the command side's event_decode answers 0, -1 or EVENT_UNKNOWN_TYPE; what it accepts
 *    encodes (event_encode_data) to data it decodes again to the same event;
 *  - no crash, leak or undefined behaviour in any of them (ASan, UBSan).
 */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/event.h"
#include "domain/vocab.h"
#include "readmodel/rmodel_event.h"
#include "util/eflog.h"
#include "util/sbuf.h"

#define FUZZ_NAME "fuzz_event"
#include "fuzz.h"

/* Reused across inputs, as the fold reuses its parse state. */
static struct rmodel_ev fast, slow, fold;
static struct sbuf rfast, rslow, rfold;
static struct event dec, again;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    eflog_init("fuzz_event", EF_ERROR);
    return 0;
}

static int same_str(struct rmodel_str a, struct rmodel_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Same fields, strings by content (they point into different memory). */
static int same_ev(const struct rmodel_ev *a, const struct rmodel_ev *b)
{
    if (a->type != b->type || a->schema != b->schema || a->projection != b->projection ||
        a->upcast != b->upcast || !same_str(a->order_id, b->order_id) ||
        !same_str(a->user_id, b->user_id) || !same_str(a->item_id, b->item_id) ||
        !same_str(a->name, b->name) || !same_str(a->category, b->category) ||
        a->amount != b->amount || a->balance != b->balance || a->price != b->price ||
        a->quantity != b->quantity || a->available != b->available ||
        a->refunded != b->refunded || a->nlines != b->nlines)
        return 0;
    for (size_t i = 0; i < a->nlines; i++) {
        const struct rmodel_line *x = &a->lines[i], *y = &b->lines[i];
        if (!same_str(x->item, y->item) || !same_str(x->name, y->name) ||
            !same_str(x->category, y->category) || x->quantity != y->quantity ||
            x->price != y->price)
            return 0;
    }
    return 1;
}

static int same_reason(struct sbuf *a, struct sbuf *b)
{
    return strcmp(sbuf_str(a), sbuf_str(b)) == 0;
}

/* A string of an accepted event lies in the record's data or in the event's arena. */
static void check_str(struct rmodel_str s, const struct rmodel_ev *ev, const struct log_record *rec)
{
    if (s.n == 0)
        return;
    const char *p = s.p;
    int in_data = p >= rec->data && p + s.n <= rec->data + rec->data_len;
    int in_arena = ev->arena.data && p >= ev->arena.data && p + s.n <= ev->arena.data + ev->arena.len;
    PROP(in_data || in_arena);
}

static void check_accepted(const struct rmodel_ev *ev, const struct log_record *rec)
{
    PROP(ev->projection != NULL);
    check_str(ev->order_id, ev, rec);
    check_str(ev->user_id, ev, rec);
    check_str(ev->item_id, ev, rec);
    check_str(ev->name, ev, rec);
    check_str(ev->category, ev, rec);
    if (ev->type == EV_ORDER_CREATED)
        PROP(ev->nlines >= 1 && ev->nlines <= RMODEL_MAX_LINES && ev->order_id.n > 0);
    for (size_t i = 0; i < ev->nlines; i++) {
        const struct rmodel_line *l = &ev->lines[i];
        PROP(l->item.n > 0 && l->quantity > 0);
        check_str(l->item, ev, rec);
        check_str(l->name, ev, rec);
        check_str(l->category, ev, rec);
    }
}

/* The read side: fast path and yajl agree, and the fold's path is yajl's answer. */
static void read_side(const struct log_record *rec)
{
    int rf = rmodel_ev_parse_with(&fast, rec, &rfast, RMODEL_EV_PARSE_FAST);
    int rs = rmodel_ev_parse_with(&slow, rec, &rslow, RMODEL_EV_PARSE_YAJL);
    int ra = rmodel_ev_parse(&fold, rec, &rfold);
    PROP(rf == 0 || rf == 1 || rf == RMODEL_EV_GAVE_UP);
    PROP(rs == 0 || rs == 1);
    PROP(ra == rs);
    if (rs == 0) {
        PROP(same_ev(&fold, &slow));
        check_accepted(&slow, rec);
        check_accepted(&fold, rec);
    } else {
        PROP(same_reason(&rfold, &rslow));
        PROP(rslow.len > 0);
    }
    if (rf == RMODEL_EV_GAVE_UP)
        return;
    if (rf != rs || (rf == 0 && !same_ev(&fast, &slow)) || (rf == 1 && !same_reason(&rfast, &rslow)))
        fprintf(stderr, "fuzz_event: fast path %d (%s), yajl %d (%s)\n", rf, sbuf_str(&rfast), rs,
                sbuf_str(&rslow));
    PROP(rf == rs);
    if (rf == 0) {
        PROP(same_ev(&fast, &slow));
        check_accepted(&fast, rec);
    } else {
        PROP(same_reason(&rfast, &rslow));
    }
}

static int same_event(const struct event *a, const struct event *b)
{
    if (memcmp(a, b, offsetof(struct event, lines)) != 0)
        return 0;
    for (size_t i = 0; i < a->nlines; i++) {
        const struct ev_line *x = &a->lines[i], *y = &b->lines[i];
        if (strcmp(x->item_id, y->item_id) != 0 || strcmp(x->name, y->name) != 0 ||
            strcmp(x->category, y->category) != 0 || x->quantity != y->quantity ||
            x->price != y->price)
            return 0;
    }
    return 1;
}

/* The command side: decoding never fails badly, and what it takes survives its encoder. */
static void write_side(const struct log_record *rec)
{
    char err[256];
    int rc = event_decode(rec, &dec, err, sizeof err);
    PROP(rc == 0 || rc == -1 || rc == EVENT_UNKNOWN_TYPE);
    PROP(memchr(err, '\0', sizeof err) != NULL || rc == 0);
    if (rc != 0)
        return;
    struct sbuf data = SBUF_INIT, meta = SBUF_INIT;
    event_encode_data(&dec, &data);
    event_encode_meta(&dec, &meta);
    struct log_record r2 = *rec;
    r2.data = data.data;
    r2.data_len = data.len;
    r2.meta = meta.data;
    r2.meta_len = meta.len;
    rc = event_decode(&r2, &again, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "fuzz_event: re-encoded event refused: %s\n", err);
    PROP(rc == 0);
    PROP(same_event(&dec, &again));
    sbuf_free(&data);
    sbuf_free(&meta);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    enum ev_type type = (enum ev_type)(data[0] % EV_TYPE_COUNT);
    int schema = 1 + data[1] % vocab_event_schema(type);
    size_t n = size - 2;
    char *json = malloc(n ? n : 1);
    PROP(json != NULL);
    if (n)
        memcpy(json, data + 2, n);
    struct log_record rec;
    memset(&rec, 0, sizeof rec);
    rec.position = 1;
    rec.stream = "order-o1";
    rec.stream_len = 8;
    rec.stream_version = 1;
    rec.timestamp_ms = 1767261600000LL;
    rec.schema_version = (uint16_t)schema;
    rec.type = vocab_event_name(type);
    rec.type_len = strlen(rec.type);
    rec.data = json;
    rec.data_len = n;
    rec.meta = "{}";
    rec.meta_len = 2;
    read_side(&rec);
    write_side(&rec);
    free(json);
    return 0;
}
