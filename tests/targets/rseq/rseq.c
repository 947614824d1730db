/* A main thread that runs restartable sequences (rseq(2)) back to back,
 * on the area glibc registered for it: each section times itself with
 * the TSC and stores that time as its commit, its last instruction. The
 * kernel sends a thread preempted inside a section to its abort handler,
 * so no section may commit a time longer than a thread is ever held
 * without being preempted. One that commits after 20 ms was held inside
 * and not aborted: counted as "held". value() is what a patch changes.
 * Prints "ready rseq", then every 2000 sections "tick N VALUE committed C
 * aborted A held H". */
#include <stdint.h>
#include <stdio.h>
#include <sys/rseq.h>
#include <time.h>
#include <x86intrin.h>

#define SPINS 20000 /* about 10 us a section */

static uint64_t last_ticks; /* the committed section's length, in TSC ticks */
static long committed, aborted, held;

__attribute__((noinline)) int value(int n)
{
	return 1000 + n % 3;
}

/* The section: its descriptor in __rseq_cs, its abort handler after the
 * signature glibc registered (RSEQ_SIG, 0x53053053 on x86). */
static void section(struct rseq *rs)
{
	asm volatile goto(".pushsection __rseq_cs, \"aw\"\n"
			  ".balign 32\n"
			  "3: .long 0, 0\n"
			  ".quad 1f, (2f - 1f), 4f\n"
			  ".popsection\n"
			  "leaq 3b(%%rip), %%rax\n"
			  "movq %%rax, %[cs]\n"
			  "1: rdtsc\n"
			  "shl $32, %%rdx\n"
			  "or %%rax, %%rdx\n"
			  "mov %%rdx, %%r8\n"
			  "mov %[spins], %%rcx\n"
			  "5: dec %%rcx\n"
			  "jnz 5b\n"
			  "rdtsc\n"
			  "shl $32, %%rdx\n"
			  "or %%rax, %%rdx\n"
			  "sub %%r8, %%rdx\n"
			  "movq %%rdx, %[last]\n"
			  "2:\n"
			  ".pushsection __rseq_failure, \"ax\"\n"
			  ".long 0x53053053\n"
			  "4: jmp %l[abort]\n"
			  ".popsection\n"
			  :
			  : [cs] "m"(rs->rseq_cs), [spins] "r"((long)SPINS), [last] "m"(last_ticks)
			  : "rax", "rcx", "rdx", "r8", "memory", "cc"
			  : abort);
	committed++;
	return;
abort:
	aborted++;
}

/* TSC ticks in 20 ms. */
static uint64_t ticks_20ms(void)
{
	uint64_t t0 = __rdtsc();

	nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
	return __rdtsc() - t0;
}

int main(void)
{
	struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	uint64_t limit = ticks_20ms();
	int n = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!__rseq_size) {
		puts("no rseq area: glibc did not register one");
		return 1;
	}
	puts("ready rseq");
	for (;;) {
		for (int i = 0; i < 2000; i++) {
			long before = committed;

			section(rs);
			held += committed > before && last_ticks > limit;
		}
		printf("tick %d %d committed %ld aborted %ld held %ld\n", n, value(n), committed,
		       aborted, held);
		n++;
	}
}
