#include <config.h>

#include "util/uuid7.h"

#include "util/randbytes.h"

#include <time.h>
#include <uuid/uuid.h>

void ef_uuid7_bytes(unsigned char u[16], uint64_t unix_ns, const unsigned char rand[8])
{
    uint64_t ms = unix_ns / 1000000u;
    /* The fraction of the millisecond in 1/4096 ms: below 4096 since ns % 10^6 < 10^6. */
    unsigned frac = (unsigned)((unix_ns % 1000000u) * 4096u / 1000000u);
    for (int i = 0; i < 6; i++)
        u[i] = (unsigned char)(ms >> (40 - 8 * i));
    u[6] = (unsigned char)(0x70 | (frac >> 8));
    u[7] = (unsigned char)frac;
    u[8] = (unsigned char)(0x80 | (rand[0] & 0x3f));
    for (int i = 1; i < 8; i++)
        u[8 + i] = rand[i];
}

int ef_uuid7(char out[EF_UUID_TEXT_LEN + 1])
{
    unsigned char r[8], u[16];
    int rc = ef_randbytes(r, sizeof r);
    if (rc)
        return rc;
    struct timespec ts;
    /* CLOCK_REALTIME cannot fail with a valid pointer; the vDSO answers without a system
     * call. Before 1970 (a badly set clock) the time part is 0: still unique. */
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
        ts.tv_sec = 0, ts.tv_nsec = 0;
    ef_uuid7_bytes(u, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec, r);
    uuid_unparse_lower(u, out);
    return 0;
}
