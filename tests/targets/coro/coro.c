/* A server with a coroutine (ucontext): its stack, mapped apart, is
 * suspended inside step() between requests, where no thread's unwind can
 * see it. RESUME runs it on to its next suspension and answers the value it
 * made; FINISH lets it leave step() for good (and clears its stack);
 * RESTART starts a new one (on the code step has then); HELLO. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <ucontext.h>
#include <unistd.h>

#define STACK_SIZE (256 * 1024)

static ucontext_t main_ctx, coro_ctx;
static char *coro_stack;
static volatile int value, finish, finished;

__attribute__((noinline)) int step(int n)
{
	int before = n * 2;

	swapcontext(&coro_ctx, &main_ctx); /* suspended here, inside step */
	return before + 1;
}

static void coroutine(void)
{
	int n = 1;

	while (!finish) {
		n = step(n) % 1000;
		value = n;
	}
	finished = 1;
}

/* A fresh coroutine, run to its first suspension. */
static void start_coroutine(void)
{
	finish = finished = 0;
	getcontext(&coro_ctx);
	coro_ctx.uc_stack.ss_sp = coro_stack;
	coro_ctx.uc_stack.ss_size = STACK_SIZE;
	coro_ctx.uc_link = &main_ctx;
	makecontext(&coro_ctx, coroutine, 0);
	swapcontext(&main_ctx, &coro_ctx);
}

static void answer(const char *line, char *out, size_t len)
{
	if (!strcmp(line, "RESUME") && !finished) {
		swapcontext(&main_ctx, &coro_ctx);
		snprintf(out, len, "%d", value);
	} else if (!strcmp(line, "FINISH") && !finished) {
		finish = 1;
		swapcontext(&main_ctx, &coro_ctx);
		/* Nothing of it left: its stack, and its saved context (whose
		 * instruction pointer was inside step). */
		memset(coro_stack, 0, STACK_SIZE);
		memset(&coro_ctx, 0, sizeof(coro_ctx));
		snprintf(out, len, "finished");
	} else if (!strcmp(line, "RESTART") && finished) {
		start_coroutine();
		snprintf(out, len, "restarted");
	} else if (!strcmp(line, "HELLO")) {
		snprintf(out, len, "hello");
	} else {
		snprintf(out, len, "ERR");
	}
}

int main(void)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(addr);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	coro_stack =
	    mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (coro_stack == MAP_FAILED || lfd < 0 ||
	    bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 16) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen))
		return perror("coro"), 1;
	start_coroutine();
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
