/* A thread that keeps what a function returned in a register across a
 * sleep: word() returns a string constant, and the loop holds that pointer
 * through a nanosleep before it prints it. Once a patch's word() returns a
 * constant of the patch's own, a stop that finds the thread asleep finds a
 * register pointing into the patch, until the next call lets go of it.
 * With an argument N, after N rounds it stops calling word() and holds the
 * last pointer for good. With a second argument "spilled", it sleeps in a
 * function that saves every register it must keep on its stack and clears
 * them: while the thread sleeps, only that stack slot holds the pointer.
 * Prints "ready 0", then "WORD N" every 10 ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) const char *word(int n)
{
	return n >= 0 ? "old" : "none";
}

/* syscall(2) leaves the callee-saved registers as they are: the pointer
 * is in one of them while the thread sleeps. */
__attribute__((noinline, used)) void nap(void)
{
	struct timespec ts = {0, 10 * 1000 * 1000};

	syscall(SYS_nanosleep, &ts, NULL);
}

/* nap with rbx, rbp and r12-r15 saved on the stack and zeroed, as a
 * function that needs them all would (with the unwind table one has). */
void nap_spilled(void);
__asm__(".text\n"
	".globl nap_spilled\n"
	".type nap_spilled, @function\n"
	"nap_spilled:\n"
	"  .cfi_startproc\n"
	"  push %rbx\n  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %rbx, 0\n"
	"  push %rbp\n  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %rbp, 0\n"
	"  push %r12\n  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %r12, 0\n"
	"  push %r13\n  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %r13, 0\n"
	"  push %r14\n  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %r14, 0\n"
	"  push %r15\n  .cfi_adjust_cfa_offset 8\n  .cfi_rel_offset %r15, 0\n"
	"  xor %ebx, %ebx\n  xor %ebp, %ebp\n  xor %r12d, %r12d\n"
	"  xor %r13d, %r13d\n  xor %r14d, %r14d\n  xor %r15d, %r15d\n"
	"  sub $8, %rsp\n  .cfi_adjust_cfa_offset 8\n" /* aligned for the call */
	"  call nap\n"
	"  add $8, %rsp\n  .cfi_adjust_cfa_offset -8\n"
	"  pop %r15\n  .cfi_adjust_cfa_offset -8\n"
	"  pop %r14\n  .cfi_adjust_cfa_offset -8\n"
	"  pop %r13\n  .cfi_adjust_cfa_offset -8\n"
	"  pop %r12\n  .cfi_adjust_cfa_offset -8\n"
	"  pop %rbp\n  .cfi_adjust_cfa_offset -8\n"
	"  pop %rbx\n  .cfi_adjust_cfa_offset -8\n"
	"  ret\n"
	"  .cfi_endproc\n"
	".size nap_spilled, .-nap_spilled\n");

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : -1;
	void (*held_nap)(void) = argc > 2 && !strcmp(argv[2], "spilled") ? nap_spilled : nap;
	const char *w = "none";
	int n = 0;

	printf("ready 0\n");
	fflush(stdout);
	for (; rounds < 0 || n < rounds; n++) {
		w = word(n);
		nap();
		printf("%s %d\n", w, n);
		fflush(stdout);
	}
	for (;; n++) {
		held_nap();
		printf("%s held %d\n", w, n);
		fflush(stdout);
	}
}
