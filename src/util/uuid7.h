/* uuid7: time-ordered UUIDs (version 7, RFC 9562) in their lower-case text form.
 *
 * Why version 7 and not random (version 4): a generated order id is the key of the order
 * in the write model and in the read model (orders, and the stream index through the
 * order's stream name). Random keys land on a random B-tree leaf each, so every command
 * copied a leaf of its own in each of those trees (LMDB copies a page on its first write
 * in a transaction). Ids that grow with time land on the last leaves, which one batch of
 * commands shares and which stay in the CPU caches; and an order's later events (pay,
 * ship), which mostly follow soon after, find it among recent pages.
 *
 * Layout (RFC 9562 5.7 and 6.2, method 3):
 *   48 bits  Unix time in milliseconds (CLOCK_REALTIME)
 *    4 bits  version 7
 *   12 bits  the fraction of that millisecond, in 1/4096 ms (about 244 ns)
 *    2 bits  variant 10
 *   62 bits  random, from the kernel (util/randbytes.h)
 *
 * Guarantees: unique with overwhelming probability (62 random bits per 244 ns tick, per
 * id); ordered by creation time across threads and processes of one machine to within the
 * clock's resolution, not strictly: ids made in the same tick compare at random, and a
 * clock stepped back (NTP) makes later ids sort before earlier ones. Nothing relies on the
 * order for correctness; it only buys locality.
 *
 * libuuid in Debian 12 (util-linux 2.38) has no version 7 (uuid_generate_time_v7 came in
 * 2.41); when getrandom() fails, the caller falls back to libuuid's version 4.
 */
#ifndef EF_UUID7_H
#define EF_UUID7_H

#include <stdint.h>

#define EF_UUID_TEXT_LEN 36

/* Fills u with the 16 bytes of a version-7 UUID for Unix time unix_ns (nanoseconds) and
 * the random bytes rand[0..7]; only their low 62 bits are used. Its text form is libuuid's
 * uuid_unparse_lower(). */
void ef_uuid7_bytes(unsigned char u[16], uint64_t unix_ns, const unsigned char rand[8]);

/* A new version-7 UUID of now in text form: 0, or -errno when no random bytes could be
 * had (getrandom failed): then out holds nothing. */
int ef_uuid7(char out[EF_UUID_TEXT_LEN + 1]);

#endif
