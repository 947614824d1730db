/* The program gives the kernel a pointer, which the kernel keeps and
 * hands back later as it was given; once a patch's word() returns a
 * constant of the patch's own, the kernel alone points into the patch.
 *
 * handback epoll|timer|queued: prints "ready", waits for SIGUSR1, then
 * gives word() away:
 *   epoll:  as the data of a pipe's registration with an epoll descriptor;
 *   timer:  as the value of a POSIX timer's signal (SIGUSR2, disarmed);
 *   queued: as the value of SIGUSR2, queued to itself and blocked.
 * It prints "given" and waits for SIGUSR1 again, then takes the pointer
 * back (the pipe made readable and epoll_wait; the timer fired; the signal
 * taken) and prints the string it points to, then lets go of it
 * (EPOLL_CTL_DEL, timer_delete) and prints "released". Single-threaded;
 * the pointer is wiped from the stack once given away, and so is what the
 * calls that gave it left below the stack pointer. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) const char *word(void)
{
	return "old  ";
}

static int pipefd[2], epfd;
static timer_t timer;

static void wait_usr1(void)
{
	sigset_t usr1;
	int sig;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigwait(&usr1, &sig);
}

__attribute__((noinline)) static int give(const char *mode)
{
	struct epoll_event ev = {.events = EPOLLIN};
	struct sigevent se = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR2};
	int ret;

	ev.data.ptr = (void *)word();
	se.sigev_value.sival_ptr = (void *)word();
	if (!strcmp(mode, "epoll"))
		ret = epoll_ctl(epfd, EPOLL_CTL_ADD, pipefd[0], &ev);
	else if (!strcmp(mode, "timer"))
		ret = timer_create(CLOCK_MONOTONIC, &se, &timer);
	else
		ret = sigqueue(getpid(), SIGUSR2, se.sigev_value);
	explicit_bzero(&ev, sizeof(ev));
	explicit_bzero(&se, sizeof(se));
	return ret;
}

/* What give's callees left below the stack pointer wiped (sigqueue's
 * siginfo holds a copy of the pointer): the frames of the wait that
 * follows lie there, and their unused slots would keep it. */
__attribute__((noinline)) static void wipe_below(void)
{
	char below[4096];

	explicit_bzero(below, sizeof(below));
}

/* The pointer the kernel hands back. */
__attribute__((noinline)) static const char *take(const char *mode)
{
	struct itimerspec soon = {.it_value.tv_nsec = 1};
	struct epoll_event ev;
	sigset_t usr2;
	siginfo_t si;

	if (!strcmp(mode, "epoll")) {
		if (write(pipefd[1], "x", 1) != 1 || epoll_wait(epfd, &ev, 1, -1) != 1)
			return NULL;
		return ev.data.ptr;
	}
	if (!strcmp(mode, "timer") && timer_settime(timer, 0, &soon, NULL))
		return NULL;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	return sigwaitinfo(&usr2, &si) == SIGUSR2 ? si.si_value.sival_ptr : NULL;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "epoll", *s;
	sigset_t both;

	sigemptyset(&both);
	sigaddset(&both, SIGUSR1);
	sigaddset(&both, SIGUSR2);
	sigprocmask(SIG_BLOCK, &both, NULL);
	if (pipe(pipefd) || (epfd = epoll_create1(0)) < 0)
		return 1;
	printf("ready %s\n", mode);
	fflush(stdout);
	wait_usr1();
	if (give(mode))
		return 1;
	wipe_below();
	printf("given\n");
	fflush(stdout);
	wait_usr1();
	if (!(s = take(mode)))
		return 1;
	printf("%s\n", s);
	if (!strcmp(mode, "epoll"))
		epoll_ctl(epfd, EPOLL_CTL_DEL, pipefd[0], NULL);
	else if (!strcmp(mode, "timer"))
		timer_delete(timer);
	printf("released\n");
	fflush(stdout);
	for (;;)
		pause();
}
