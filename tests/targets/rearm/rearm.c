/* A server whose periodic work re-arms itself: each tick runs the handler
 * that the last tick left in a pointer, and the handler stores its own
 * address there again, as libevent timers and signal handlers that
 * install themselves again do. memcached's clock_handler does it. The
 * handler records the step it counts by; STEP answers it, TICKS how many
 * ticks have run; CLOCK the clock it last ran under; HELLO; KEEP ADDR. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void (*volatile next_tick)(void);
static volatile long ticks, step;

/* The clock the handler last ran under: a constant table of a function
 * and a name, to which the program keeps a pointer, as expat's parser
 * keeps one to its encoding's. */
struct clock {
	void (*tick)(void);
	const char *name;
};
static void tick(void);
static const struct clock steady = {tick, "steady"};
static const struct clock *volatile clock_now;

static void tick(void)
{
	step = 1;
	ticks += step;
	clock_now = &steady;
	next_tick = tick;
}

static void answer(const char *line, char *out, size_t len)
{
	if (!strcmp(line, "STEP"))
		snprintf(out, len, "%ld", step);
	else if (!strcmp(line, "TICKS"))
		snprintf(out, len, "%ld", ticks);
	else if (!strcmp(line, "CLOCK"))
		snprintf(out, len, "%s", clock_now ? clock_now->name : "none");
	else if (!strcmp(line, "HELLO"))
		snprintf(out, len, "hello");
	else if (!strncmp(line, "KEEP ", 5)) {
		/* A word the program keeps and never follows, as glibc's ld.so
		 * keeps one to where it mapped its cache before unmapping it. */
		static unsigned long kept;

		sscanf(line + 5, "%lx", &kept);
		snprintf(out, len, "kept %lx", *(volatile unsigned long *)&kept);
	} else
		snprintf(out, len, "ERR");
}

int main(void)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(addr);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 16) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen))
		return perror("rearm"), 1;
	next_tick = tick;
	printf("ready %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	for (;;) {
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		char line[64] = "", out[64];
		ssize_t n;
		int fd;

		if (poll(&p, 1, 1) == 0) { /* a tick a millisecond */
			next_tick();
			continue;
		}
		if ((fd = accept(lfd, NULL, NULL)) < 0)
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
