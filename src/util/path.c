#include <config.h>

#include "util/path.h"

#include <errno.h>
#include <stdio.h>

int ef_path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}
