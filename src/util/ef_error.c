#include <config.h>

#include "util/ef_error.h"

#include <lmdb.h>
#include <stddef.h>
#include <string.h>

/* Each module's strerror, weakly: see "Linking" in ef_error.h. The prototypes are written
 * here, not taken from the modules' headers, so that libefutil includes nothing above it. */
/* LMDB's too: the log and the server link no LMDB (and never see its codes). */
char *mdb_strerror(int err) __attribute__((weak));

#define EF_ERR_DECLARE(id, name, first, last, fn) \
    const char *fn(int code) __attribute__((weak));
EF_ERR_TABLE(EF_ERR_DECLARE)
#undef EF_ERR_DECLARE

#define EF_ERR_ROW(id, name, first, last, fn) \
    [EF_ERR_##id] = { name, first, last, fn, "unknown " name " error",  \
                      name " error (text not linked)" },
const struct ef_err_range ef_err_ranges[EF_ERR_NMODULES] = { EF_ERR_TABLE(EF_ERR_ROW) };
#undef EF_ERR_ROW

int ef_err_module_of(int code)
{
    for (int m = 0; m < EF_ERR_NMODULES; m++)
        if (code <= ef_err_ranges[m].first && code >= ef_err_ranges[m].last)
            return m;
    return -1;
}

const char *ef_strerror(int code)
{
    if (code == 0)
        return "success";
    if (code < 0 && code >= EF_ERR_ERRNO_LAST)
        return strerror(-code);
    if (code > 0)
        return strerror(code);
    if (code >= MDB_KEYEXIST && code <= MDB_LAST_ERRCODE)
        return mdb_strerror ? mdb_strerror(code) : "LMDB error (text not linked)";
    int m = ef_err_module_of(code);
    if (m < 0)
        return "unknown error code";
    const struct ef_err_range *r = &ef_err_ranges[m];
    return r->strerror ? r->strerror(code) : r->unlinked;
}

const char *ef_strerror_except(enum ef_err_module self, int code)
{
    if (ef_err_module_of(code) == (int)self)
        return ef_err_ranges[self].unknown;
    return ef_strerror(code);
}
