/* A key-value server on loopback: PUT k v, GET k, COUNT; one request per
 * connection, one thread per connection. */
#include "kv.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static void handle(char *line, char *out, size_t len)
{
	char key[64] = "", value[64] = "";
	const char *v;

	if (sscanf(line, "PUT %63s %63s", key, value) == 2)
		snprintf(out, len, "%s", kv_put(key, value) ? "REFUSED" : "STORED");
	else if (sscanf(line, "GET %63s", key) == 1)
		snprintf(out, len, "%s", !key_ok(key) ? "BADKEY" : (v = kv_get(key)) ? v : "NONE");
	else if (!strcmp(line, "COUNT"))
		snprintf(out, len, "%lu", kv_count());
	else
		snprintf(out, len, "ERR");
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

int main(void)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(addr);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
		perror("kvsrv");
		return 1;
	}
	printf("ready %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pthread_t t;

		if (fd < 0)
			continue;
		if (pthread_create(&t, NULL, serve, (void *)(long)fd) == 0)
			pthread_detach(t);
		else
			close(fd);
	}
}
