/* The units of one analysis spread over worker processes, one per CPU: a
 * fix to a header that a hundred units include takes minutes to parse one
 * unit after another. libclang is not shared across threads here, and a
 * process apart also keeps one unit's crash from taking the others' work.
 *
 * The parent writes every unit's number into a pipe; each worker takes the
 * next one as it becomes free (a 4-byte read from a pipe written 4 bytes
 * at a time is atomic), analyses it, and at the end writes its analysis and
 * the files it read, in the cache's text form, to a file in the scratch
 * directory. The parent merges them in unit order; sorting and dedup later
 * make the result the same as one process's. */
#include "fanout.h"
#include "cache.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_JOBS 64

static unsigned jobs_for(size_t nunits)
{
	const char *env = getenv("OPUS_ANALYZE_JOBS");
	long n = env && *env ? atol(env) : sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	if (n > MAX_JOBS)
		n = MAX_JOBS;
	return (size_t)n < nunits ? (unsigned)n : (unsigned)nunits;
}

static void result_path(const char *scratch, unsigned k, char *out, size_t len)
{
	snprintf(out, len, "%s/.opus-analysis-%u", scratch, k);
}

/* A worker: units from fd until it is empty, then its result file. A
 * unit that fails ends the worker with the error as the file's text. */
static void run_worker(int fd, const struct fanout_job *job, unsigned k)
{
	struct analysis a = {0};
	struct analysis_reads reads = {0};
	struct opus_buf b = {0};
	char path[PATH_MAX];
	uint32_t unit;
	int ret = 0;

	while (!ret && read(fd, &unit, sizeof(unit)) == (ssize_t)sizeof(unit))
		ret = job->unit(job->ctx, unit, &a, &reads);
	if (!ret)
		ret = analysis_text_write(&a, &reads, &b);
	if (ret) {
		opus_buf_free(&b);
		opus_buf_printf(&b, "E %d %s\n", ret, opus_errmsg());
	}
	result_path(job->scratch, k, path, sizeof(path));
	ret = b.data && !opus_write_file_atomic(path, b.data, b.len) ? 0 : 1;
	_exit(ret);
}

/* The worker's result added to out and reads; its error, if it had one. */
static int take_result(const struct fanout_job *job, unsigned k, struct analysis *out,
		       struct analysis_reads *reads)
{
	char path[PATH_MAX], *text = NULL;
	size_t len = 0;
	int ret, err, at = 0;

	result_path(job->scratch, k, path, sizeof(path));
	if (opus_read_file(path, &text, &len))
		return opus_err(-EIO, "analysis worker %u left no result", k);
	unlink(path);
	if (sscanf(text, "E %d %n", &err, &at) == 1 && at && err < 0)
		ret = opus_err(err, "%.*s", (int)strcspn(text + at, "\n"), text + at);
	else if ((ret = analysis_text_read(text, out, reads)))
		ret = opus_err(ret, "analysis worker %u: a damaged result", k);
	free(text);
	return ret;
}

static int start_workers(const struct fanout_job *job, const int fds[2], pid_t *pids, unsigned n)
{
	pid_t parent = getpid();

	fflush(NULL);
	for (unsigned k = 0; k < n; k++) {
		pids[k] = opus_cleanup_fork();
		if (pids[k] < 0)
			return opus_err(-errno, "fork: %s", strerror(errno));
		if (pids[k] == 0) {
			/* Its work is for this process only: should it die (opus
			 * killed), the worker goes with it. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			close(fds[1]); /* else its reads never find the end */
			run_worker(fds[0], job, k);
		}
	}
	return 0;
}

/* Every unit's number into the pipe, then its end closed: a worker's read
 * finds the pipe empty when all are taken. */
static int hand_out(int fd, size_t nunits)
{
	for (uint32_t u = 0; u < nunits; u++)
		if (write(fd, &u, sizeof(u)) != (ssize_t)sizeof(u))
			return opus_err(-errno, "analysis: cannot hand out units: %s",
					strerror(errno));
	return 0;
}

static int wait_workers(const struct fanout_job *job, const pid_t *pids, unsigned n,
			struct analysis *out, struct analysis_reads *reads)
{
	int ret = 0;

	for (unsigned k = 0; k < n; k++) {
		int status = 0, r;

		if (pids[k] <= 0)
			continue;
		waitpid(pids[k], &status, 0);
		opus_cleanup_forget_child(pids[k]);
		if (WIFSIGNALED(status))
			r = opus_err(-EIO, "analysis worker %u died of signal %d", k,
				     WTERMSIG(status));
		else
			r = take_result(job, k, out, reads);
		if (!ret)
			ret = r;
	}
	return ret;
}

int analysis_fanout(const struct fanout_job *job, size_t nunits, struct analysis *out,
		    struct analysis_reads *reads)
{
	struct analysis_reads unused = {0};
	pid_t pids[MAX_JOBS] = {0};
	unsigned n = jobs_for(nunits);
	int fds[2], ret;

	if (nunits > UINT32_MAX / 2 || pipe(fds) < 0)
		return opus_err(-EINVAL, "analysis: cannot hand out %zu units", nunits);
	/* The pipe holds 16384 units before a write waits for a worker. */
	ret = start_workers(job, fds, pids, n);
	close(fds[0]);
	if (!ret)
		ret = hand_out(fds[1], nunits);
	close(fds[1]);
	if (ret)
		for (unsigned k = 0; k < n; k++)
			if (pids[k] > 0)
				kill(pids[k], SIGKILL);
	ret = wait_workers(job, pids, n, out, reads ? reads : &unused) ?: ret;
	analysis_reads_free(&unused);
	return ret;
}
