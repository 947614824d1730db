/* A process that catches signals as a server does (nginx's master catches
 * a dozen): ten of them, each counted by one handler. Its loop prints
 * "VALUE N" every 10 ms with what value() returns, and "CAUGHT N" when
 * the count of signals caught changes. Prints "ready 0" first. */
#include <signal.h>
#include <stdio.h>
#include <time.h>

static volatile sig_atomic_t caught;
static volatile int scale = 1;

static void count(int sig)
{
	(void)sig;
	caught++;
}

__attribute__((noinline)) int value(int n)
{
	return n * scale;
}

int main(void)
{
	static const int sigs[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGUSR1,	SIGUSR2,
				   SIGALRM, SIGTERM, SIGCHLD, SIGWINCH, SIGIO};
	struct sigaction sa = {.sa_handler = count, .sa_flags = SA_RESTART};
	int seen = -1;

	for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); i++)
		sigaction(sigs[i], &sa, NULL);
	printf("ready 0\n");
	for (;;) {
		printf("VALUE %d\n", value(1000));
		if (caught != seen)
			printf("CAUGHT %d\n", seen = caught);
		fflush(stdout);
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
}
