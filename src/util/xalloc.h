/* xalloc: allocation that cannot fail.
 *
 * Out of memory is not a condition eventfold tries to survive inside a request: the
 * wrappers log one line (eflog) and abort(), and the master process (or the service
 * manager) starts a fresh worker. Capacity errors of normal life (ENOSPC, MDB_MAP_FULL)
 * are handled where they happen and never routed through here.
 */
#ifndef EF_XALLOC_H
#define EF_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
/* For other libraries' allocators (yajl_alloc, XXH3_createState): p, or out of memory
 * as above when it is NULL. */
void *xcheck(void *p);
/* Caller owns the copy; free() it. */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
