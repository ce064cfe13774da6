/* randbytes: random bytes from the kernel (getrandom), drawn a block at a time per thread.
 *
 * For ids that must be unpredictable and unique (a command's generated order id): one
 * getrandom() per id was 2.4% of a command worker's CPU time, a system call for 16 bytes.
 *
 * Guarantees
 *  - Every byte comes from getrandom() (the kernel's CSPRNG) and is handed out once: each
 *    thread draws its own block (thread-local), so threads never share bytes.
 *  - fork(): the child drops the block it inherited from the forking thread before it
 *    hands out a byte (pthread_atfork), so parent and child never hand out the same bytes.
 *    Other threads' blocks do not exist in the child (only the forking thread is copied).
 *
 * Caveat: a thread's unused bytes (up to a block) stay in its memory until it uses them or
 * exits, as in any user-space buffer of randomness.
 */
#ifndef EF_RANDBYTES_H
#define EF_RANDBYTES_H

#include <stddef.h>

/* Fills buf with n random bytes (n at most EF_RANDBYTES_MAX). Returns 0, or -errno when
 * getrandom() fails (ENOSYS on a kernel without it): then buf holds nothing to use. */
#define EF_RANDBYTES_MAX 256
int ef_randbytes(void *buf, size_t n);

#endif
