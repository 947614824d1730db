/* A server with a helper that is not a thread: a child cloned with
 * CLONE_VM alone shares the server's memory, and so runs its code, but is
 * a process of its own (LinuxThreads made every thread so). The helper
 * spins in step(), adding the step it counts by to a counter the server
 * reads. STEP answers the step, TICKS the counter, HELPER the helper's
 * pid (0 if none); SPAWN starts the helper, when started with "later"
 * (else it starts at once); HELLO. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile long ticks, last_step;
static int helper_pid;
static char helper_stack[64 * 1024] __attribute__((aligned(16)));

__attribute__((noinline)) static long step(long i)
{
	last_step = 1;
	return i + last_step;
}

static int helper(void *arg)
{
	(void)arg;
	/* Gone with the server, as a thread would be. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;)
		ticks = step(ticks);
	return 0;
}

static void spawn(void)
{
	if (!helper_pid)
		helper_pid =
		    clone(helper, helper_stack + sizeof(helper_stack), CLONE_VM | SIGCHLD, NULL);
}

static void answer(const char *line, char *out, size_t len)
{
	if (!strcmp(line, "SPAWN"))
		spawn();
	if (!strcmp(line, "STEP"))
		snprintf(out, len, "%ld", last_step);
	else if (!strcmp(line, "TICKS"))
		snprintf(out, len, "%ld", ticks);
	else if (!strcmp(line, "HELPER") || !strcmp(line, "SPAWN"))
		snprintf(out, len, "%d", helper_pid);
	else if (!strcmp(line, "HELLO"))
		snprintf(out, len, "hello");
	else
		snprintf(out, len, "ERR");
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(addr);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 16) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen))
		return perror("vmchild"), 1;
	if (argc < 2 || strcmp(argv[1], "later"))
		spawn();
	if (helper_pid < 0)
		return perror("clone"), 1;
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
