/* The hash index: every position filed is found under its hash, once, and
 * nothing is found under a hash never filed, across growth. */
#include "unit.h"
#include "util/hindex.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define N 5000

int main(void)
{
	static char names[N][16];
	struct opus_hindex h = {0};

	for (size_t i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "sym%zu", i % (N / 2)); /* each twice */
		CHECK(opus_hindex_add(&h, opus_hash_str(names[i], 0), i) == 0);
	}
	for (size_t i = 0; i < N / 2; i++) {
		size_t cursor = 0, pos, found = 0;

		while ((pos = opus_hindex_next(&h, opus_hash_str(names[i], 0), &cursor)) !=
		       SIZE_MAX)
			found += !strcmp(names[pos], names[i]);
		CHECK(found == 2);
	}
	size_t cursor = 0;

	CHECK(opus_hindex_next(&h, opus_hash_str("never filed", 0), &cursor) == SIZE_MAX);
	CHECK(opus_hash_str("a", 0) != opus_hash_str("b", 0));
	CHECK(opus_hash_u64(1, 0) != opus_hash_u64(2, 0));
	opus_hindex_free(&h);
	return unit_status();
}
