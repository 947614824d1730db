/* The switch stub of a per-thread transition, run in this process: a
 * return address sent to it leads where it led before, with rax and rdx
 * (the return values) as the function left them, and its thread's table
 * slot reads switched afterwards; a stub returned through is used again
 * only when asked to. The "stack slot" is a word of this test's, written
 * through /proc/self/mem as opus writes a target's. */
#include "live/dispatch.h"
#include "live/exits.h"
#include "live/mem.h"
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

static long landed;

/* Where the return leads: counts, and answers rax + rdx as it found them. */
__attribute__((noinline)) static long landing(void)
{
	long rax, rdx;

	__asm__ volatile("mov %%rax, %0\n\tmov %%rdx, %1" : "=r"(rax), "=r"(rdx));
	landed++;
	return rax + rdx;
}

/* Enter the stub as a return into it does, rax and rdx set. The call's own
 * return address stands for the caller's frame the stub returns to. */
static long return_through(uint64_t stub, long rax, long rdx)
{
	long r;

	__asm__ volatile("sub $128, %%rsp\n\t"
			 "call *%[stub]\n\t"
			 "add $128, %%rsp"
			 : "=a"(r), "+d"(rdx)
			 : [stub] "r"(stub), "a"(rax)
			 : "rcx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
	return r;
}

int main(void)
{
	uint8_t *page = mmap(NULL, 2 * EXITS_PAGE, PROT_READ | PROT_WRITE | PROT_EXEC,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *table = (uint64_t *)(void *)(page + EXITS_PAGE), word = (uint64_t)landing;
	struct exit_site x = {.tid = gettid(), .slot = (uint64_t)&word, .ret = (uint64_t)landing};
	uint64_t stub = 0, second = 0, again = 0;
	int fd = mem_open(getpid());

	CHECK(page != MAP_FAILED && fd >= 0);
	if (page == MAP_FAILED || fd < 0)
		return unit_status();
	table[0] = 0x7f0000001000;
	CHECK(exits_plant_switch(fd, (uint64_t)page, &x, (uint64_t)table, false, &stub) == 0);
	CHECK(word == stub); /* the return now leads to the stub */
	CHECK(exits_armed(fd, (uint64_t)page));
	CHECK(return_through(word, 40, 2) == 42); /* rax and rdx handed on */
	CHECK(landed == 1);			  /* ...to where it led */
	CHECK(table[0] == DISPATCH_SWITCHED);	  /* and the thread switched */
	CHECK(exits_retire(fd, stub) == 0);
	CHECK(!exits_armed(fd, (uint64_t)page));

	/* A fresh stub unless reuse is allowed; then the retired one. */
	word = (uint64_t)landing;
	table[1] = 0x7f0000002000;
	CHECK(exits_plant_switch(fd, (uint64_t)page, &x, (uint64_t)(table + 1), false, &second) ==
	      0);
	CHECK(second != stub);
	CHECK(exits_disarm(fd, (uint64_t)page) == 0); /* not returned through: put back */
	CHECK(word == (uint64_t)landing);
	CHECK(exits_plant_switch(fd, (uint64_t)page, &x, (uint64_t)(table + 1), true, &again) == 0);
	CHECK(again == stub);
	CHECK(return_through(word, 1, 2) == 3);
	CHECK(table[1] == DISPATCH_SWITCHED && landed == 2);

	/* A return address that moved since the stack was read: refused. */
	word = 0;
	CHECK(exits_plant_switch(fd, (uint64_t)page, &x, (uint64_t)table, true, &again) ==
	      -ENOTSUP);
	close(fd);
	munmap(page, 2 * EXITS_PAGE);
	return unit_status();
}
