/* One thread writes a string a function returns into a full pipe and
 * blocks there: while the kernel waits for room, only the write's
 * argument register points at the string, and the kernel reads it once a
 * reader drains the pipe. Once a patch's word() returns a constant of the
 * patch's own, that register points into the patch.
 *
 * Prints "ready FD BYTES" (FD: the pipe's read end, full with BYTES
 * bytes), waits for SIGUSR1,
 * then writes word() (5 bytes) and prints "wrote N" or "write failed:
 * REASON" once the write returns. Single-threaded, so glibc's write()
 * makes the syscall itself, with no cancellation frame keeping copies. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) const char *word(void)
{
	return "old  ";
}

/* The pipe's write end, filled (with *bytes) until a write would block,
 * then made blocking again; -1 on error. */
static int full_pipe(int *read_end, long *bytes)
{
	static const char fill[4096];
	ssize_t n;
	int p[2];

	if (pipe(p) || fcntl(p[1], F_SETFL, O_NONBLOCK))
		return -1;
	*bytes = 0;
	while ((n = write(p[1], fill, sizeof(fill))) > 0)
		*bytes += n;
	while (write(p[1], fill, 1) == 1)
		++*bytes;
	if (errno != EAGAIN || fcntl(p[1], F_SETFL, 0))
		return -1;
	*read_end = p[0];
	return p[1];
}

int main(void)
{
	sigset_t usr1;
	long bytes;
	int sig, r, w = full_pipe(&r, &bytes);
	ssize_t n;

	if (w < 0)
		return 1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	printf("ready %d %ld\n", r, bytes);
	fflush(stdout);
	sigwait(&usr1, &sig);
	n = write(w, word(), 5);
	if (n < 0)
		printf("write failed: %s\n", strerror(errno));
	else
		printf("wrote %zd\n", n);
	fflush(stdout);
	for (;;)
		pause();
}
