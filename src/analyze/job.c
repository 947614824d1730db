#include "job.h"
#include "util/cleanup.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The child writes five NUL-terminated strings: the verdict word, the
 * report, the findings, the functions never left, the functions whose
 * callers the binary must prove. */
static const char *const verdict_words[] = {"ok", "error", "fail", "unproven"};

static enum analysis_verdict verdict_of(const struct analysis *a)
{
	if (analysis_has_error_beyond_proof(a))
		return ANALYSIS_UNSAFE;
	return analysis_has_error(a) ? ANALYSIS_UNPROVEN : ANALYSIS_SAFE;
}

static void write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t w = write(fd, s, len);

		if (w <= 0)
			return;
		s += w;
		len -= (size_t)w;
	}
}

static void write_str(int fd, const char *s)
{
	write_all(fd, s, strlen(s) + 1);
}

static void run_child(int fd, const struct analyze_opts *o)
{
	struct analysis a;
	char *report = NULL;
	size_t len = 0;
	FILE *out;

	if (opus_analyze(o, &a)) {
		write_str(fd, verdict_words[ANALYSIS_FAILED]);
		write_str(fd, opus_errmsg());
		write_str(fd, "");
		write_str(fd, "");
		write_str(fd, "");
		_exit(0);
	}
	if (a.reused)
		fprintf(stderr,
			"opus build: the analysis of %s is reused: same diff, and the files "
			"it read are unchanged\n",
			o->diff);
	out = open_memstream(&report, &len);
	if (out) {
		analysis_print(&a, out);
		fclose(out);
	}
	write_str(fd, verdict_words[verdict_of(&a)]);
	write_str(fd, report ? report : "");
	write_str(fd, analysis_findings_text(&a));
	write_str(fd, analysis_never_left_text(&a));
	write_str(fd, analysis_callers_to_prove_text(&a));
	_exit(0);
}

int analysis_job_start(struct analysis_job *job, const struct analyze_opts *o)
{
	int fds[2];

	job->pid = -1;
	job->fd = -1;
	job->joined = false;
	if (pipe(fds) < 0)
		return opus_err(-errno, "pipe: %s", strerror(errno));
	fflush(NULL);
	job->pid = opus_cleanup_fork(); /* registered: it cleans its own scratch tree */
	if (job->pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return opus_err(-errno, "fork: %s", strerror(errno));
	}
	if (job->pid == 0) {
		close(fds[0]);
		run_child(fds[1], o);
	}
	close(fds[1]);
	job->fd = fds[0];
	return 0;
}

/* The start of each of the five strings, each within the len bytes read. */
static int split_strings(char *buf, size_t len, char *str[5])
{
	char *at = buf, *end = buf + len;

	for (size_t i = 0; i < 5; i++) {
		char *nul = at < end ? memchr(at, '\0', (size_t)(end - at)) : NULL;

		if (!nul)
			return -EIO;
		str[i] = at;
		at = nul + 1;
	}
	return 0;
}

static int parse_outcome(char *buf, size_t len, struct analysis_outcome *out)
{
	char *str[5];

	if (split_strings(buf, len, str))
		return -EIO;
	for (size_t v = 0; v < sizeof(verdict_words) / sizeof(verdict_words[0]); v++)
		if (!strcmp(str[0], verdict_words[v])) {
			out->verdict = (enum analysis_verdict)v;
			out->report = str[1];
			out->findings = v == ANALYSIS_FAILED ? NULL : str[2];
			out->never_left = str[3];
			out->callers_to_prove = str[4];
			out->buf = buf;
			return 0;
		}
	return -EIO;
}

int analysis_job_join(struct analysis_job *job, struct analysis_outcome *out)
{
	size_t len = 0;
	char *buf = NULL;
	int status;

	memset(out, 0, sizeof(*out));
	if (opus_read_fd(job->fd, "the analysis process", &buf, &len))
		buf = NULL;
	close(job->fd);
	waitpid(job->pid, &status, 0);
	opus_cleanup_forget_child(job->pid);
	job->joined = true;
	if (buf && !parse_outcome(buf, len, out))
		return 0;
	free(buf);
	if (WIFSIGNALED(status))
		return opus_err(-EIO, "the analysis process was killed by signal %d",
				WTERMSIG(status));
	return opus_err(-EIO, "the analysis process failed (exit status %d)",
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

void analysis_job_abandon(struct analysis_job *job)
{
	if (job->joined || job->pid <= 0)
		return;
	kill(job->pid, SIGTERM); /* it removes its scratch tree and dies */
	close(job->fd);
	waitpid(job->pid, NULL, 0);
	opus_cleanup_forget_child(job->pid);
	job->joined = true;
}

void analysis_outcome_free(struct analysis_outcome *out)
{
	free(out->buf);
	memset(out, 0, sizeof(*out));
}
