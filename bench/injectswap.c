/* The engine's page swap (src/live/swap.c) injected into one thread of a
 * live process while every other thread runs: how long that one thread is
 * stopped (issue 15), beside threads busy on the page. It reaches into the
 * engine's private header (txn.h) for a transaction of its own.
 *
 * The page is swapped for a copy of itself: bench/pageswap.c and
 * tests/unit/test_swap.c show what callers see when its code changes;
 * this measures the stop.
 *
 * Usage: injectswap PID ADDR SWAPS [batch]. Prints, in us, the p50 and
 * p99 of the thread's stop (stopped to resumed) and of the swap's
 * syscalls alone (openat, mmap, close, mprotect, mremap). With "batch",
 * the stub of inject.h is placed in the process first (a page of its
 * own, taken out after) and the syscalls run in two resumes of the thread
 * instead of ten ptrace stops. */
#include "live/mem.h"
#include "live/swap.h"
#include "live/txn.h"
#include "util/clock.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define PAGE 4096ull

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* One swap of page for a copy of itself, in a thread stopped for it. */
static int swap_once(struct txn *t, uint64_t page, double *stop_us, double *swap_us)
{
	static uint8_t bytes[PAGE];
	struct injector in = {0};
	uint64_t stopped, swapped;
	int ret = txn_injector(t, &in);

	stopped = opus_now_ns();
	if (!ret)
		ret = mem_read(t->mem_fd, page, bytes, PAGE);
	if (!ret)
		ret = swap_code_page(t, page, bytes, 0);
	swapped = opus_now_ns();
	threads_resume(&t->ts);
	*stop_us = (double)(opus_now_ns() - stopped) / 1e3;
	*swap_us = (double)(swapped - stopped) / 1e3;
	return ret;
}

/* The batch stub in a page of the process's own: its address, or 0. */
static uint64_t place_stub(struct txn *t)
{
	uint8_t code[INJECT_BATCH_STUB_SIZE];
	long at = 0, r = 0;

	inject_batch_stub(code);
	if (txn_remote(t, SYS_mmap, 0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       (uint64_t)-1, 0, &at) ||
	    at < 0 || mem_write(t->mem_fd, (uint64_t)at, code, sizeof(code)) ||
	    txn_remote(t, SYS_mprotect, (uint64_t)at, PAGE, PROT_READ | PROT_EXEC, 0, 0, 0, &r) ||
	    r)
		return 0;
	threads_resume(&t->ts);
	return (uint64_t)at;
}

int main(int argc, char **argv)
{
	struct live_opts o = {.timeout_s = 10};
	struct live_stats st;
	struct txn t;
	int swaps = argc > 3 ? atoi(argv[3]) : 100, ret;
	uint64_t page;
	double *stop, *swap;

	if (argc < 3 || swaps < 1)
		return fprintf(stderr, "usage: injectswap PID ADDR SWAPS\n"), 2;
	page = strtoull(argv[2], NULL, 0) & ~(PAGE - 1);
	stop = calloc((size_t)swaps, sizeof(*stop));
	swap = calloc((size_t)swaps, sizeof(*swap));
	if (!stop || !swap)
		return 1;
	ret = txn_open(&t, atoi(argv[1]), &o, &st);
	if (!ret && argc > 4 && !strcmp(argv[4], "batch") && !(t.batch_stub = place_stub(&t)))
		ret = opus_err(-EIO, "cannot place the batch stub");
	for (int i = 0; !ret && i < swaps; i++)
		ret = swap_once(&t, page, &stop[i], &swap[i]);
	if (t.batch_stub) {
		long r;

		txn_remote(&t, SYS_munmap, t.batch_stub, PAGE, 0, 0, 0, 0, &r);
		threads_resume(&t.ts);
	}
	txn_close(&t);
	if (ret)
		return fprintf(stderr, "injectswap: %s\n", opus_errmsg()), 1;
	qsort(stop, (size_t)swaps, sizeof(*stop), cmp);
	qsort(swap, (size_t)swaps, sizeof(*swap), cmp);
	printf("%.1f %.1f %.1f %.1f\n", stop[swaps / 2], stop[swaps * 99 / 100], swap[swaps / 2],
	       swap[swaps * 99 / 100]);
	return 0;
}
