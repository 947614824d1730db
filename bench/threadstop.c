/* The floor of a per-thread transition (issue 15): what ptrace costs to
 * stop each thread of a process on its own and do to it what such a
 * transition must: interrupt it, reap the stop, read its registers and
 * the top 2 KB of its stack, resume it, without waiting for the others.
 * Nothing of opus in between. Prints, in microseconds:
 *   held p50, held p99: one thread held stopped (its stop reaped to its
 *     resume: the time it could have run and did not);
 *   reach p50, reach p99: the interrupt to the stop reaped (a busy thread
 *     first waits its turn on a CPU, as it would have anyway);
 *   round p50: every thread once.
 *   threadstop PID RUNS [parallel]
 * Without "parallel", one thread at a time, never two at once: a busy
 * thread must be scheduled before it stops, and the round is the sum of
 * those waits. With "parallel", every thread is
 * interrupted at once and each is resumed as soon as it has been looked
 * at, as a transition with a dispatcher could (every stop reaped between
 * two interrupts is handled there): the round is about stopfloor's, and
 * a thread is held from its stop until its resume, of which the time
 * before the reap (at most one interrupt sent) is not seen. Compare with
 * stopfloor, which holds every thread until the last has stopped. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floor.h"

#define MAX_THREADS 4096
#define STACK_BYTES 2048

/* What a transition does to a thread it has reaped: its registers, the
 * top of its stack, and on it goes. */
static void look_and_resume(pid_t pid, pid_t tid)
{
	static char stack[STACK_BYTES];
	struct user_regs_struct regs;

	if (ptrace(PTRACE_GETREGS, tid, 0, &regs) == 0)
		process_vm_readv(pid, &(struct iovec){stack, sizeof(stack)}, 1,
				 &(struct iovec){(void *)(uintptr_t)regs.rsp, sizeof(stack)}, 1, 0);
	ptrace(PTRACE_CONT, tid, 0, 0);
}

/* One thread's stop on its own: how long it took to reach the stop and
 * how long the thread was held, in us. */
static void stop_one(pid_t pid, pid_t tid, double *reach, double *held)
{
	double start = now_us(), stopped;
	int st;

	ptrace(PTRACE_INTERRUPT, tid, 0, 0);
	waitpid(tid, &st, __WALL);
	stopped = now_us();
	look_and_resume(pid, tid);
	*reach = stopped - start;
	*held = now_us() - stopped;
}

/* Reap one stop (waiting for it unless nohang) and resume it: 1 if one was
 * there. */
static int reap_one(pid_t pid, const double *sent, const pid_t *t, int n, double *reach,
		    double *held, bool nohang)
{
	int st;
	pid_t tid = waitpid(-1, &st, __WALL | (nohang ? WNOHANG : 0));
	double stopped = now_us();
	int i = 0;

	if (tid <= 0)
		return 0;
	while (i < n && t[i] != tid)
		i++;
	look_and_resume(pid, tid);
	if (i < n) {
		*reach = stopped - sent[i];
		*held = now_us() - stopped;
	}
	return 1;
}

/* Every thread interrupted at once, each resumed once looked at. */
static void stop_parallel(pid_t pid, const pid_t *t, int n, double *reach, double *held)
{
	static double sent[MAX_THREADS];
	int done = 0;

	for (int i = 0; i < n; i++) {
		sent[i] = now_us();
		ptrace(PTRACE_INTERRUPT, t[i], 0, 0);
		while (reap_one(pid, sent, t, n, &reach[done], &held[done], true))
			done++;
	}
	while (done < n && reap_one(pid, sent, t, n, &reach[done], &held[done], false))
		done++;
}

static double at(const double *v, size_t n, double q)
{
	size_t i = (size_t)(n * q);

	return v[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
	static pid_t t[MAX_THREADS];
	double *held, *reach, *round;
	size_t k = 0;
	pid_t pid;
	int runs, n;

	bool parallel = argc == 4 && !strcmp(argv[3], "parallel");

	if (argc != 3 && !parallel)
		return fprintf(stderr, "usage: threadstop PID RUNS [parallel]\n"), 2;
	pid = atoi(argv[1]);
	runs = atoi(argv[2]);
	n = tids(pid, t, MAX_THREADS);
	held = calloc((size_t)runs * n + 1, sizeof(*held));
	reach = calloc((size_t)runs * n + 1, sizeof(*reach));
	round = calloc(runs + 1, sizeof(*round));
	if (!n || !held || !reach || !round)
		return perror("threadstop"), 1;
	if (seize_all(t, n))
		return 1;
	for (int r = 0; r < runs; r++) {
		double start = now_us();

		if (parallel)
			stop_parallel(pid, t, n, &reach[k], &held[k]);
		for (int i = 0; i < n && !parallel; i++)
			stop_one(pid, t[i], &reach[k + i], &held[k + i]);
		k += n;
		round[r] = now_us() - start;
		usleep(2000);
	}
	detach_all(t, n);
	qsort(held, k, sizeof(*held), cmp_double);
	qsort(reach, k, sizeof(*reach), cmp_double);
	qsort(round, runs, sizeof(*round), cmp_double);
	printf("%.1f %.1f %.1f %.1f %.1f\n", at(held, k, 0.5), at(held, k, 0.99), at(reach, k, 0.5),
	       at(reach, k, 0.99), at(round, runs, 0.5));
	return 0;
}
