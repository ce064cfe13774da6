#include <config.h>

#include "util/path.h"

#include "util/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int ef_path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

char *ef_path_join_alloc(const char *dir, const char *name)
{
    size_t cap = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(cap);
    ef_path_join(p, cap, dir, name); /* cap fits it: cannot fail */
    return p;
}
