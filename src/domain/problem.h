/* problem: RFC 9457 problem details, the one shape of every error answer.
 *
 * A struct problem is filled by whoever finds the error (the request parser, the shop
 * rules, the write model) and rendered once, at the edge, as
 *   {"type":"/problems/CODE","title","status","detail","code"[,"errors":[{"field","message"}]]}
 * The struct is plain data (fixed-size buffers, no allocation) so it can live on the stack
 * and be copied. At most PROBLEM_ERRORS_MAX field errors are kept; later ones are counted
 * and summarized by one final entry, so a hostile body cannot make the answer huge.
 */
#ifndef EF_PROBLEM_H
#define EF_PROBLEM_H

#include <stddef.h>

#include "util/sbuf.h"

#define PROBLEM_ERRORS_MAX 16
#define PROBLEM_FIELD_MAX 96
#define PROBLEM_TEXT_MAX 160

struct field_error {
    char field[PROBLEM_FIELD_MAX];   /* "items[2].quantity", "path", "Idempotency-Key" */
    char message[PROBLEM_TEXT_MAX];
};

struct problem {
    int status;       /* 0 while no error was set */
    const char *code; /* static string: "validation_failed", "not_found", ... */
    char detail[PROBLEM_TEXT_MAX];
    size_t nerrors;   /* kept entries, <= PROBLEM_ERRORS_MAX */
    size_t dropped;   /* entries not kept */
    struct field_error errors[PROBLEM_ERRORS_MAX];
};

void problem_init(struct problem *p);
/* Sets status, code and a printf-style detail (truncated to fit). Keeps field errors. */
void problem_set(struct problem *p, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Adds one field error (both texts truncated to fit, never cut inside a UTF-8 sequence). */
void problem_add_error(struct problem *p, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends the problem+json body to out. */
void problem_render(const struct problem *p, struct sbuf *out);
/* The human title of a code ("Validation failed"); a generic one for unknown codes. */
const char *problem_title(const char *code);

#endif
