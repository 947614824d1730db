/* The stop floor: what ptrace itself costs to stop every thread of a
 * process, write 5 bytes and resume them all, with nothing of opus in
 * between. Prints the p50 and p99 in microseconds over RUNS runs:
 *   stopfloor PID ADDR RUNS
 * ADDR is written with the 5 bytes already there, so nothing changes. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floor.h"

int main(int argc, char **argv)
{
	pid_t pid, t[4096];
	uint64_t addr;
	int runs, n, fd;
	double *us;
	char path[64], bytes[5];

	if (argc != 4)
		return fprintf(stderr, "usage: stopfloor PID ADDR RUNS\n"), 2;
	pid = atoi(argv[1]);
	addr = strtoull(argv[2], NULL, 0);
	runs = atoi(argv[3]);
	us = calloc(runs, sizeof(*us));
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDWR);
	if (fd < 0 || pread(fd, bytes, 5, addr) != 5)
		return perror("mem"), 1;
	n = tids(pid, t, 4096);
	if (seize_all(t, n))
		return 1;
	for (int r = 0; r < runs; r++) {
		double start = now_us();
		int st;

		for (int i = 0; i < n; i++)
			ptrace(PTRACE_INTERRUPT, t[i], 0, 0);
		for (int i = 0; i < n; i++)
			waitpid(t[i], &st, __WALL);
		if (pwrite(fd, bytes, 5, addr) != 5)
			return perror("write"), 1;
		for (int i = 0; i < n; i++)
			ptrace(PTRACE_CONT, t[i], 0, 0);
		us[r] = now_us() - start;
		usleep(2000);
	}
	detach_all(t, n);
	qsort(us, runs, sizeof(*us), cmp_double);
	printf("%.1f %.1f\n", us[runs / 2],
	       us[(runs * 99) / 100 < runs ? (runs * 99) / 100 : runs - 1]);
	return 0;
}
