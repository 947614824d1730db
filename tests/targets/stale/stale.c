/* A thread that waits inside one patch's code while a word of its own live
 * frame looks like a return address into another patch's: the stack a
 * revert of the second patch must not take for busy. The worker calls
 * answer(), which calls note_return(): that stores its own return address
 * (inside answer's code, wherever that is: the binary's, or a patch's) in
 * a slot of the worker's frame, as a stale word would be. The worker then
 * spends a second in wait_turn(), ten sleeps of 100 ms, and prints
 * "tick ANSWER TURNS". answer() and wait_turn() are what patches change
 * (answer-42.diff, turns-20.diff). Prints "ready 0" first. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) static void note_return(volatile uintptr_t *where)
{
	*where = (uintptr_t)__builtin_return_address(0);
}

__attribute__((noinline)) int answer(int x, volatile uintptr_t *where)
{
	note_return(where);
	return x + 1;
}

__attribute__((noinline)) int wait_turn(int ms)
{
	struct timespec ts = {0, ms * 1000000L};

	nanosleep(&ts, NULL);
	return 1;
}

static void *worker(void *arg)
{
	/* Kept in the frame, as a dead local of a real program would be. */
	volatile uintptr_t kept[2] = {0, 0};

	(void)arg;
	for (;;) {
		int a = answer(40, &kept[0]), w = 0;

		for (int i = 0; i < 10; i++)
			w += wait_turn(100);
		printf("tick %d %d\n", a, w);
		fflush(stdout);
	}
	return NULL;
}

int main(void)
{
	pthread_t t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pthread_create(&t, NULL, worker, NULL))
		return 1;
	printf("ready 0\n");
	fflush(stdout);
	for (;;)
		pause();
}
