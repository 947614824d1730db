/* Can code that other threads are running be changed with no signal and no
 * stop (issue 15)? A page swap: build the changed page elsewhere, make it
 * executable, then mremap it over the old one. Every CPU sees either the
 * old physical page or the new one, never a page being written, because
 * the old page is never written: cross-modifying code does not arise. A
 * thread that faults on the page while it is being replaced waits for the
 * mmap lock and then runs from the new one.
 *
 * Busy threads call two functions of one page as fast as they can while
 * the main thread swaps that page back and forth, each time changing each
 * function's first instruction into a jump to a twin that answers 2 (a
 * 5-byte jmp where the first instruction has 5 bytes; a 2-byte short jmp to
 * a landing in the padding before the function where it has 2). A torn
 * instruction or a missing page kills the process; any answer but 1 or 2
 * aborts it. Prints the time of one swap, p50 and p99 in us (what the
 * thread running it would spend in the injected syscall), and how often
 * each answer came.
 *
 * Usage: pageswap THREADS SWAPS */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

int swap_f(void);
int swap_g(void);
int swap_f2(void);
int swap_g2(void);
extern const char swap_landing[];

/* One page: f's first instruction has 5 bytes, f2's has 2 and 8 bytes of
 * padding (int3, never run) before it. */
__asm__(".text\n"
	".p2align 12\n"
	".globl swap_f\n"
	"swap_f: mov $1, %eax\n"
	"  ret\n"
	".p2align 4\n"
	".globl swap_g\n"
	"swap_g: mov $2, %eax\n"
	"  ret\n"
	".p2align 4\n"
	".globl swap_landing\n"
	"swap_landing: .fill 8, 1, 0xcc\n"
	".globl swap_f2\n"
	"swap_f2: xor %eax, %eax\n"
	"  add $1, %eax\n"
	"  ret\n"
	".p2align 4\n"
	".globl swap_g2\n"
	"swap_g2: mov $2, %eax\n"
	"  ret\n"
	".p2align 12\n");

static atomic_bool stop;
static atomic_ulong answers[3];

static void *caller(void *arg)
{
	unsigned long seen[3] = {0};

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		int a = swap_f(), b = swap_f2();

		if (a < 1 || a > 2 || b < 1 || b > 2)
			abort();
		seen[a]++;
		seen[b]++;
	}
	for (int i = 1; i < 3; i++)
		atomic_fetch_add(&answers[i], seen[i]);
	return NULL;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void put_jump(uint8_t *page, uintptr_t base, uintptr_t from, uintptr_t to)
{
	int32_t rel = (int32_t)(to - (from + 5));

	page[from - base] = 0xe9;
	memcpy(page + (from - base) + 1, &rel, 4);
}

/* The page as it is, or with both functions sent to their twins. */
static void make_page(uint8_t *page, const uint8_t *orig, uintptr_t base, int diverted)
{
	uintptr_t f2 = (uintptr_t)swap_f2, land = (uintptr_t)swap_landing;

	memcpy(page, orig, 4096);
	/* A thread may be at the landing, sent there by the last page, when
	 * this one replaces it: the landing must lead somewhere right in
	 * every page after the first diverted one. Undiverted, it leads back
	 * to the entry, whose first instruction is the original again. */
	put_jump(page, base, land, diverted ? (uintptr_t)swap_g2 : f2);
	if (!diverted)
		return;
	put_jump(page, base, (uintptr_t)swap_f, (uintptr_t)swap_g);
	page[f2 - base] = 0xeb; /* jmp rel8, back to the landing */
	page[f2 - base + 1] = (uint8_t)(int8_t)(land - (f2 + 2));
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 2, swaps = argc > 2 ? atoi(argv[2]) : 10000;
	uintptr_t base = (uintptr_t)swap_f & ~4095ul;
	pthread_t *t = calloc((size_t)threads + 1, sizeof(*t));
	double *us = calloc((size_t)swaps + 1, sizeof(*us));
	static uint8_t orig[4096];

	if (!t || !us)
		return 1;
	memcpy(orig, (void *)base, sizeof(orig));
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, caller, NULL);
	for (int i = 0; i < swaps; i++) {
		uint8_t *p =
		    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		double start;

		if (p == MAP_FAILED)
			return perror("mmap"), 1;
		make_page(p, orig, base, !(i & 1));
		if (mprotect(p, 4096, PROT_READ | PROT_EXEC))
			return perror("mprotect"), 1;
		start = now_us();
		if (mremap(p, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)base) ==
		    MAP_FAILED)
			return perror("mremap"), 1;
		us[i] = now_us() - start;
	}
	atomic_store(&stop, true);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	qsort(us, (size_t)swaps, sizeof(*us), cmp);
	printf("%.1f %.1f %lu %lu\n", us[swaps / 2], us[swaps * 99 / 100], atomic_load(&answers[1]),
	       atomic_load(&answers[2]));
	return 0;
}
