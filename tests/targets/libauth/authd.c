/* A server whose password check lives in libauth.so: AUTH user pass, CHECKS. */
#include "auth.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(addr);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
		perror("authd");
		return 1;
	}
	printf("ready %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	for (;;) {
		char line[256], user[64] = "", pass[64] = "", out[128];
		int fd = accept(lfd, NULL, NULL);
		ssize_t n;

		if (fd < 0)
			continue;
		n = read(fd, line, sizeof(line) - 1);
		if (n > 0) {
			line[n] = '\0';
			line[strcspn(line, "\r\n")] = '\0';
			if (sscanf(line, "AUTH %63s %63s", user, pass) >= 1)
				snprintf(out, sizeof(out), "%s\n",
					 auth_check(user, pass) ? "OK" : "DENIED");
			else
				snprintf(out, sizeof(out), "%lu\n", auth_checks);
			if (write(fd, out, strlen(out)) < 0)
				perror("write");
		}
		close(fd);
	}
}
