#include "run.h"
#include "cleanup.h"
#include "err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int opus_run_start(char *const argv[], const char *cwd)
{
	const char *scratch = opus_cleanup_scratch();
	pid_t pid = opus_cleanup_fork();

	if (pid < 0)
		return opus_err(-errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* A compiler's temporary files go where an interrupt removes them. */
		if (scratch)
			setenv("TMPDIR", scratch, 1);
		dup2(STDERR_FILENO, STDOUT_FILENO);
		if (cwd && chdir(cwd) < 0)
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int opus_run_wait(int pid, const char *what, const char *cwd)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return opus_err(-errno, "waitpid: %s", strerror(errno));
	opus_cleanup_forget_child(pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return opus_err(-ENOENT, "%s: command not found", what);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 126)
		return opus_err(-ENOENT, "%s: cannot enter directory %s", what, cwd);
	return opus_err(-EIO, "%s failed (%s %d)", what,
			WIFEXITED(status) ? "exit status" : "signal",
			WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

int opus_run(char *const argv[], const char *cwd)
{
	int pid = opus_run_start(argv, cwd);

	return pid < 0 ? pid : opus_run_wait(pid, argv[0], cwd);
}
