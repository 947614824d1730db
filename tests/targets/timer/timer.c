/* A process that counts on its signals' siginfo: a POSIX timer fires
 * SIGRTMIN every 100 us with a pointer as its payload (sival_ptr), the way
 * timer_create's users pass their state, and the handler counts through
 * it. A siginfo that arrives without that pointer is counted as bad (a
 * real program would dereference it and crash). A second thread sleeps,
 * so that a stop holds more than the thread the signals go to.
 * Prints "VALUE FIRED BAD" every 20 ms; value() is what a patch changes. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile long fired, bad;

static void on_timer(int sig, siginfo_t *info, void *uc)
{
	(void)sig;
	(void)uc;
	if (info->si_code == SI_TIMER && info->si_value.sival_ptr == (void *)&fired)
		(*(volatile long *)info->si_value.sival_ptr)++;
	else
		bad++;
}

__attribute__((noinline)) int value(int n)
{
	return 1000 + n % 3;
}

static void *sleeper(void *arg)
{
	sigset_t all;

	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;)
		pause();
	return NULL;
}

int main(void)
{
	struct itimerspec every = {{0, 100000}, {0, 100000}};
	struct sigaction sa;
	struct sigevent ev;
	pthread_t th;
	timer_t tm;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_timer;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGRTMIN, &sa, NULL);
	pthread_create(&th, NULL, sleeper, NULL);
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGRTMIN;
	ev.sigev_value.sival_ptr = (void *)&fired;
	if (timer_create(CLOCK_MONOTONIC, &ev, &tm) || timer_settime(tm, 0, &every, NULL))
		return perror("timer"), 1;
	printf("ready 0\n");
	for (int n = 0;; n++) {
		printf("%d %ld %ld\n", value(n), fired, bad);
		fflush(stdout);
		usleep(20000);
	}
}
