/* command: the shop's commands as plain data, and the strict parser that builds them from
 * an HTTP request (method, path, body).
 *
 * Parsing is strict and total: every request either yields one struct command, or a struct
 * problem (400 invalid_json or validation_failed with every field error found, 404 for an
 * unknown path, 405 for a known path with another method). The body is read with the yajl
 * streaming parser; the limits of API.md section 3 are enforced here, not only by nginx:
 * nesting <= 32 levels, strings <= 256 bytes, <= 100 order lines, ids matching
 * VOCAB_ID_PATTERN (domain/vocab.h), integers in int64 (numbers are taken as raw text, so
 * 2^63 is "out of range", not a parser overflow), no duplicate or unknown keys.
 *
 * Strings in a struct command are NUL-terminated and contain no NUL (a "\u0000" escape is
 * rejected), and are valid UTF-8 (yajl validates it).
 */
#ifndef EF_COMMAND_H
#define EF_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "domain/problem.h"
#include "domain/vocab.h" /* the id grammar: vocab_valid_id() */

#define CMD_ID_MAX VOCAB_ID_MAX /* bytes of an id */
#define CMD_STR_MAX 256      /* bytes of any string value */
#define CMD_LINES_MAX 100    /* order lines */
#define CMD_DEPTH_MAX 32     /* JSON nesting */
#define CMD_BODY_MAX 65536   /* request body bytes */
#define CMD_QTY_MAX 1000     /* per order line */
#define CMD_RESTOCK_MAX 1000000

enum cmd_kind {
    CMD_REGISTER_USER,
    CMD_DEPOSIT,
    CMD_ADD_ITEM,
    CMD_RESTOCK,
    CMD_CREATE_ORDER,
    CMD_PAY,
    CMD_SHIP,
    CMD_DELIVER,
    CMD_CANCEL,
    CMD_KIND_COUNT
};

struct cmd_line {
    char item_id[CMD_ID_MAX + 1];
    int64_t quantity; /* 1..CMD_QTY_MAX */
};

/* Which fields are meaningful depends on kind (see the table in command.c). */
struct command {
    enum cmd_kind kind;
    /* The resource the command names: user_id, item_id or order_id (from the body for the
     * three creates, from the path otherwise). For CreateOrder without order_id it is ""
     * until the write side generates one. */
    char id[CMD_ID_MAX + 1];
    char user_id[CMD_ID_MAX + 1];  /* CreateOrder */
    char name[CMD_STR_MAX + 1];    /* RegisterUser, AddItem */
    char email[CMD_STR_MAX + 1];   /* RegisterUser, when has_email */
    char category[CMD_STR_MAX + 1];/* AddItem */
    char reason[CMD_STR_MAX + 1];  /* Cancel, when has_reason */
    int has_email;
    int has_reason;
    int64_t amount; /* Deposit amount_cents, AddItem price_cents, Restock quantity */
    size_t nlines;
    struct cmd_line lines[CMD_LINES_MAX]; /* last: only [0, nlines) is meaningful */
};

/* The route of a command: kind and, for path commands, the id from the path. */
struct cmd_route {
    enum cmd_kind kind;
    char path_id[CMD_ID_MAX + 1];
    const char *label; /* route template for metrics: "POST /api/orders/{id}/pay" */
};

/* Matches method and path against the command routes. Returns 0 and fills *route, or
 * fills *p: 404 not_found (unknown path), 405 method_not_allowed (the caller must add
 * "Allow: POST"; also for any non-POST /api/ or /metrics request, which belongs to the
 * query program), 400 validation_failed with field "path" (a path id that is not a valid
 * id). Returns -1 on error. */
int cmd_route_match(const char *method, const char *path, struct cmd_route *route,
                    struct problem *p);

/* Parses body (body_len bytes; it need not be NUL-terminated) for route into *cmd. Returns
 * 0, or -1 with *p set to 400 invalid_json / validation_failed / 413 payload_too_large. */
int cmd_parse_body(const struct cmd_route *route, const char *body, size_t body_len,
                   struct command *cmd, struct problem *p);

/* Whether the command creates its stream (RegisterUser, AddItem, CreateOrder). */
int cmd_is_create(enum cmd_kind kind);

#endif
