#include <config.h>

#include "util/crc32c.h"

#include <isa-l/crc.h>

/* ISA-L's crc32_iscsi neither inverts the initial value nor the result; the standard
 * CRC32C inverts both, which is also what makes the function chainable. */
uint32_t ef_crc32c(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    crc = ~crc;
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        crc = crc32_iscsi((unsigned char *)b, chunk, crc);
        b += chunk;
        n -= (size_t)chunk;
    }
    return ~crc;
}
