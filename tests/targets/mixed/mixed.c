/* Threads that each tell which code a replaced function runs in them, for
 * the mixed period of a per-thread transition: two workers call value() in
 * a loop, and every 20 ms a new thread is started to call it once (a
 * thread created after the patch). Prints "ready 0", then "held TP" with
 * the first worker's thread pointer (pthread_self() in glibc), then
 * "WHO VALUE" (first, second, new) whenever the thousands of what value()
 * answers in that thread change. value() is what a patch changes. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) int value(int n)
{
	return 1000 + n % 3;
}

static pthread_mutex_t out = PTHREAD_MUTEX_INITIALIZER;

static void tell(const char *who, int v, int *last)
{
	if (v / 1000 == *last)
		return;
	*last = v / 1000;
	pthread_mutex_lock(&out);
	printf("%s %d\n", who, *last * 1000);
	fflush(stdout);
	pthread_mutex_unlock(&out);
}

static void *worker(void *who)
{
	int last = 0;

	for (int n = 0;; n++) {
		tell(who, value(n), &last);
		usleep(1000);
	}
	return NULL;
}

static void *once(void *last)
{
	tell("new", value(0), last);
	return NULL;
}

int main(void)
{
	static int new_last;
	pthread_t first, second, t;

	pthread_mutex_lock(&out);
	pthread_create(&first, NULL, worker, "first");
	pthread_create(&second, NULL, worker, "second");
	printf("ready 0\nheld %lx\n", (unsigned long)first);
	fflush(stdout);
	pthread_mutex_unlock(&out);
	for (;;) {
		if (!pthread_create(&t, NULL, once, &new_last))
			pthread_join(t, NULL);
		usleep(20000);
	}
}
