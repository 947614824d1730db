/* A second program over libauth.so: checks one password every 20 ms and
 * prints "PID OK" or "PID DENIED" each time the answer changes. SIGUSR1
 * forks a child that goes on doing the same. */
#include "auth.h"

#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t fork_requested;

static void on_usr1(int sig)
{
	(void)sig;
	fork_requested = 1;
}

int main(int argc, char **argv)
{
	const char *pass = argc > 1 ? argv[1] : "";
	int last = -1;

	signal(SIGUSR1, on_usr1);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		int ok = auth_check("admin", pass);

		if (fork_requested) {
			fork_requested = 0;
			if (fork() == 0)
				last = -1; /* the child reports its own first answer */
		}
		if (ok != last)
			printf("%d %s\n", (int)getpid(), ok ? "OK" : "DENIED");
		last = ok;
		nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
	}
}
