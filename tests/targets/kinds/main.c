#include "kinds.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static unsigned long requests;
/* A function pointer the program took at load time: new code's address of
 * the same function must compare equal (a non-PIE executable's canonical
 * PLT entry). volatile: no folding of the comparison. */
static int (*volatile saved_abs)(int) = abs;

/* libc's variables from the executable: copy-relocated into it. */
static void answer_extern(char *out, size_t len)
{
	size_t n = 0;

	for (char **e = environ; e && *e; e++)
		n += !strncmp(*e, "KINDS_", 6);
	snprintf(out, len, "optind=%d kinds_env=%zu stdout=%s", optind, n, stdout ? "set" : "null");
}

/* time and gettimeofday are IFUNCs of libc whose code is in the vDSO:
 * they agree, and it is later than when this was written. */
static int clock_sane(void)
{
	struct timeval tv;

	/* time() reads the coarse clock: it may lag a tick behind. */
	return !gettimeofday(&tv, NULL) && tv.tv_sec > 1700000000 &&
	       labs((long)(time(NULL) - tv.tv_sec)) < 2;
}

static void answer(const char *cmd, int arg, const char *word, char *out, size_t len)
{
	char sub[160];

	if (!strcmp(cmd, "switch"))
		snprintf(out, len, "%d", kinds_switch(arg));
	else if (!strcmp(cmd, "table"))
		snprintf(out, len, "%s", kinds_table(word, arg, sub, sizeof(sub)));
	else if (!strcmp(cmd, "static"))
		snprintf(out, len, "%lu", kinds_static());
	else if (!strcmp(cmd, "const"))
		snprintf(out, len, "%d", kinds_const());
	else if (!strcmp(cmd, "weak"))
		snprintf(out, len, "%d", kinds_weak(arg));
	else if (!strcmp(cmd, "common"))
		snprintf(out, len, "%d", kinds_common += arg);
	else if (!strcmp(cmd, "hidden"))
		snprintf(out, len, "%d", kinds_hidden(arg));
	else if (!strcmp(cmd, "cold"))
		snprintf(out, len, "%d", kinds_cold(arg));
	else if (!strcmp(cmd, "ifunc"))
		snprintf(out, len, "%d %d", kinds_ifunc(arg), lib_ifunc(arg));
	else if (!strcmp(cmd, "tls"))
		snprintf(out, len, "%lu %lu", kinds_tls(), lib_tls_bump());
	else if (!strcmp(cmd, "extern"))
		snprintf(out, len, "%s", (answer_extern(sub, sizeof(sub)), sub));
	else if (!strcmp(cmd, "lib"))
		snprintf(out, len, "%s", lib_extern(sub, sizeof(sub)));
	else if (!strcmp(cmd, "strings"))
		snprintf(out, len, "%zu", lib_strings(word));
	else if (!strcmp(cmd, "fnptr"))
		snprintf(out, len, "%s", saved_abs == abs ? "same" : "different");
	else if (!strcmp(cmd, "clock"))
		snprintf(out, len, "%s", clock_sane() ? "sane" : "insane");
	else if (!strcmp(cmd, "requests"))
		snprintf(out, len, "%lu", requests);
	else
		snprintf(out, len, "ERR unknown command %s", cmd);
}

static void handle(int fd)
{
	char line[256], cmd[32] = "", word[64] = "-", out[512];
	int arg = 0;
	ssize_t n = read(fd, line, sizeof(line) - 1);

	if (n <= 0)
		return;
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	requests++;
	if (sscanf(line, "%31s %d %63s", cmd, &arg, word) < 1)
		snprintf(out, sizeof(out), "ERR empty");
	else
		answer(cmd, arg, word, out, sizeof(out));
	strcat(out, "\n");
	if (write(fd, out, strlen(out)) < 0)
		perror("write");
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;

/* A second thread, blocked for good: its stack is checked too. */
static void *idler(void *arg)
{
	pthread_mutex_lock(&lock);
	for (;;)
		pthread_cond_wait(&never, &lock);
	return arg;
}

static void serve(int lfd)
{
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;
		handle(fd);
		close(fd);
	}
}

int main(void)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(addr);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	pthread_t t;

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
		perror("kinds");
		return 1;
	}
	pthread_create(&t, NULL, idler, NULL);
	printf("ready %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	serve(lfd);
}
