/* A server with a coroutine: its stack, mapped apart, is suspended inside
 * step() between requests, where no thread's unwind can see it. RESUME
 * runs it on to its next suspension and answers the value it made; FINISH
 * lets it leave step() for good (and clears its stack); RESTART starts a
 * new one (on the code step has then); HELLO.
 * VISIT starts a thread that calls step() itself, on its own stack; step
 * sends it on to a stack of its own (ucontext, whatever the build), where
 * it waits: its own stack then holds step's frame with no thread's stack
 * pointer in it. RETURN lets it come back through step and exit, joined:
 * glibc keeps the dead thread's stack, step's return address still in it.
 * The stacks switch as the program is built: with ucontext (the default),
 * with setjmp and longjmp (-DCORO_SETJMP), or with a switcher written in
 * assembly that imports nothing (-DCORO_ASM). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <ucontext.h>
#include <unistd.h>

#define STACK_SIZE (256 * 1024)

static char *coro_stack;
static volatile int value, finish, finished;
static void coroutine(void);

#if defined(CORO_SETJMP)
static jmp_buf main_env, coro_env;

#define suspend()                                                                                  \
	do {                                                                                       \
		if (!setjmp(coro_env))                                                             \
			longjmp(main_env, 1);                                                      \
	} while (0)
static void resume(void)
{
	if (!setjmp(main_env))
		longjmp(coro_env, 1);
}
static void forget(void)
{
	memset(&coro_env, 0, sizeof(coro_env));
}
static void body(void)
{
	coroutine();
	longjmp(main_env, 1);
}
static void start(void)
{
	if (!setjmp(main_env))
		__asm__ volatile("mov %0, %%rsp\n\tcall *%1" ::"r"(coro_stack + STACK_SIZE),
				 "r"(body));
}
#elif defined(CORO_ASM)
static void *main_sp, *coro_sp;

/* Saves the callee-saved registers on this stack and its pointer in
 * *save, then takes them back from the stack at to. */
void switch_stack(void **save, void *to);
__asm__(".text\n"
	"switch_stack:\n"
	"\tpush %rbp\n\tpush %rbx\n\tpush %r12\n\tpush %r13\n\tpush %r14\n\tpush %r15\n"
	"\tmov %rsp, (%rdi)\n\tmov %rsi, %rsp\n"
	"\tpop %r15\n\tpop %r14\n\tpop %r13\n\tpop %r12\n\tpop %rbx\n\tpop %rbp\n"
	"\tret\n");

#define suspend() switch_stack(&coro_sp, main_sp)
static void resume(void)
{
	switch_stack(&main_sp, coro_sp);
}
static void forget(void)
{
	coro_sp = NULL;
}
static void body(void)
{
	coroutine();
	switch_stack(&coro_sp, main_sp);
}
/* Six registers and a return into body on the new stack, which body
 * enters as a call would (the stack 8 off a 16-byte boundary). */
static void start(void)
{
	void **top = (void **)(coro_stack + STACK_SIZE) - 1;

	*--top = (void *)body;
	for (int i = 0; i < 6; i++)
		*--top = NULL;
	switch_stack(&main_sp, top);
}
#else
static ucontext_t main_ctx, coro_ctx;

#define suspend() swapcontext(&coro_ctx, &main_ctx)
static void resume(void)
{
	swapcontext(&main_ctx, &coro_ctx);
}
static void forget(void)
{
	memset(&coro_ctx, 0, sizeof(coro_ctx));
}
static void start(void)
{
	getcontext(&coro_ctx);
	coro_ctx.uc_stack.ss_sp = coro_stack;
	coro_ctx.uc_stack.ss_size = STACK_SIZE;
	coro_ctx.uc_link = &main_ctx;
	makecontext(&coro_ctx, coroutine, 0);
	swapcontext(&main_ctx, &coro_ctx);
}
#endif

static __thread int visiting; /* step called by the visitor thread */
static ucontext_t visit_home, visit_away;
static char *away_stack;
static int away_pipe[2];
static volatile int away;

/* The visitor waits on the away stack until RETURN. */
static void wait_away(void)
{
	char c;

	away = 1;
	if (read(away_pipe[0], &c, 1) != 1)
		perror("read");
}

static void wander(void)
{
	getcontext(&visit_away);
	visit_away.uc_stack.ss_sp = away_stack;
	visit_away.uc_stack.ss_size = STACK_SIZE;
	visit_away.uc_link = &visit_home;
	makecontext(&visit_away, wait_away, 0);
	swapcontext(&visit_home, &visit_away);
}

__attribute__((noinline)) int step(int n)
{
	int before = n * 2;

	if (visiting)
		wander();
	else
		suspend(); /* suspended here, inside step */
	return before + 1;
}

static pthread_t visitor;
static int visited;

/* step called below 2 KB of the visitor's stack, as from a deep call
 * chain: the calls of the thread's exit, nearer the top, leave its frame
 * as it was. */
static __attribute__((noinline)) int step_deep(int n)
{
	volatile char depth[2048];

	depth[0] = (char)n;
	depth[1] = 0;
	return step(depth[0]) + depth[1]; /* a call, not a jump: depth stays */
}

static void *visit(void *arg)
{
	(void)arg;
	visiting = 1;
	visited = step_deep(20);
	return NULL;
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
	start();
}

static void answer(const char *line, char *out, size_t len)
{
	if (!strcmp(line, "RESUME") && !finished) {
		resume();
		snprintf(out, len, "%d", value);
	} else if (!strcmp(line, "FINISH") && !finished) {
		finish = 1;
		resume();
		/* Nothing of it left: its stack, and its saved context (whose
		 * instruction pointer was inside step). */
		memset(coro_stack, 0, STACK_SIZE);
		forget();
		snprintf(out, len, "finished");
	} else if (!strcmp(line, "RESTART") && finished) {
		start_coroutine();
		snprintf(out, len, "restarted");
	} else if (!strcmp(line, "VISIT") && !away) {
		int err = pthread_create(&visitor, NULL, visit, NULL);

		while (!err && !away)
			usleep(1000);
		snprintf(out, len, err ? "ERR" : "away");
	} else if (!strcmp(line, "RETURN") && away) {
		if (write(away_pipe[1], "", 1) != 1 || pthread_join(visitor, NULL))
			perror("return");
		away = 0;
		snprintf(out, len, "%d", visited);
	} else if (!strcmp(line, "HELLO")) {
		snprintf(out, len, "hello");
	} else {
		snprintf(out, len, "ERR");
	}
}

/* mb megabytes of memory written to, for a scan to read: a warm heap. */
static int ballast(size_t mb)
{
	char *p =
	    mb ? mmap(NULL, mb << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
	       : NULL;

	if (p == MAP_FAILED)
		return -1;
	if (p)
		memset(p, 0x5a, mb << 20);
	return 0;
}

/* coro [MB]: MB megabytes of ballast, half mapped on each side of the
 * coroutine's stack. */
int main(int argc, char **argv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(addr);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;

	if (ballast(mb / 2))
		return perror("coro"), 1;
	coro_stack =
	    mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	away_stack =
	    mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (coro_stack == MAP_FAILED || away_stack == MAP_FAILED || pipe(away_pipe) ||
	    ballast(mb - mb / 2) || lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) ||
	    listen(lfd, 16) || getsockname(lfd, (struct sockaddr *)&addr, &alen))
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
