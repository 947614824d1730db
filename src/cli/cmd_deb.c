#include "cli.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * opus deb: a Debian security update's code applied live to the installed
 * package. Fetching sources, installing build-dependencies and running
 * dpkg-buildpackage are apt's and dpkg's jobs, so the work is a script,
 * opus-deb, that calls this binary for every build and apply. The binary
 * in its build tree runs the tree's script (tools/); an installed one runs
 * the script installed with it (libexecdir/opus), so the two never come
 * from different versions. OPUS_EXEC_PATH overrides both.
 */

/* Where this executable's own opus-deb lives. */
static void helper_dir(const char *exe, char *dir, size_t size)
{
	const char *env = getenv("OPUS_EXEC_PATH");
	char copy[PATH_MAX];

	if (env && *env) {
		snprintf(dir, size, "%s", env);
		return;
	}
	snprintf(copy, sizeof(copy), "%s", exe);
	if (!strcmp(dirname(copy), OPUS_BUILD_ROOT))
		snprintf(dir, size, "%s/tools", OPUS_SOURCE_ROOT);
	else
		snprintf(dir, size, "%s", OPUS_LIBEXECDIR);
}

int cmd_deb(int argc, char **argv)
{
	char exe[PATH_MAX], dir[PATH_MAX], helper[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	(void)argc;
	if (n < 0) {
		opus_err(-errno, "cannot read /proc/self/exe: %s", strerror(errno));
		return cli_fail("deb");
	}
	exe[n] = '\0';
	helper_dir(exe, dir, sizeof(dir));
	snprintf(helper, sizeof(helper), "%s/opus-deb", dir);
	/* The script builds and applies with this very binary. */
	if (setenv("OPUS", exe, 1)) {
		opus_err(-errno, "cannot set OPUS: %s", strerror(errno));
		return cli_fail("deb");
	}
	argv[0] = helper;
	execv(helper, argv);
	opus_err(-errno, "cannot run %s: %s", helper, strerror(errno));
	return cli_fail("deb");
}
