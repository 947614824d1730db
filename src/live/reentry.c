#include "reentry.h"
#include "registry.h"

#include <string.h>

uint64_t reentry_jump_target(const uint8_t *c, size_t i, size_t len, uint64_t at)
{
	int32_t d;

	if (i + 2 <= len &&
	    ((c[i] >= 0x70 && c[i] <= 0x7f) || c[i] == 0xeb || (c[i] & 0xfc) == 0xe0))
		return at + i + 2 + (uint64_t)(int64_t)(int8_t)c[i + 1];
	if (i + 5 <= len && c[i] == 0xe9) {
		memcpy(&d, c + i + 1, 4);
		return at + i + 5 + (uint64_t)(int64_t)d;
	}
	if (i + 6 <= len && c[i] == 0x0f && (c[i + 1] & 0xf0) == 0x80) {
		memcpy(&d, c + i + 2, 4);
		return at + i + 6 + (uint64_t)(int64_t)d;
	}
	return 0;
}

bool reentry_in_jump_bytes(const uint64_t *entries, size_t n, uint64_t addr)
{
	size_t lo = 0, hi = n;

	/* The first entry at or past addr; the one before it is the last
	 * below addr, the only one whose jump can hold it. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (entries[mid] < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo && addr - entries[lo - 1] < JUMP_SIZE;
}

bool reentry_code_may_jump(const uint8_t *code, size_t len, uint64_t at, const uint64_t *entries,
			   size_t n)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t to = reentry_jump_target(code, i, len, at);

		if (to && reentry_in_jump_bytes(entries, n, to))
			return true;
	}
	return false;
}
