/* A hash index over an array its caller owns: it maps a hash to positions
 * in that array, and the caller compares the entries it is handed. Entries
 * are never removed; a caller whose array shrinks ignores positions past
 * its end (and finds a position reused by another entry unequal). */
#ifndef OPUS_UTIL_HINDEX_H
#define OPUS_UTIL_HINDEX_H

#include <stddef.h>
#include <stdint.h>

struct opus_hindex {
	struct opus_hslot {
		uint64_t hash;
		size_t pos; /* position + 1; 0: empty */
	} * v;
	size_t cap, n;
};

/* FNV-1a over a string, or len bytes, continued from seed (0 to start). */
uint64_t opus_hash_str(const char *s, uint64_t seed);
uint64_t opus_hash_mem(const void *p, size_t len, uint64_t seed);
uint64_t opus_hash_u64(uint64_t v, uint64_t seed);

int opus_hindex_add(struct opus_hindex *h, uint64_t hash, size_t pos);
/* The positions filed under hash, one per call: *cursor starts at 0;
 * SIZE_MAX when there are no more. */
size_t opus_hindex_next(const struct opus_hindex *h, uint64_t hash, size_t *cursor);
void opus_hindex_free(struct opus_hindex *h);

#endif
