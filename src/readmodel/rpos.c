#include <config.h>

#include "readmodel/rpos.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/xalloc.h"
#include "util/falloc.h"

#define RPOS_MAGIC 0x53505246u /* "FRPS" */
#define RPOS_SIZE 4096

/* The shared layout. Fields are only accessed atomically; `seq` is the futex word and is
 * bumped after every change of position or generation, so a waiter that read seq before
 * checking the position cannot miss a publish (FUTEX_WAIT compares seq in the kernel). */
struct rpos_shared {
    _Atomic uint32_t magic;
    _Atomic uint32_t seq;
    _Atomic uint64_t position;
    _Atomic uint32_t generation;
};

struct rpos {
    struct rpos_shared *sh;
};

int rpos_open(const char *path, struct rpos **out)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0)
        rc = -errno;
    else if (st.st_size < RPOS_SIZE) {
        /* Zero-filled and with real blocks: a sparse page would make the first store into
         * the mapping SIGBUS on a full filesystem instead of failing here with ENOSPC. */
        rc = ef_allocate(fd, RPOS_SIZE);
    }
    void *p = MAP_FAILED;
    if (rc == 0) {
        p = mmap(NULL, RPOS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            rc = -errno;
    }
    close(fd); /* the mapping stays valid */
    if (rc)
        return rc;
    struct rpos *rp = xcalloc(1, sizeof *rp);
    rp->sh = p;
    uint32_t zero = 0;
    atomic_compare_exchange_strong(&rp->sh->magic, &zero, RPOS_MAGIC);
    if (atomic_load(&rp->sh->magic) != RPOS_MAGIC) {
        rpos_close(rp);
        return -EINVAL;
    }
    *out = rp;
    return 0;
}

void rpos_close(struct rpos *rp)
{
    if (!rp)
        return;
    munmap(rp->sh, RPOS_SIZE);
    free(rp);
}

uint64_t rpos_position(const struct rpos *rp)
{
    return atomic_load_explicit(&rp->sh->position, memory_order_acquire);
}

uint32_t rpos_generation(const struct rpos *rp)
{
    return atomic_load_explicit(&rp->sh->generation, memory_order_acquire);
}

static void wake_all(struct rpos *rp)
{
    atomic_fetch_add_explicit(&rp->sh->seq, 1, memory_order_release);
    /* FUTEX_WAKE cannot fail on a valid shared mapping; waiters time out anyway. */
    syscall(SYS_futex, &rp->sh->seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void rpos_publish(struct rpos *rp, uint64_t pos)
{
    /* Not asserted monotonic: a tailer that committed to the old model while a rebuild
     * switched models may publish once more before it notices the switch; queries check
     * the position of their own transaction anyway. */
    atomic_store_explicit(&rp->sh->position, pos, memory_order_release);
    wake_all(rp);
}

void rpos_reset(struct rpos *rp, uint64_t pos)
{
    atomic_store_explicit(&rp->sh->position, pos, memory_order_release);
    wake_all(rp);
}

void rpos_bump_generation(struct rpos *rp)
{
    atomic_fetch_add_explicit(&rp->sh->generation, 1, memory_order_release);
    wake_all(rp);
}

int rpos_wait(const struct rpos *rp, uint64_t after, int timeout_ms)
{
    uint64_t deadline = ef_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint32_t seq = atomic_load_explicit(&rp->sh->seq, memory_order_acquire);
        if (rpos_position(rp) > after)
            return 1;
        uint64_t now = ef_mono_ns();
        if (now >= deadline)
            return 0;
        uint64_t left = deadline - now;
        struct timespec ts = { (time_t)(left / 1000000000u), (long)(left % 1000000000u) };
        /* EAGAIN (seq moved), EINTR and ETIMEDOUT all lead back to the checks above. */
        syscall(SYS_futex, &rp->sh->seq, FUTEX_WAIT, seq, &ts, NULL, 0);
    }
}
