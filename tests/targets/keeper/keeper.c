/* A thread that keeps what a function returned in a register across a
 * sleep: word() returns a string constant, and the loop holds that pointer
 * through a nanosleep before it prints it. Once a patch's word() returns a
 * constant of the patch's own, a stop that finds the thread asleep finds a
 * register pointing into the patch, until the next call lets go of it.
 * With an argument N, after N rounds it stops calling word() and holds the
 * last pointer for good. With a second argument "spilled", it sleeps in a
 * function that saves every register it must keep on its stack and clears
 * them: while the thread sleeps, only that stack slot holds the pointer.
 * With "vector", it spins (about 10 ms a round, no syscall) with the
 * pointer in xmm0 alone, every general register cleared. With "local",
 * it naps with the pointer in a slot of its frame alone; with "redzone",
 * it spins with the pointer below its stack pointer alone; with
 * "handler", a SIGUSR2 handler that never returns holds it as "local"
 * does, in a frame of its own.
 * Prints "ready 0", then "WORD N" every 10 ms. */
#include <signal.h>
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

static int held_round;

/* The end of a holding loop: what its call left below the stack pointer
 * wiped (printf keeps copies of its argument there), and round again. */
#define WIPE_BELOW_AND_AGAIN                                                                       \
	"  lea -512(%rsp), %rdi\n"                                                                 \
	"  xor %eax, %eax\n"                                                                       \
	"  mov $64, %ecx\n"                                                                        \
	"  rep stosq\n"                                                                            \
	"  jmp 1b\n"                                                                               \
	"  .cfi_endproc\n"

/* One round's line, from hold_in_xmm and hold_in_frame. */
__attribute__((noinline, used)) void say_held(const char *w)
{
	printf("%s held %d\n", w, held_round++);
	fflush(stdout);
}

/* Never returns: spins with w in xmm0 alone (every general register
 * cleared, main's too, which it never gives back), then says it, with w
 * kept in rbx across the call (a callee that needs rbx saves it where its
 * CFI says), and clears what the call left below the stack pointer. Not
 * in a slot of its frame: that is "local"'s case, and the vector mode
 * tests the register alone (once, a stop that fell inside the call
 * found it only in that slot, not then counted, and unmapped the patch;
 * the next round died of SIGSEGV, 1 revert in 20). */
void hold_in_xmm(const char *w) __attribute__((noreturn));
__asm__(".text\n"
	".globl hold_in_xmm\n"
	".type hold_in_xmm, @function\n"
	"hold_in_xmm:\n"
	"  .cfi_startproc\n"
	"  sub $8, %rsp\n  .cfi_adjust_cfa_offset 8\n"
	"  movq %rdi, %xmm0\n"
	"1:\n"
	"  xor %eax, %eax\n  xor %ebx, %ebx\n  xor %ecx, %ecx\n  xor %edx, %edx\n"
	"  xor %esi, %esi\n  xor %edi, %edi\n  xor %ebp, %ebp\n  xor %r8d, %r8d\n"
	"  xor %r9d, %r9d\n  xor %r10d, %r10d\n  xor %r11d, %r11d\n  xor %r12d, %r12d\n"
	"  xor %r13d, %r13d\n  xor %r14d, %r14d\n  xor %r15d, %r15d\n"
	"  mov $30000000, %ecx\n"
	"2:\n"
	"  dec %rcx\n"
	"  jnz 2b\n"
	"  movq %xmm0, %rdi\n"
	"  movq %xmm0, %rbx\n"
	"  call say_held\n"
	"  movq %rbx, %xmm0\n"
	"  xor %ebx, %ebx\n" WIPE_BELOW_AND_AGAIN ".size hold_in_xmm, .-hold_in_xmm\n");

/* Never returns: keeps w in a slot of its own frame alone, a local, and
 * naps with every general register cleared, then says it. What the call
 * left below the stack pointer is cleared each round: the slot is the
 * one word on the live stack that points to w. */
void hold_in_frame(const char *w) __attribute__((noreturn));
__asm__(".text\n"
	".globl hold_in_frame\n"
	".type hold_in_frame, @function\n"
	"hold_in_frame:\n"
	"  .cfi_startproc\n"
	"  sub $24, %rsp\n  .cfi_adjust_cfa_offset 24\n"
	"  mov %rdi, 8(%rsp)\n"
	"1:\n"
	"  xor %eax, %eax\n  xor %ebx, %ebx\n  xor %ecx, %ecx\n  xor %edx, %edx\n"
	"  xor %esi, %esi\n  xor %edi, %edi\n  xor %ebp, %ebp\n  xor %r8d, %r8d\n"
	"  xor %r9d, %r9d\n  xor %r10d, %r10d\n  xor %r11d, %r11d\n  xor %r12d, %r12d\n"
	"  xor %r13d, %r13d\n  xor %r14d, %r14d\n  xor %r15d, %r15d\n"
	"  pxor %xmm0, %xmm0\n  pxor %xmm1, %xmm1\n"
	"  call nap\n"
	"  mov 8(%rsp), %rdi\n"
	"  call say_held\n" WIPE_BELOW_AND_AGAIN ".size hold_in_frame, .-hold_in_frame\n");

/* Never returns: spins (about 10 ms a round, no syscall) with w below
 * the stack pointer alone, in the red zone, as a function that calls
 * nothing may keep a local, every register cleared; then says it, with w
 * in rbx across the call. */
void hold_in_red_zone(const char *w) __attribute__((noreturn));
__asm__(".text\n"
	".globl hold_in_red_zone\n"
	".type hold_in_red_zone, @function\n"
	"hold_in_red_zone:\n"
	"  .cfi_startproc\n"
	"  sub $8, %rsp\n  .cfi_adjust_cfa_offset 8\n"
	"1:\n"
	"  mov %rdi, -8(%rsp)\n"
	"  xor %eax, %eax\n  xor %ebx, %ebx\n  xor %ecx, %ecx\n  xor %edx, %edx\n"
	"  xor %esi, %esi\n  xor %edi, %edi\n  xor %ebp, %ebp\n  xor %r8d, %r8d\n"
	"  xor %r9d, %r9d\n  xor %r10d, %r10d\n  xor %r11d, %r11d\n  xor %r12d, %r12d\n"
	"  xor %r13d, %r13d\n  xor %r14d, %r14d\n  xor %r15d, %r15d\n"
	"  pxor %xmm0, %xmm0\n  pxor %xmm1, %xmm1\n"
	"  mov $30000000, %ecx\n"
	"2:\n"
	"  dec %rcx\n"
	"  jnz 2b\n"
	"  mov -8(%rsp), %rdi\n"
	"  mov %rdi, %rbx\n"
	"  call say_held\n"
	"  lea -512(%rsp), %rdi\n"
	"  xor %eax, %eax\n"
	"  mov $64, %ecx\n"
	"  rep stosq\n"
	"  mov %rbx, %rdi\n"
	"  jmp 1b\n"
	"  .cfi_endproc\n"
	".size hold_in_red_zone, .-hold_in_red_zone\n");

/* The word a signal's handler holds (hold_in_handler takes it, and clears
 * it here). */
__attribute__((used)) const char *held_word;

/* A SIGUSR2 handler that never returns: hold_in_frame with the held word,
 * its frame the handler's own, directly inside the signal frame. */
void hold_in_handler(int sig);
__asm__(".text\n"
	".globl hold_in_handler\n"
	".type hold_in_handler, @function\n"
	"hold_in_handler:\n"
	"  .cfi_startproc\n"
	"  mov held_word(%rip), %rdi\n"
	"  movq $0, held_word(%rip)\n"
	"  jmp hold_in_frame\n"
	"  .cfi_endproc\n"
	".size hold_in_handler, .-hold_in_handler\n");

/* Never returns: hands w to a SIGUSR2 handler that holds it, every
 * register cleared first so that the interrupted context keeps none. */
void hold_in_signal(const char *w) __attribute__((noreturn));
__asm__(".text\n"
	".globl hold_in_signal\n"
	".type hold_in_signal, @function\n"
	"hold_in_signal:\n"
	"  .cfi_startproc\n"
	"  sub $8, %rsp\n  .cfi_adjust_cfa_offset 8\n"
	"  mov %rdi, held_word(%rip)\n"
	"  xor %eax, %eax\n  xor %ebx, %ebx\n  xor %ecx, %ecx\n  xor %edx, %edx\n"
	"  xor %esi, %esi\n  xor %edi, %edi\n  xor %ebp, %ebp\n  xor %r8d, %r8d\n"
	"  xor %r9d, %r9d\n  xor %r10d, %r10d\n  xor %r11d, %r11d\n  xor %r12d, %r12d\n"
	"  xor %r13d, %r13d\n  xor %r14d, %r14d\n  xor %r15d, %r15d\n"
	"  mov $12, %edi\n" /* SIGUSR2 */
	"  call raise\n"
	"  ud2\n"
	"  .cfi_endproc\n"
	".size hold_in_signal, .-hold_in_signal\n");

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
	held_round = n;
	if (argc > 2 && !strcmp(argv[2], "vector"))
		hold_in_xmm(w);
	if (argc > 2 && !strcmp(argv[2], "local"))
		hold_in_frame(w);
	if (argc > 2 && !strcmp(argv[2], "redzone"))
		hold_in_red_zone(w);
	if (argc > 2 && !strcmp(argv[2], "handler")) {
		signal(SIGUSR2, hold_in_handler);
		hold_in_signal(w);
	}
	for (;; n++) {
		held_nap();
		printf("%s held %d\n", w, n);
		fflush(stdout);
	}
}
