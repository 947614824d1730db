/* A thread that stays inside a replaced function while other threads call
 * the functions a patch replaces: the mixed period of a per-thread
 * transition. The "inside" worker runs inside() over and over; inside()
 * calls value() every millisecond and returns only when SIGUSR1 asks it
 * to. The "outside" worker calls value() directly, and every 20 ms a new
 * thread is started to call it once (a thread created after the patch).
 * Prints "ready 0", then "WHO VALUE" (inside, outside, new) whenever the
 * thousands of what value() answers in that thread change, and "left N"
 * each time inside() returns. value() and inside() are what a patch
 * changes. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t leave;
static pthread_mutex_t out = PTHREAD_MUTEX_INITIALIZER;

__attribute__((noinline)) int value(int n)
{
	return 1000 + n % 3;
}

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

__attribute__((noinline)) int inside(int round, int *last)
{
	for (int n = 0; !leave; n++) {
		tell("inside", value(n), last);
		usleep(1000);
	}
	leave = 0;
	return round + 1;
}

static void *stay(void *arg)
{
	int last = 0;

	for (int round = 0;;) {
		round = inside(round, &last);
		pthread_mutex_lock(&out);
		printf("left %d\n", round);
		fflush(stdout);
		pthread_mutex_unlock(&out);
	}
	return arg;
}

static void *outside(void *arg)
{
	int last = 0;

	for (int n = 0;; n++) {
		tell("outside", value(n), &last);
		usleep(1000);
	}
	return arg;
}

static void *once(void *last)
{
	tell("new", value(0), last);
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig;
	leave = 1;
}

int main(void)
{
	static int new_last;
	pthread_t a, b, t;

	signal(SIGUSR1, on_usr1);
	pthread_create(&a, NULL, stay, NULL);
	pthread_create(&b, NULL, outside, NULL);
	printf("ready 0\n");
	fflush(stdout);
	for (;;) {
		if (!pthread_create(&t, NULL, once, &new_last))
			pthread_join(t, NULL);
		usleep(20000);
	}
}
