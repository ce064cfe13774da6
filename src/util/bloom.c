/* bloom: a list of Bloom filters of growing capacity (bloom.h).
 *
 * Each part has 16 bits per hash of its capacity and 4 probes, all in one 64-byte block
 * (a blocked Bloom filter: one cache miss per lookup and per part): about 0.25% of false
 * positives per full part in theory, 0.2 to 0.3% measured (blocks fill unevenly). A
 * lookup asks every part, so their rates add up; parts grow fourfold, so there are few
 * (a filter of n hashes has about log4(n / first capacity) + 1). Probes come from
 * the hash itself: its high bits pick the block, four 9-bit fields pick a bit in it. */
#include <config.h>

#include "util/bloom.h"

#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

#define BITS_PER_HASH 16
#define BLOCK_WORDS 8 /* 64 bytes */

struct part {
    struct part *next; /* the older part, a quarter of this one's capacity */
    uint64_t *words;
    size_t blocks;     /* a power of two */
    size_t n, cap;
};

struct ef_bloom {
    struct part *newest;
    size_t count;
};

static struct part *part_new(size_t cap)
{
    size_t c = 64;
    while (c < cap)
        c *= 2;
    struct part *p = xcalloc(1, sizeof *p);
    p->cap = c;
    p->blocks = c * BITS_PER_HASH / (64 * BLOCK_WORDS);
    p->words = xcalloc(p->blocks * BLOCK_WORDS, sizeof *p->words);
    return p;
}

struct ef_bloom *ef_bloom_new(size_t first_capacity)
{
    struct ef_bloom *b = xcalloc(1, sizeof *b);
    b->newest = part_new(first_capacity);
    return b;
}

void ef_bloom_free(struct ef_bloom *b)
{
    if (!b)
        return;
    for (struct part *p = b->newest, *next; p; p = next) {
        next = p->next;
        free(p->words);
        free(p);
    }
    free(b);
}

static uint64_t *block_of(const struct part *p, uint64_t h)
{
    return p->words + ((h >> 40) & (p->blocks - 1)) * BLOCK_WORDS;
}

/* The 4 probes' bits of h in its block: 9 bits each (a bit of 512), from h's low 36 bits. */
#define PROBE(h, i) ((unsigned)((h) >> (9 * (i))) & 511u)

void ef_bloom_add(struct ef_bloom *b, uint64_t h)
{
    struct part *p = b->newest;
    if (p->n == p->cap) {
        struct part *np = part_new(4 * p->cap);
        np->next = p;
        b->newest = p = np;
    }
    uint64_t *blk = block_of(p, h);
    for (int i = 0; i < 4; i++) {
        unsigned bit = PROBE(h, i);
        blk[bit / 64] |= 1ull << (bit % 64);
    }
    p->n++;
    b->count++;
}

int ef_bloom_maybe(const struct ef_bloom *b, uint64_t h)
{
    for (const struct part *p = b->newest; p; p = p->next) {
        const uint64_t *blk = block_of(p, h);
        int all = 1;
        for (int i = 0; i < 4 && all; i++) {
            unsigned bit = PROBE(h, i);
            all = (blk[bit / 64] >> (bit % 64)) & 1;
        }
        if (all)
            return 1;
    }
    return 0;
}

void ef_bloom_prefetch(const struct ef_bloom *b, uint64_t h)
{
    for (const struct part *p = b->newest; p; p = p->next)
        __builtin_prefetch(block_of(p, h));
}

size_t ef_bloom_count(const struct ef_bloom *b) { return b->count; }
