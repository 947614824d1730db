#include "run.h"
#include "err.h"

#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int opus_run(char *const argv[], const char *cwd)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return opus_err(-errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(STDERR_FILENO, STDOUT_FILENO);
		if (cwd && chdir(cwd) < 0)
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return opus_err(-errno, "waitpid: %s", strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return opus_err(-ENOENT, "%s: command not found", argv[0]);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 126)
		return opus_err(-ENOENT, "%s: cannot enter directory %s", argv[0], cwd);
	return opus_err(-EIO, "%s failed (%s %d)", argv[0],
			WIFEXITED(status) ? "exit status" : "signal",
			WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}
