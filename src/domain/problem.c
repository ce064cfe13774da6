#include <config.h>

#include "domain/problem.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One row per code of API.md section 3 that the command side can produce. */
static const struct {
    const char *code;
    const char *title;
} problem_titles[] = {
    { "invalid_json", "Request body is not valid JSON" },
    { "validation_failed", "Validation failed" },
    { "not_found", "Not found" },
    { "method_not_allowed", "Method not allowed" },
    { "already_exists", "Already exists" },
    { "insufficient_stock", "Insufficient stock" },
    { "insufficient_funds", "Insufficient funds" },
    { "invalid_transition", "Invalid transition" },
    { "version_mismatch", "Version mismatch" },
    { "payload_too_large", "Payload too large" },
    { "unsupported_media_type", "Unsupported media type" },
    { "idempotency_key_reused", "Idempotency key reused" },
    { "log_unavailable", "Log unavailable" },
    { "internal_error", "Internal error" },
};

const char *problem_title(const char *code)
{
    for (size_t i = 0; i < sizeof problem_titles / sizeof problem_titles[0]; i++)
        if (strcmp(problem_titles[i].code, code) == 0)
            return problem_titles[i].title;
    return "Error";
}

void problem_init(struct problem *p)
{
    memset(p, 0, sizeof *p);
}

/* vsnprintf into a fixed buffer, then back off a cut UTF-8 sequence so the text stays
 * valid UTF-8 (the answer is JSON and sbuf_json_str copies high bytes as they are). */
static void format_utf8(char *out, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(out, cap, fmt, ap);
    if (n < 0) {
        out[0] = '\0';
        return;
    }
    if ((size_t)n < cap)
        return;
    size_t len = cap - 1;
    size_t i = len;
    while (i > 0 && ((unsigned char)out[i - 1] & 0xC0) == 0x80)
        i--; /* continuation bytes */
    if (i > 0 && ((unsigned char)out[i - 1] & 0x80)) {
        unsigned char lead = (unsigned char)out[i - 1];
        size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
        if (len - (i - 1) < want)
            len = i - 1;
    }
    out[len] = '\0';
}

void problem_set(struct problem *p, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    p->status = status;
    p->code = code;
    va_start(ap, fmt);
    format_utf8(p->detail, sizeof p->detail, fmt, ap);
    va_end(ap);
}

void problem_add_error(struct problem *p, const char *field, const char *fmt, ...)
{
    if (p->nerrors == PROBLEM_ERRORS_MAX) {
        p->dropped++;
        return;
    }
    struct field_error *e = &p->errors[p->nerrors++];
    snprintf(e->field, sizeof e->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    format_utf8(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

void problem_render(const struct problem *p, struct sbuf *out)
{
    sbuf_putc(out, '{');
    sbuf_json_key(out, "type");
    sbuf_printf(out, "\"/problems/%s\"", p->code);
    sbuf_json_key(out, "title");
    sbuf_json_cstr(out, problem_title(p->code));
    sbuf_json_key(out, "status");
    sbuf_json_i64(out, p->status);
    sbuf_json_key(out, "detail");
    sbuf_json_cstr(out, p->detail);
    sbuf_json_key(out, "code");
    sbuf_json_cstr(out, p->code);
    if (p->nerrors) {
        sbuf_json_key(out, "errors");
        sbuf_putc(out, '[');
        for (size_t i = 0; i < p->nerrors; i++) {
            if (i)
                sbuf_putc(out, ',');
            sbuf_putc(out, '{');
            sbuf_json_key(out, "field");
            sbuf_json_cstr(out, p->errors[i].field);
            sbuf_json_key(out, "message");
            sbuf_json_cstr(out, p->errors[i].message);
            sbuf_putc(out, '}');
        }
        if (p->dropped) {
            sbuf_printf(out, ",{\"field\":\"\",\"message\":\"%zu more errors not shown\"}",
                        p->dropped);
        }
        sbuf_putc(out, ']');
    }
    sbuf_putc(out, '}');
}
