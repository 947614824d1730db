/* A worker thread whose signal handler runs on a sigaltstack carved out of
 * the worker's own stack, above the frames the signal interrupts. On STEP,
 * the worker calls step(), which raises SIGUSR1 at itself; the handler
 * holds for HOLD_MS (argument, default 3000) before step() goes on. While
 * the handler holds, step() is active only below the signal frame: its
 * return address lies on the thread's stack under the alternate one, and
 * the interrupted pc is in libc. A line server on the main thread: STEP
 * (what step() returned, once it has), VALUE (step()'s value, computed now
 * without a signal). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static volatile int requested, done, result;
static long hold_ms = 3000;

static void hold(int sig)
{
	struct timespec ts = {hold_ms / 1000, (hold_ms % 1000) * 1000000};

	(void)sig;
	nanosleep(&ts, NULL);
	handled++;
}

__attribute__((noinline)) int value(void)
{
	return 1;
}

/* The function the test replaces: active across the handler. */
__attribute__((noinline)) int step(int signal)
{
	int before = handled;

	if (signal)
		raise(SIGUSR1);
	return 10 * value() + (handled - before);
}

static void *worker(void *arg)
{
	/* The alternate stack lies in this frame: above step()'s. */
	char alt[64 * 1024];
	stack_t ss = {.ss_sp = alt, .ss_size = sizeof(alt)};
	struct sigaction sa = {.sa_handler = hold, .sa_flags = SA_ONSTACK};

	(void)arg;
	if (sigaltstack(&ss, NULL) || sigaction(SIGUSR1, &sa, NULL))
		perror("altstack");
	for (;;) {
		if (requested) {
			requested = 0;
			result = step(1);
			done = 1;
		}
		usleep(1000);
	}
	return NULL;
}

static void handle(int fd)
{
	char line[64] = "", out[64];
	ssize_t n = read(fd, line, sizeof(line) - 1);

	if (n <= 0)
		return;
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (!strcmp(line, "STEP")) {
		done = 0;
		requested = 1;
		while (!done)
			usleep(1000);
		snprintf(out, sizeof(out), "%d\n", result);
	} else if (!strcmp(line, "VALUE")) {
		snprintf(out, sizeof(out), "%d\n", step(0));
	} else {
		snprintf(out, sizeof(out), "ERR\n");
	}
	if (write(fd, out, strlen(out)) < 0)
		perror("write");
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(addr);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	pthread_t t;

	if (argc > 1)
		hold_ms = atol(argv[1]);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 16) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen) ||
	    pthread_create(&t, NULL, worker, NULL)) {
		perror("altstack");
		return 1;
	}
	printf("ready %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;
		handle(fd);
		close(fd);
	}
}
