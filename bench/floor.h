/* What the ptrace floors (stopfloor.c, threadstop.c) share: a clock, the
 * threads of a process, and the sort for percentiles. Header-only, as
 * each is one file compiled on its own by bench/run.sh. */
#ifndef OPUS_BENCH_FLOOR_H
#define OPUS_BENCH_FLOOR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>

static inline double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Up to max thread ids of pid, from /proc/PID/task; how many. */
static inline int tids(pid_t pid, pid_t *out, int max)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	while (dir && (d = readdir(dir)) && n < max)
		if (d->d_name[0] >= '0' && d->d_name[0] <= '9')
			out[n++] = atoi(d->d_name);
	if (dir)
		closedir(dir);
	return n;
}

/* Seize the n threads t (they go on running); 0, or -1 with a message. */
static inline int seize_all(const pid_t *t, int n)
{
	for (int i = 0; i < n; i++)
		if (ptrace(PTRACE_SEIZE, t[i], 0, 0))
			return perror("seize"), -1;
	return 0;
}

/* Stop each of the n threads t and let it go. */
static inline void detach_all(const pid_t *t, int n)
{
	for (int i = 0; i < n; i++) {
		int st;

		ptrace(PTRACE_INTERRUPT, t[i], 0, 0);
		waitpid(t[i], &st, __WALL);
		ptrace(PTRACE_DETACH, t[i], 0, 0);
	}
}

/* qsort's comparison of doubles. */
static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

#endif
