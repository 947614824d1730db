#include "hindex.h"

#include <errno.h>
#include <stdlib.h>

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME  0x100000001b3ULL

uint64_t opus_hash_str(const char *s, uint64_t seed)
{
	uint64_t h = seed ? seed : FNV_OFFSET;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * FNV_PRIME;
	return h;
}

uint64_t opus_hash_mem(const void *p, size_t len, uint64_t seed)
{
	const unsigned char *b = p;
	uint64_t h = seed ? seed : FNV_OFFSET;

	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * FNV_PRIME;
	return h;
}

uint64_t opus_hash_u64(uint64_t v, uint64_t seed)
{
	uint64_t h = seed ? seed : FNV_OFFSET;

	for (int i = 0; i < 8; i++, v >>= 8)
		h = (h ^ (v & 0xff)) * FNV_PRIME;
	return h;
}

static void put(struct opus_hslot *v, size_t cap, uint64_t hash, size_t pos)
{
	size_t i = hash & (cap - 1);

	while (v[i].pos)
		i = (i + 1) & (cap - 1);
	v[i].hash = hash;
	v[i].pos = pos;
}

/* Half full at most, so that probes stay short. */
static int grow(struct opus_hindex *h)
{
	size_t cap = h->cap ? h->cap * 2 : 64;
	struct opus_hslot *v = calloc(cap, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < h->cap; i++)
		if (h->v[i].pos)
			put(v, cap, h->v[i].hash, h->v[i].pos);
	free(h->v);
	h->v = v;
	h->cap = cap;
	return 0;
}

int opus_hindex_add(struct opus_hindex *h, uint64_t hash, size_t pos)
{
	if (2 * (h->n + 1) > h->cap && grow(h))
		return -ENOMEM;
	put(h->v, h->cap, hash, pos + 1);
	h->n++;
	return 0;
}

size_t opus_hindex_next(const struct opus_hindex *h, uint64_t hash, size_t *cursor)
{
	if (!h->cap)
		return SIZE_MAX;
	/* The cursor counts probes from the hash's home slot. */
	for (; *cursor < h->cap; (*cursor)++) {
		const struct opus_hslot *s = &h->v[(hash + *cursor) & (h->cap - 1)];

		if (!s->pos)
			return SIZE_MAX;
		if (s->hash == hash) {
			(*cursor)++;
			return s->pos - 1;
		}
	}
	return SIZE_MAX;
}

void opus_hindex_free(struct opus_hindex *h)
{
	free(h->v);
	h->v = NULL;
	h->cap = h->n = 0;
}
