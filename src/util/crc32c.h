/* crc32c: the CRC32C (Castagnoli) every checksum of eventfold uses: log records, snapshot
 * files. ISA-L's crc32_iscsi does the work (hardware CRC instructions where there are any).
 */
#ifndef EF_CRC32C_H
#define EF_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C of n bytes continuing from crc (start with 0); the standard CRC32C (check value
 * 0xE3069283 for "123456789"), chainable: ef_crc32c(ef_crc32c(0, a), b) == ef_crc32c(0, a b). */
uint32_t ef_crc32c(uint32_t crc, const void *p, size_t n);

#endif
