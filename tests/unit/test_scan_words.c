/* Which words a memory scan takes for return addresses: one just after a
 * call instruction inside a guarded range; not one at the range's very end
 * (after a call that never returns), nor one after no call; and a program
 * counter that setjmp mangled, only with the pointer guard, wherever it is
 * in a run of words. The "code" is
 * bytes of this process, read back through /proc/self/mem. */
#include "live/mem.h"
#include "live/scan.h"
#include "unit.h"

#include <unistd.h>

/* call rel32; nop; call rel32 (the last instruction) */
static const unsigned char code[] = {0xe8, 1, 2, 3, 4, 0x90, 0xe8, 1, 2, 3, 4};

static uint64_t mangle(uint64_t v, uint64_t guard)
{
	v ^= guard;
	return (v << 0x11) | (v >> (64 - 0x11));
}

static bool found(int fd, const struct range_set *rs, uint64_t word, const uint64_t *guard)
{
	size_t i = 0;

	return scan_words(fd, rs, &word, 1, guard, &i) != NULL;
}

/* Where in a run of words the first return address is (n: none). Long
 * runs are tested eight words at a time: the test must not hide one. */
static size_t position(int fd, const struct range_set *rs, const uint64_t *words, size_t n,
		       const uint64_t *guard)
{
	size_t i = 0;

	return scan_words(fd, rs, words, n, guard, &i) ? i : n;
}

int main(void)
{
	uint64_t run[19] = {0};
	uint64_t lo = (uint64_t)(uintptr_t)code, guard = 0x5a5a12345678f00dull;
	const struct addr_range range = {lo, lo + sizeof(code), "f", false};
	struct range_set rs;
	int fd = mem_open(getpid());

	CHECK(fd >= 0);
	CHECK(range_set_init(&rs, &range, 1) == 0);
	CHECK(found(fd, &rs, lo + 5, NULL));		     /* after the first call */
	CHECK(!found(fd, &rs, lo + 6, NULL));		     /* after the nop */
	CHECK(!found(fd, &rs, lo + sizeof(code), NULL));     /* the end: a noreturn call */
	CHECK(!found(fd, &rs, lo + 5 + 4096, NULL));	     /* outside */
	CHECK(!found(fd, &rs, mangle(lo + 5, guard), NULL)); /* mangled, no guard */
	CHECK(found(fd, &rs, mangle(lo + 5, guard), &guard));
	CHECK(!found(fd, &rs, mangle(lo + 6, guard), &guard));
	for (size_t at = 0; at < 19; at++) {
		run[at] = lo + 5;
		CHECK(position(fd, &rs, run, 19, NULL) == at);
		run[at] = mangle(lo + 5, guard);
		CHECK(position(fd, &rs, run, 19, &guard) == at);
		CHECK(position(fd, &rs, run, 19, NULL) == 19);
		run[at] = lo + 6;
		CHECK(position(fd, &rs, run, 19, NULL) == 19);
		run[at] = 0;
	}
	range_set_free(&rs);
	close(fd);
	return unit_status();
}
