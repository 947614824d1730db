/* The page swap of docs/reliability.md ("A way without int3") done the way
 * opus would do it in a live process: syscalls injected into one thread
 * (mmap a scratch page, fill it through /proc/PID/mem, mprotect it, mremap
 * it over the code page) while every other thread runs. The swap is not in
 * the engine yet, so this reaches into its private header (txn.h) to
 * measure what issue 15 asks about: how long the one thread that runs the
 * swap is stopped, beside threads busy on the page.
 *
 * The page is swapped for a copy of itself: bench/pageswap.c shows what
 * callers see when its code changes; this measures the stop.
 *
 * Usage: injectswap PID ADDR SWAPS. Prints, in us, the p50 and p99 of the
 * thread's stop (stopped to resumed) and of the mremap alone. */
#include "live/mem.h"
#include "live/txn.h"
#include "util/clock.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define PAGE 4096ull

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* One swap of page for a copy of itself, in a thread stopped for it. */
static int swap_once(struct txn *t, uint64_t page, double *stop_us, double *mremap_us)
{
	static uint8_t bytes[PAGE];
	struct injector in = {0};
	uint64_t stopped, moved;
	long scratch = 0, r = 0;
	int ret = txn_injector(t, &in);

	stopped = opus_now_ns();
	if (!ret)
		ret = mem_read(t->mem_fd, page, bytes, PAGE);
	if (!ret)
		ret = inject_syscall(&in, SYS_mmap,
				     (uint64_t[6]){0, PAGE, PROT_READ | PROT_WRITE,
						   MAP_PRIVATE | MAP_ANONYMOUS, (uint64_t)-1, 0},
				     &scratch);
	if (!ret && scratch < 0)
		ret = (int)scratch;
	if (!ret)
		ret = mem_write(t->mem_fd, (uint64_t)scratch, bytes, PAGE);
	if (!ret)
		ret = inject_syscall(&in, SYS_mprotect,
				     (uint64_t[6]){(uint64_t)scratch, PAGE, PROT_READ | PROT_EXEC},
				     &r);
	moved = opus_now_ns();
	if (!ret && !r)
		ret = inject_syscall(&in, SYS_mremap,
				     (uint64_t[6]){(uint64_t)scratch, PAGE, PAGE,
						   MREMAP_MAYMOVE | MREMAP_FIXED, page},
				     &r);
	*mremap_us = (double)(opus_now_ns() - moved) / 1e3;
	threads_resume(&t->ts);
	*stop_us = (double)(opus_now_ns() - stopped) / 1e3;
	if (!ret && r < 0)
		ret = (int)r;
	return ret;
}

int main(int argc, char **argv)
{
	struct live_opts o = {.timeout_s = 10};
	struct live_stats st;
	struct txn t;
	int swaps = argc > 3 ? atoi(argv[3]) : 100, ret;
	uint64_t page;
	double *stop, *mremap;

	if (argc < 3 || swaps < 1)
		return fprintf(stderr, "usage: injectswap PID ADDR SWAPS\n"), 2;
	page = strtoull(argv[2], NULL, 0) & ~(PAGE - 1);
	stop = calloc((size_t)swaps, sizeof(*stop));
	mremap = calloc((size_t)swaps, sizeof(*mremap));
	if (!stop || !mremap)
		return 1;
	ret = txn_open(&t, atoi(argv[1]), &o, &st);
	for (int i = 0; !ret && i < swaps; i++)
		ret = swap_once(&t, page, &stop[i], &mremap[i]);
	txn_close(&t);
	if (ret)
		return fprintf(stderr, "injectswap: %s\n", opus_errmsg()), 1;
	qsort(stop, (size_t)swaps, sizeof(*stop), cmp);
	qsort(mremap, (size_t)swaps, sizeof(*mremap), cmp);
	printf("%.1f %.1f %.1f %.1f\n", stop[swaps / 2], stop[swaps * 99 / 100], mremap[swaps / 2],
	       mremap[swaps * 99 / 100]);
	return 0;
}
