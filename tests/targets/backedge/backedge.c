/* A thread that spins inside a function whose loop jumps back into its
 * first five bytes: gcc -O2 starts spin()'s loop right after its first
 * instruction (xor %eax,%eax), as it does nginx's ngx_strcasecmp. A jump
 * written over the entry while the thread is inside would be run from its
 * middle at the thread's next round of the loop. The "spinner" thread
 * calls spin() over and over; spin() returns when SIGUSR1 sets the flag
 * it polls, and the thread prints what it answered ("spun old" or "spun
 * new": the fix changes its sign). The main thread calls spin() as well,
 * with the flag set, every millisecond, and prints "main old" or "main
 * new" when that changes. Prints "ready 0" once both run. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile int release, always = 1;

__attribute__((noinline)) long spin(volatile int *flag)
{
	long n = 0;

	/* Shaped as ngx_strcasecmp's loop is, which gcc does not align: its
	 * head is the second instruction. */
	for (;;) {
		int f = *flag;

		n++;
		if (f) {
			if (f > 1)
				continue;
			return n;
		}
		n += f;
	}
}

static void *spinner(void *arg)
{
	for (;;) {
		long n = spin(&release);

		release = 0;
		printf("spun %s\n", n > 0 ? "old" : "new");
		fflush(stdout);
	}
	return arg;
}

static void on_usr1(int sig)
{
	(void)sig;
	release = 1;
}

int main(void)
{
	pthread_t t;
	const char *last = "";

	signal(SIGUSR1, on_usr1);
	pthread_create(&t, NULL, spinner, NULL);
	for (;;) {
		const char *now = spin(&always) > 0 ? "old" : "new";

		if (*last != *now || last[1] != now[1]) {
			printf("main %s\n", now);
			if (!*last)
				printf("ready 0\n");
			fflush(stdout);
			last = now;
		}
		usleep(1000);
	}
}
