/* A second program over libauth.so: checks one password every 20 ms and
 * prints "PID OK" or "PID DENIED" each time the answer changes. With a
 * second argument it first waits that many ms in linger(). SIGUSR1 forks a
 * child right in the signal handler (so on top of whatever function the
 * main thread is in), which goes on doing the same. */
#include "auth.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t forked_child;

static void on_usr1(int sig)
{
	(void)sig;
	if (fork() == 0)
		forked_child = 1;
}

static void sleep_ms(long ms)
{
	nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

__attribute__((noinline)) static void linger(long ms)
{
	sleep_ms(ms);
}

int main(int argc, char **argv)
{
	const char *pass = argc > 1 ? argv[1] : "";
	long linger_ms = argc > 2 ? atol(argv[2]) : 0;
	int last = -1;

	signal(SIGUSR1, on_usr1);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		int ok = auth_check("admin", pass);

		if (forked_child) {
			forked_child = 0;
			last = -1; /* the child reports its own first answer */
		}
		if (ok != last)
			printf("%d %s\n", (int)getpid(), ok ? "OK" : "DENIED");
		last = ok;
		if (linger_ms > 0)
			linger(linger_ms);
		linger_ms = 0;
		sleep_ms(20);
	}
}
