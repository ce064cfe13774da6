/* bloom: a set of 64-bit hashes that answers "maybe here" or "certainly not".
 *
 * Used where a definite "no" saves a slower lookup: a rebuild's fold asks it before
 * searching LMDB for a row it has never written (readmodel/rmodel_bulk.h).
 *
 * Guarantees
 *  - No false negative: ef_bloom_maybe() is 1 for every hash added.
 *  - False positives: about 0.3% per part. The filter is a list of Bloom filters (parts),
 *    each four times the capacity of the one before (a new one starts when the newest is
 *    full); a lookup asks each, so a filter of n hashes answers wrongly about
 *    0.3% x (log4(n / first_capacity) + 1) of the time: give first_capacity a fair guess.
 *    Memory: 2 bytes per hash of capacity (up to 8 per hash added, just after a part was
 *    added).
 *  - The hashes must be well mixed already (a keyed XXH3 here): no rehashing is done.
 *
 * Not thread-safe: one thread adds and asks. Allocation failure aborts (xalloc).
 */
#ifndef EF_BLOOM_H
#define EF_BLOOM_H

#include <stddef.h>
#include <stdint.h>

struct ef_bloom;

/* A filter whose first part holds first_capacity hashes (rounded up to a power of two). */
struct ef_bloom *ef_bloom_new(size_t first_capacity);
void ef_bloom_free(struct ef_bloom *b); /* accepts NULL */
void ef_bloom_add(struct ef_bloom *b, uint64_t h);
/* 0: h was never added; 1: it may have been. */
int ef_bloom_maybe(const struct ef_bloom *b, uint64_t h);
/* A hint: ef_bloom_maybe(b, h) is about to be asked (its blocks are fetched now). */
void ef_bloom_prefetch(const struct ef_bloom *b, uint64_t h);
/* Hashes added so far. */
size_t ef_bloom_count(const struct ef_bloom *b);

#endif
