/* What the stop relies on from /proc, checked on this process: the task
 * directory's link count follows the threads as they come and go (a stop
 * trusts it instead of listing the directory again), and startstack lies
 * in the main thread's stack above every frame of main. */
#include "live/proc.h"
#include "unit.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define EXTRA 5

static pthread_barrier_t started, finish;

static void *idle(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&started);
	pthread_barrier_wait(&finish);
	return NULL;
}

static size_t listed(void)
{
	pid_t *tids;
	size_t n = 0;

	if (proc_tids(getpid(), &tids, &n) == 0)
		free(tids);
	return n;
}

/* A joined thread is released a moment after join returns: wait for it. */
static long settled_count(int dir, long want)
{
	long n = -1;

	for (int i = 0; i < 1000 && (n = proc_thread_count(dir)) != want; i++)
		nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
	return n;
}

int main(void)
{
	int dir = proc_task_dir(getpid());
	pthread_t t[EXTRA];
	uint64_t sp = (uint64_t)(uintptr_t)__builtin_frame_address(0);
	uint64_t start = proc_start_stack(getpid());
	struct proc_maps maps = {0};
	const struct proc_map *m;

	CHECK(dir >= 0);
	CHECK(proc_thread_count(dir) == 1);
	CHECK(proc_thread_count(dir) == (long)listed());
	pthread_barrier_init(&started, NULL, EXTRA + 1);
	pthread_barrier_init(&finish, NULL, EXTRA + 1);
	for (int i = 0; i < EXTRA; i++)
		CHECK(pthread_create(&t[i], NULL, idle, NULL) == 0);
	pthread_barrier_wait(&started);
	CHECK(proc_thread_count(dir) == EXTRA + 1);
	CHECK(proc_thread_count(dir) == (long)listed());
	pthread_barrier_wait(&finish);
	for (int i = 0; i < EXTRA; i++)
		pthread_join(t[i], NULL);
	CHECK(settled_count(dir, 1) == 1);
	CHECK(proc_thread_count(-1) == -1);
	close(dir);

	CHECK(start > sp);
	CHECK(proc_maps_read(getpid(), &maps) == 0);
	m = proc_map_at(&maps, sp);
	CHECK(m && m == proc_map_at(&maps, start));
	CHECK(proc_start_stack(-1) == 0);
	proc_maps_free(&maps);
	return unit_status();
}
