/* A server whose worker thread keeps its mood in a thread-local pointer:
 * FEEL wakes the worker, which sets it; MOOD answers it, read by the main
 * thread through the pointer to the worker's variable the worker left;
 * HELLO. The mood is only ever in the worker's TLS, which lies in its
 * stack's mapping, beside its frames. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static __thread const char *mood;
static const char **volatile worker_mood;
static int wake[2];

__attribute__((noinline)) static void feel(void)
{
	mood = "calm";
}

static void *worker(void *arg)
{
	char c;

	(void)arg;
	mood = "none";
	worker_mood = &mood;
	while (read(wake[0], &c, 1) == 1)
		feel();
	return NULL;
}

static void answer(const char *line, char *out, size_t len)
{
	if (!strcmp(line, "FEEL"))
		snprintf(out, len, "%s", write(wake[1], "x", 1) == 1 ? "ok" : "ERR");
	else if (!strcmp(line, "MOOD"))
		snprintf(out, len, "%s", worker_mood ? *worker_mood : "none");
	else if (!strcmp(line, "HELLO"))
		snprintf(out, len, "hello");
	else
		snprintf(out, len, "ERR");
}

int main(void)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(addr);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	pthread_t th;

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 16) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen) || pipe(wake) ||
	    pthread_create(&th, NULL, worker, NULL))
		return perror("moody"), 1;
	printf("ready %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	for (;;) {
		char line[64] = "", out[64];
		int fd = accept(lfd, NULL, NULL);
		ssize_t n;

		if (fd < 0)
			continue;
		n = read(fd, line, sizeof(line) - 1);
		line[n > 0 ? n : 0] = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		answer(line, out, sizeof(out));
		strcat(out, "\n");
		if (write(fd, out, strlen(out)) < 0)
			perror("write");
		close(fd);
	}
}
