#include <config.h>

#include "util/randbytes.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#define BLOCK 512 /* 32 order ids per getrandom() */

/* The calling thread's block: its last `left` bytes are not handed out yet (0: empty, as a
 * new thread's is). */
static _Thread_local struct {
    unsigned char bytes[BLOCK];
    size_t left;
} pool;

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_failed; /* then no block is kept: a child could reuse its bytes */

/* In a fork's child: the forking thread's block is a copy of the parent's. */
static void drop_in_child(void) { pool.left = 0; }

static void register_atfork(void) { atfork_failed = pthread_atfork(NULL, NULL, drop_in_child) != 0; }

/* Fills buf with n bytes from getrandom(): 0 or -errno. */
static int draw(unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        got += (size_t)r;
    }
    return 0;
}

int ef_randbytes(void *buf, size_t n)
{
    if (n > EF_RANDBYTES_MAX)
        return -EINVAL;
    pthread_once(&atfork_once, register_atfork);
    if (atfork_failed)
        return draw(buf, n);
    if (pool.left < n) {
        int rc = draw(pool.bytes, BLOCK);
        if (rc)
            return rc; /* the block stays empty */
        pool.left = BLOCK;
    }
    unsigned char *p = pool.bytes + BLOCK - pool.left;
    memcpy(buf, p, n);
    memset(p, 0, n); /* handed out: not kept in memory */
    pool.left -= n;
    return 0;
}
