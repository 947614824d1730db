/* A busy target: SPINNERS threads (argument, default 100) spinning on the
 * CPU, each counting in its own slot, and a line-protocol server on the main
 * thread: ANSWER (the function the test patches), COUNT (the sum of every
 * thread's count: it must keep growing), THREADS (how many spin). With a
 * second argument "sleeping", the threads instead sleep 10 ms at a time and
 * count their wake-ups: a process of many threads, nearly all blocked. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SPINNERS 1024

static volatile unsigned long counts[MAX_SPINNERS];
static int spinners;

static void *spin(void *arg)
{
	volatile unsigned long *c = arg;

	for (;;)
		(*c)++;
	return NULL;
}

static void *sleep_and_count(void *arg)
{
	volatile unsigned long *c = arg;

	for (;;) {
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
		(*c)++;
	}
	return NULL;
}

__attribute__((noinline)) int answer(void)
{
	return 1;
}

static void handle(int fd)
{
	char line[64] = "", out[64];
	ssize_t n = read(fd, line, sizeof(line) - 1);
	unsigned long sum = 0;

	if (n <= 0)
		return;
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (!strcmp(line, "ANSWER")) {
		snprintf(out, sizeof(out), "%d\n", answer());
	} else if (!strcmp(line, "COUNT")) {
		for (int i = 0; i < spinners; i++)
			sum += counts[i];
		snprintf(out, sizeof(out), "%lu\n", sum);
	} else if (!strcmp(line, "THREADS")) {
		snprintf(out, sizeof(out), "%d\n", spinners);
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
	void *(*run)(void *) = argc > 2 && !strcmp(argv[2], "sleeping") ? sleep_and_count : spin;

	spinners = argc > 1 ? atoi(argv[1]) : 100;
	if (spinners < 0 || spinners > MAX_SPINNERS)
		spinners = 100;
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
		perror("spinners");
		return 1;
	}
	for (int i = 0; i < spinners; i++) {
		pthread_t t;

		pthread_create(&t, NULL, run, (void *)&counts[i]);
	}
	printf("ready %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd >= 0) {
			handle(fd);
			close(fd);
		}
	}
}
