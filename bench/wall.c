/* wall FILE CMD [ARG...]: runs CMD, appends its wall time in milliseconds
 * (fork to reap, posix_spawn) to FILE, and exits with CMD's status. The
 * clock a shell gives (date before and after) adds two more processes. */
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	double start;
	pid_t pid;
	int status;
	FILE *out;

	if (argc < 3)
		return fprintf(stderr, "usage: wall FILE CMD [ARG...]\n"), 2;
	start = now_ms();
	if (posix_spawnp(&pid, argv[2], NULL, NULL, argv + 2, environ))
		return perror(argv[2]), 127;
	if (waitpid(pid, &status, 0) < 0)
		return perror("waitpid"), 1;
	out = fopen(argv[1], "a");
	if (!out)
		return perror(argv[1]), 1;
	fprintf(out, "%.3f\n", now_ms() - start);
	fclose(out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
