#include <config.h>

#include "util/randbytes.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#define BLOCK 512 /* 32 order ids per getrandom() */

static _Thread_local struct {
    unsigned char bytes[BLOCK];
    size_t used; /* bytes[used..BLOCK) are not handed out yet */
    int filled;
} pool;

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* In a fork's child: the forking thread's block is a copy of the parent's. */
static void drop_in_child(void) { pool.filled = 0; }

static void register_atfork(void) { (void)pthread_atfork(NULL, NULL, drop_in_child); }

/* Refills the calling thread's block: 0 or -errno. */
static int refill(void)
{
    size_t got = 0;
    while (got < BLOCK) {
        ssize_t r = getrandom(pool.bytes + got, BLOCK - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        got += (size_t)r;
    }
    pool.used = 0;
    pool.filled = 1;
    return 0;
}

int ef_randbytes(void *buf, size_t n)
{
    if (n > EF_RANDBYTES_MAX)
        return -EINVAL;
    pthread_once(&atfork_once, register_atfork);
    if (!pool.filled || BLOCK - pool.used < n) {
        int rc = refill();
        if (rc)
            return rc;
    }
    memcpy(buf, pool.bytes + pool.used, n);
    memset(pool.bytes + pool.used, 0, n); /* handed out: not kept in memory */
    pool.used += n;
    return 0;
}
