/* What this machine is, in figures every other figure can be divided by:
 * a fixed CPU loop (ms), and the time to start a trivial program and reap
 * it (fork + exec of /bin/true, us). Prints them as JSON, the p50 of RUNS:
 *   machine RUNS
 * The ptrace floor, the third, is bench/stopfloor.c's. */
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[n / 2];
}

/* 50 million steps of an LCG and a data-dependent branch: integer work
 * the compiler cannot fold away. */
static double cpu_loop_ms(void)
{
	volatile uint64_t sink;
	uint64_t x = 1, acc = 0;
	double start = now_us();

	for (int i = 0; i < 50000000; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		acc += (x >> 60) > 7 ? x >> 32 : x & 0xffff;
	}
	sink = acc;
	(void)sink;
	return (now_us() - start) / 1e3;
}

static double spawn_us(void)
{
	char *argv[] = {"/bin/true", NULL};
	double start = now_us();
	pid_t pid;
	int status;

	if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ))
		return -1;
	waitpid(pid, &status, 0);
	return now_us() - start;
}

/* One page fault on fresh anonymous memory, in us: the mean over 1024
 * pages touched once each. Starting a process is mostly faults (exec's
 * and the loader's), and their cost moved most between two days of the
 * same VM (docs/performance.md, 2026-12-07). */
static double fault_us(void)
{
	const size_t pages = 1024, page = 4096;
	volatile char *p =
	    mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	double start, each;

	if (p == MAP_FAILED)
		return -1;
	start = now_us();
	for (size_t i = 0; i < pages; i++)
		p[i * page] = 1;
	each = (now_us() - start) / (double)pages;
	munmap((void *)p, pages * page);
	return each;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 30;
	double *loop, *spawn, *fault;

	if (runs < 1)
		runs = 1;
	loop = calloc((size_t)runs, sizeof(*loop));
	spawn = calloc((size_t)runs, sizeof(*spawn));
	fault = calloc((size_t)runs, sizeof(*fault));
	if (!loop || !spawn || !fault)
		return 1;
	for (int i = 0; i < runs; i++) {
		loop[i] = cpu_loop_ms();
		spawn[i] = spawn_us();
		fault[i] = fault_us();
	}
	printf("{\"cpu_loop_ms\": %.2f, \"spawn_us\": %.1f, \"page_fault_us\": %.3f}\n",
	       median(loop, runs), median(spawn, runs), median(fault, runs));
	free(loop);
	free(spawn);
	free(fault);
	return 0;
}
