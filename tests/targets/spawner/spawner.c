/* A process whose threads come and go: a new short-lived thread every
 * millisecond calls answer() and adds its result to a total. Prints
 * "ready 0", then "CALLS TOTAL" every 100 ms; a patch of answer() shows as
 * TOTAL growing faster than CALLS. `spawner N` adds N threads that each
 * create such a thread and join it, back to back: threads are created
 * at every moment, also while a tracer stops the others. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static atomic_long calls, total;

__attribute__((noinline)) int answer(void)
{
	return 1;
}

static void *worker(void *arg)
{
	(void)arg;
	atomic_fetch_add(&total, answer());
	atomic_fetch_add(&calls, 1);
	return NULL;
}

static void *spawn_back_to_back(void *arg)
{
	for (pthread_t t;;)
		if (pthread_create(&t, NULL, worker, arg) == 0)
			pthread_join(t, NULL);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_attr_t attr;
	int spawners = 0;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1)
		sscanf(argv[1], "%d", &spawners);
	for (pthread_t t; spawners > 0; spawners--)
		pthread_create(&t, &attr, spawn_back_to_back, NULL);
	printf("ready 0\n");
	for (unsigned long i = 1;; i++) {
		pthread_t t;

		pthread_create(&t, &attr, worker, NULL);
		nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
		if (i % 100 == 0)
			printf("%ld %ld\n", atomic_load(&calls), atomic_load(&total));
	}
}
