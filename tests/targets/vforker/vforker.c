/* A process one of whose threads waits for its vfork child: the kernel
 * holds such a thread (killable sleep) until the child execs or exits, and
 * no ptrace stop reaches it before then. The main thread calls value()
 * every millisecond and prints "tick N VALUE" every 50 ms (VALUE is 1000
 * to 1002; 2000 to 2002 patched). The spawner thread vforks a child on
 * each SIGUSR1; the child prints "vforked PID" and waits for a signal to
 * end it; the thread then prints "reaped PID". */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) int value(int n)
{
	return 1000 + n % 3;
}

static void say(const char *what, long n)
{
	char line[64];
	int len = snprintf(line, sizeof(line), "%s %ld\n", what, n);

	/* write(2): the vfork child may call it, not stdio. */
	if (write(1, line, (size_t)len) < 0)
		_exit(1);
}

static void *spawner(void *set)
{
	for (int sig;;) {
		pid_t child;

		sigwait(set, &sig);
		child = vfork();
		if (child == 0) {
			say("vforked", getpid());
			pause();
			_exit(0);
		}
		waitpid(child, NULL, 0);
		say("reaped", child);
	}
	return NULL;
}

int main(void)
{
	static sigset_t set;
	pthread_t t;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_create(&t, NULL, spawner, &set);
	say("ready", 0);
	for (long n = 1;; n++) {
		int v = value((int)n);

		if (n % 50 == 0) {
			char line[64];
			int len = snprintf(line, sizeof(line), "tick %ld %d\n", n, v);

			if (write(1, line, (size_t)len) < 0)
				return 1;
		}
		nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
	}
}
