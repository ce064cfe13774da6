#include <config.h>

#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

#include "util/eflog.h"

/* eflog formats on the stack and writes with one write(2): it allocates nothing, so it
 * can report the failure of an allocation. */
static void oom(size_t n)
{
    EFLOG_ERROR("out of memory bytes=%zu", n);
    abort();
}

void *xcheck(void *p)
{
    if (!p) {
        EFLOG_ERROR("out of memory (a library's allocation failed)");
        abort();
    }
    return p;
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        oom(count * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}
