/* The test of code that could jump into the bytes of a jump written over
 * an entry (src/live/reentry.h): each jump encoding it reads, the bounds
 * of a jump's bytes, and the loop of gcc -O2's spin() (the backedge test
 * target), whose back edge lands 2 bytes into its entry. */
#include "live/reentry.h"
#include "unit.h"

#include <stdint.h>

#define AT 0x401000ull

/* spin() as gcc 12 -O2 compiles tests/targets/backedge: xor %edx,%edx;
 * mov (%rdi),%eax; add $1,%rdx; test %eax,%eax; je spin+2; cmp $1,%eax;
 * jg spin+2; mov %rdx,%rax; ret. */
static const uint8_t spin[] = {0x31, 0xd2, 0x8b, 0x07, 0x48, 0x83, 0xc2, 0x01, 0x85, 0xc0, 0x74,
			       0xf6, 0x83, 0xf8, 0x01, 0x7f, 0xf1, 0x48, 0x89, 0xd0, 0xc3};

static void reads_each_encoding(void)
{
	/* je -10, jmp -2, loop -3, jmp rel32 +0x10, jne rel32 -0x20 */
	const uint8_t code[] = {0x74, 0xf6, 0xeb, 0xfe, 0xe2, 0xfd, 0xe9, 0x10, 0,
				0,    0,    0x0f, 0x85, 0xe0, 0xff, 0xff, 0xff};

	CHECK(reentry_jump_target(code, 0, sizeof(code), AT) == AT + 2 - 10);
	CHECK(reentry_jump_target(code, 2, sizeof(code), AT) == AT + 2);
	CHECK(reentry_jump_target(code, 4, sizeof(code), AT) == AT + 6 - 3);
	CHECK(reentry_jump_target(code, 6, sizeof(code), AT) == AT + 11 + 0x10);
	CHECK(reentry_jump_target(code, 11, sizeof(code), AT) == AT + 17 - 0x20);
	/* A nop is no jump, nor is a jump cut off by the end of the code. */
	CHECK(reentry_jump_target((const uint8_t[]){0x90, 0x90}, 0, 2, AT) == 0);
	CHECK(reentry_jump_target(code, 6, 9, AT) == 0);
	CHECK(reentry_jump_target(code, 11, 16, AT) == 0);
}

static void bounds_a_jumps_bytes(void)
{
	const uint64_t entries[] = {0x1000, 0x1003, 0x2000};

	CHECK(!reentry_in_jump_bytes(entries, 3, 0xfff));
	CHECK(!reentry_in_jump_bytes(entries, 3, 0x2000)); /* the first byte: a call lands there */
	CHECK(reentry_in_jump_bytes(entries, 3, 0x2001));
	CHECK(reentry_in_jump_bytes(entries, 3, 0x2004));
	CHECK(!reentry_in_jump_bytes(entries, 3, 0x2005));
	CHECK(reentry_in_jump_bytes(entries, 3, 0x1006)); /* in the second of two near entries */
	CHECK(!reentry_in_jump_bytes(entries, 3, 0x1008));
	CHECK(!reentry_in_jump_bytes(entries, 0, 0x1001));
}

static void finds_a_loop_back_into_the_entry(void)
{
	const uint64_t own[] = {AT}, other[] = {AT + 0x100};

	CHECK(reentry_code_may_jump(spin, sizeof(spin), AT, own, 1));
	CHECK(!reentry_code_may_jump(spin, sizeof(spin), AT, other, 1));
	/* Its back edges land on the entry's third byte, not its first. */
	CHECK(reentry_jump_target(spin, 10, sizeof(spin), AT) == AT + 2);
	CHECK(reentry_jump_target(spin, 15, sizeof(spin), AT) == AT + 2);
}

int main(void)
{
	reads_each_encoding();
	bounds_a_jumps_bytes();
	finds_a_loop_back_into_the_entry();
	return unit_status();
}
