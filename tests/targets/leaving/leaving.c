/* A thread that stays inside a replaced function while other threads call
 * the functions a patch replaces: the mixed period of a per-thread
 * transition. The "inside" worker runs inside() over and over; inside()
 * calls value() every millisecond and returns only when SIGUSR1 asks it
 * to. The "outside" worker calls value() directly, and every 20 ms a new
 * thread is started to call it once (a thread created after the patch).
 * Prints "ready 0", then "WHO VALUE" (inside, outside, new) whenever the
 * thousands of what value() answers in that thread change, and "left N"
 * each time inside() returns. value() and inside() are what a patch
 * changes. With the argument "odd-tp", one more thread points its thread
 * pointer at a buffer that does not lead to itself (arch_prctl) and waits
 * in pause() forever, using no TLS; "odd TID" names it. With "prologue",
 * one more thread single-steps (the trap flag) into value() and, at the
 * first instruction boundary past its entry, its SIGTRAP handler keeps it
 * there until SIGWINCH ("parked K": K bytes in, printed before "ready 0";
 * -1 if that boundary is not within the first five bytes). A jump written
 * over those bytes meanwhile would be run from its middle when the
 * handler returns. The thread then calls value() every millisecond and
 * tells what it answers ("parker VALUE"). */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
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

/* Its thread pointer then leads to zeros: nothing here may touch TLS. */
static volatile long odd_tid;

static void *odd_thread_pointer(void *arg)
{
	static unsigned long buffer[64];
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	__asm__ volatile("syscall"
			 :
			 : "a"(SYS_arch_prctl), "D"(ARCH_SET_FS), "S"(buffer + 32)
			 : "rcx", "r11", "memory");
	odd_tid = syscall(SYS_gettid); /* a plain syscall: no errno unless it fails */
	for (;;)
		__asm__ volatile("syscall" : : "a"(SYS_pause) : "rcx", "r11", "memory");
	return arg;
}

/* With the arguments "crowd N", N more threads that each live inside
 * dwell() (a 20 ms sleep, returning between sleeps): more threads inside
 * one replaced function than a page of switch stubs holds (crowd.diff). */
__attribute__((noinline)) int dwell(int n)
{
	usleep(20000);
	return n + 1;
}

static void *crowd(void *arg)
{
	for (int n = 0;; n = dwell(n))
		;
	return arg;
}

static volatile sig_atomic_t parked, released, steps;

/* Single-stepped (the trap flag) into value(): park on the first
 * instruction boundary past its entry, within its first five bytes. */
static void park_in_prologue(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;
	uintptr_t at = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP] - (uintptr_t)value;

	(void)sig;
	(void)si;
	if (at == 0 || (at >= 5 && ++steps < 64))
		return; /* on the way in: step on */
	uc->uc_mcontext.gregs[REG_EFL] &= ~0x100ll;
	if (at >= 5) {
		parked = -1; /* no boundary there: nothing to show */
		return;
	}
	parked = (sig_atomic_t)at;
	while (!released)
		nanosleep(&(struct timespec){0, 1000000}, NULL);
}

static void on_winch(int sig)
{
	(void)sig;
	released = 1;
}

static void *parker(void *arg)
{
	int last = 0;

	__asm__ volatile("pushfq; orq $0x100, (%%rsp); popfq" : : : "memory", "cc");
	tell("parker", value(0), &last);
	for (int n = 0;; n = (n + 1) % 3) {
		tell("parker", value(n), &last);
		usleep(1000);
	}
	return arg;
}

/* A thread parked inside the first bytes of value(). */
static void park_a_thread(void)
{
	struct sigaction sa = {.sa_sigaction = park_in_prologue, .sa_flags = SA_SIGINFO};
	pthread_t p;

	sigaction(SIGTRAP, &sa, NULL);
	signal(SIGWINCH, on_winch);
	pthread_create(&p, NULL, parker, NULL);
	while (!parked)
		usleep(1000);
	printf("parked %d\n", (int)parked);
}

static void on_usr1(int sig)
{
	(void)sig;
	leave = 1;
}

int main(int argc, char **argv)
{
	static int new_last;
	pthread_t a, b, t;
	int crowded = 0;

	signal(SIGUSR1, on_usr1);
	pthread_create(&a, NULL, stay, NULL);
	pthread_create(&b, NULL, outside, NULL);
	if (argc > 2 && !strcmp(argv[1], "crowd"))
		sscanf(argv[2], "%d", &crowded);
	for (int i = 0; i < crowded; i++)
		pthread_create(&t, NULL, crowd, NULL);
	if (argc > 1 && !strcmp(argv[1], "odd-tp")) {
		pthread_create(&t, NULL, odd_thread_pointer, NULL);
		while (!odd_tid)
			usleep(1000);
		printf("odd %ld\n", odd_tid);
	}
	if (argc > 1 && !strcmp(argv[1], "prologue"))
		park_a_thread();
	printf("ready 0\n");
	fflush(stdout);
	for (;;) {
		if (!pthread_create(&t, NULL, once, &new_last))
			pthread_join(t, NULL);
		usleep(20000);
	}
}
