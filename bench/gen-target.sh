#!/usr/bin/env bash
# Writes the benchmark target's source to $1/target.c: NF patchable
# functions f0..f(NF-1), worker threads that are either busy calling them or
# blocked in a futex, or living inside hold() (a 20 ms sleep, returning
# between sleeps: a per-thread transition's case), and a tight-loop mode
# for the cost of a patched call. With $2 = K, the first K functions return
# one more: the "fixed" version; with $3 = H, hold() adds H.
set -euo pipefail
dir=$1 k=${2:-0} hold=${3:-0} nf=1000
mkdir -p "$dir"
{
	cat <<'HEAD'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
HEAD
	for i in $(seq 0 $((nf - 1))); do
		if [ "$i" -lt "$k" ]; then
			echo "NOINLINE int f$i(int x) { return (x ^ 0x5a5a) * 3 + $i + 1; }"
		else
			echo "NOINLINE int f$i(int x) { return (x ^ 0x5a5a) * 3 + $i; }"
		fi
	done
	echo "NOINLINE int hold(int x) { usleep(20000); return x + $hold; }"
	echo "static int (*const fns[$nf])(int) = {"
	for i in $(seq 0 $((nf - 1))); do printf 'f%d,' "$i"; done
	echo "};"
	cat <<'TAIL'
static volatile int sink;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;

static void *busy(void *arg)
{
	unsigned n = (unsigned)(long)arg;

	for (unsigned i = 0;; i++)
		sink = fns[i % n](i);
	return NULL;
}

static void *blocked(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;)
		pthread_cond_wait(&never, &lock);
	return NULL;
}

static void *inside(void *arg)
{
	for (int x = 0;; x++)
		sink = hold(x);
	return arg;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* target threads busy|blocked|inside NFUNCS, or target calls */
int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "calls")) {
		printf("ready\n");
		fflush(stdout);
		for (;;) {
			double t = now();
			int x = 0;

			for (int i = 0; i < 100000000; i++)
				x = f0(x);
			sink = x;
			printf("%.3f\n", (now() - t) * 1e9 / 1e8);
			fflush(stdout);
		}
	}
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	const char *mode = argc > 2 ? argv[2] : "blocked";
	long nf = argc > 3 ? atol(argv[3]) : 1;

	for (int i = 0; i < threads; i++) {
		pthread_t t;

		pthread_create(&t, NULL,
			       !strcmp(mode, "busy")	 ? busy
			       : !strcmp(mode, "inside") ? inside
							 : blocked,
			       (void *)nf);
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
TAIL
} >"$dir/target.c"
