/* A thread that keeps what a function returned in a register across a
 * sleep: word() returns a string constant, and the loop holds that pointer
 * through a nanosleep before it prints it. Once a patch's word() returns a
 * constant of the patch's own, a stop that finds the thread asleep finds a
 * register pointing into the patch, until the next call lets go of it.
 * With an argument N, after N rounds it stops calling word() and holds the
 * last pointer for good. Prints "ready 0", then "WORD N" every 10 ms. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) const char *word(int n)
{
	return n >= 0 ? "old" : "none";
}

/* syscall(2) leaves the callee-saved registers as they are: the pointer
 * is in one of them while the thread sleeps. */
static void nap(void)
{
	struct timespec ts = {0, 10 * 1000 * 1000};

	syscall(SYS_nanosleep, &ts, NULL);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : -1;
	const char *w = "none";
	int n = 0;

	printf("ready 0\n");
	fflush(stdout);
	for (; rounds < 0 || n < rounds; n++) {
		w = word(n);
		nap();
		printf("%s %d\n", w, n);
		fflush(stdout);
	}
	for (;; n++) {
		nap();
		printf("%s held %d\n", w, n);
		fflush(stdout);
	}
}
