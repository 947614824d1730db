/* A small line-protocol server on loopback, the running program the tests
 * patch. One request per connection: AUTH user pass, STATS, HELLO, TICKS,
 * SLEEP n. It keeps state (request counters, a static local) that a live
 * patch must not lose. Build with -DSINGLE_THREAD for a one-thread server. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static unsigned long requests;
static char secret[64] = "hunter2";
static volatile unsigned long ticks;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static unsigned long wake_requests, wakes, pokes;
static int poke_fd = -1;

static int check_password(const char *user, const char *pass)
{
	if (strcmp(user, "admin"))
		return 0;
	/* Compares only as much as was given. */
	return strncmp(pass, secret, strlen(pass)) == 0;
}

static const char *greeting(void)
{
	return "hello";
}

__attribute__((noinline)) int slow_op(int secs)
{
	struct timespec ts = {secs, 0};

	nanosleep(&ts, NULL);
	return secs;
}

static void handle(const char *line, char *out, size_t len)
{
	static unsigned long stats_calls;
	char user[32] = "", pass[32] = "";

	requests++;
	if (!strncmp(line, "AUTH ", 5)) {
		sscanf(line + 5, "%31s %31s", user, pass);
		snprintf(out, len, "%s", check_password(user, pass) ? "OK" : "DENIED");
	} else if (!strcmp(line, "STATS")) {
		stats_calls++;
		snprintf(out, len, "requests=%lu stats=%lu", requests, stats_calls);
	} else if (!strncmp(line, "SLEEP ", 6)) {
		snprintf(out, len, "slept %d", slow_op(atoi(line + 6)));
	} else if (!strncmp(line, "NAPS ", 5)) {
		/* Back to back: the thread is out of slow_op for microseconds. */
		int total = 0;

		for (int i = atoi(line + 5); i > 0; i--)
			total += slow_op(1);
		snprintf(out, len, "napped %d", total);
	} else if (!strcmp(line, "HELLO")) {
		snprintf(out, len, "%s", greeting());
	} else if (!strcmp(line, "TICKS")) {
		snprintf(out, len, "%lu", ticks);
	} else if (!strcmp(line, "WAKE")) {
		pthread_mutex_lock(&lock);
		wake_requests++;
		pthread_cond_signal(&wake);
		pthread_mutex_unlock(&lock);
		snprintf(out, len, "woken");
	} else if (!strcmp(line, "POKE")) {
		uint64_t one = 1;

		snprintf(out, len, "%s", write(poke_fd, &one, sizeof(one)) == 8 ? "poked" : "ERR");
	} else if (!strcmp(line, "EVENTS")) {
		pthread_mutex_lock(&lock);
		snprintf(out, len, "wakes=%lu pokes=%lu", wakes, pokes);
		pthread_mutex_unlock(&lock);
	} else {
		/* Where the error came from, as logging macros do. */
		snprintf(out, len, "ERR unknown command (authsrv.c:%d)", __LINE__);
	}
}

static void *serve(void *arg)
{
	int fd = (int)(long)arg;
	char line[256], out[256];
	ssize_t n = read(fd, line, sizeof(line) - 1);

	if (n > 0) {
		line[n] = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		handle(line, out, sizeof(out));
		strcat(out, "\n");
		if (write(fd, out, strlen(out)) < 0)
			perror("write");
	}
	close(fd);
	return NULL;
}

#ifndef SINGLE_THREAD
static void *ticker(void *arg)
{
	struct timespec ts = {0, 20 * 1000 * 1000};

	(void)arg;
	for (;;) {
		nanosleep(&ts, NULL);
		ticks++;
	}
	return NULL;
}

/* Blocked in futex (pthread_cond_wait) between WAKE requests. */
static void *waiter(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		while (wakes == wake_requests)
			pthread_cond_wait(&wake, &lock);
		wakes++;
	}
	return NULL;
}

/* Blocked in epoll_wait between POKE requests. */
static void *poller(void *arg)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int ep = epoll_create1(0);

	(void)arg;
	epoll_ctl(ep, EPOLL_CTL_ADD, poke_fd, &ev);
	for (;;) {
		uint64_t n;

		if (epoll_wait(ep, &ev, 1, -1) == 1 && read(poke_fd, &n, sizeof(n)) == 8) {
			pthread_mutex_lock(&lock);
			pokes += n;
			pthread_mutex_unlock(&lock);
		}
	}
	return NULL;
}

#endif

#ifndef SINGLE_THREAD
/* With AUTHSRV_MAIN_EXITS set, the main thread hands the accept loop to
 * another and calls pthread_exit: a live process whose leader is a zombie. */
static void *accept_loop(void *arg);
#endif

__attribute__((noreturn)) static void accept_loop_body(int lfd);

int main(void)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(addr);
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);

	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
		perror("authsrv");
		return 1;
	}
	poke_fd = eventfd(0, 0);
#ifndef SINGLE_THREAD
	pthread_t t;

	pthread_create(&t, NULL, ticker, NULL);
	pthread_create(&t, NULL, waiter, NULL);
	pthread_create(&t, NULL, poller, NULL);
#endif
	/* A signal mask of its own in the main thread (which runs opus's
	 * injected syscalls): a killed opus must leave it as it was. */
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGWINCH);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	printf("ready %d\n", ntohs(addr.sin_port));
	fflush(stdout);
#ifndef SINGLE_THREAD
	if (getenv("AUTHSRV_MAIN_EXITS")) {
		pthread_create(&t, NULL, accept_loop, (void *)(long)lfd);
		pthread_exit(NULL);
	}
#endif
	accept_loop_body(lfd);
}

static void accept_loop_body(int lfd)
{
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;
#ifdef SINGLE_THREAD
		ticks++;
		serve((void *)(long)fd);
#else
		pthread_t c;

		if (pthread_create(&c, NULL, serve, (void *)(long)fd) == 0)
			pthread_detach(c);
		else
			close(fd);
#endif
	}
}

#ifndef SINGLE_THREAD
static void *accept_loop(void *arg)
{
	accept_loop_body((int)(long)arg);
	return NULL;
}
#endif
