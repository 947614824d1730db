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
	uint8_t *page = mmap(NULL, EXITS_SIZE + EXITS_PAGE, PROT_READ | PROT_WRITE | PROT_EXEC,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *table = (uint64_t *)(void *)(page + EXITS_SIZE), word = (uint64_t)landing;
	struct exit_site x = {.tid = gettid(), .slot = (uint64_t)&word, .ret = (uint64_t)landing};
	uint64_t stub = 0, second = 0, again = 0;
	struct exits_area a = exits_of((uint64_t)page, (uint64_t)table);
	int fd = mem_open(getpid());

	CHECK(page != MAP_FAILED && fd >= 0);
	if (page == MAP_FAILED || fd < 0)
		return unit_status();
	/* Up to the table; a record without one names a page. */
	CHECK(a.size == EXITS_SIZE);
	CHECK(exits_of((uint64_t)page, 0).size == EXITS_PAGE);
	table[0] = 0x7f0000001000;
	CHECK(exits_plant_switch(fd, a, &x, (uint64_t)table, false, &stub) == 0);
	CHECK(word == stub); /* the return now leads to the stub */
	CHECK(exits_armed(fd, a));
	CHECK(return_through(word, 40, 2) == 42); /* rax and rdx handed on */
	CHECK(landed == 1);			  /* ...to where it led */
	CHECK(table[0] == DISPATCH_SWITCHED);	  /* and the thread switched */
	CHECK(exits_retire(fd, stub) == 0);
	CHECK(!exits_armed(fd, a));

	/* A fresh stub unless reuse is allowed; then the retired one. */
	word = (uint64_t)landing;
	table[1] = 0x7f0000002000;
	CHECK(exits_plant_switch(fd, a, &x, (uint64_t)(table + 1), false, &second) == 0);
	CHECK(second != stub);
	CHECK(exits_disarm(fd, a) == 0); /* not returned through: put back */
	CHECK(word == (uint64_t)landing);
	CHECK(exits_plant_switch(fd, a, &x, (uint64_t)(table + 1), true, &again) == 0);
	CHECK(again == stub);
	CHECK(return_through(word, 1, 2) == 3);
	CHECK(table[1] == DISPATCH_SWITCHED && landed == 2);

	/* A return address that moved since the stack was read: refused. */
	word = 0;
	CHECK(exits_plant_switch(fd, a, &x, (uint64_t)table, true, &again) == -ENOTSUP);

	/* 256 threads inside at one stop, each with its stub (the last one
	 * in the fourth page, next to the table); the next finds none. */
	size_t planted = 2;
	uint64_t words[300];

	for (size_t k = 0; k < 300; k++) {
		struct exit_site y = {.tid = gettid(), .slot = (uint64_t)&words[k], .ret = 1};

		words[k] = 1;
		if (exits_plant_switch(fd, a, &y, (uint64_t)(table + 2), false, &again))
			break;
		planted++;
	}
	CHECK(planted == EXITS_SIZE / 64);
	CHECK(again == (uint64_t)page + EXITS_SIZE - 64);
	CHECK(exits_disarm(fd, a) == 0 && words[0] == 1 && words[planted - 3] == 1);
	close(fd);
	munmap(page, EXITS_SIZE + EXITS_PAGE);
	return unit_status();
}
