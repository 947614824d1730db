#include "analyze/analyze.h"
#include "build/build.h"
#include "cli.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/err.h"

#include <getopt.h>
#include <stdio.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string.h>

void cli_print_analysis(const struct analysis *a, FILE *out);

#define USAGE                                                                                      \
	"opus build --source DIR --diff FILE --binary PATH -o OUT [--cdb FILE] [--id ID]\n"        \
	"                  [--description TEXT] [--after PATCH]... [--force] [--keep-scratch] "    \
	"[-v]\n"                                                                                   \
	"       opus build --replace-all --source DIR --binary PATH -o OUT [--unit FILE]...\n"     \
	"                  [--exclude FUNCTION]... [--cdb FILE] [--id ID]"

/* A build of a large diff runs for minutes: after the first 5 s, a line
 * every 5 s ($OPUS_PROGRESS_SECONDS) says where it is. */
struct progress {
	uint64_t start, last, every;
};

static void progress_init(struct progress *pr)
{
	const char *env = getenv("OPUS_PROGRESS_SECONDS");
	double s = env && *env ? atof(env) : 5;

	pr->start = opus_now_ns();
	pr->every = s > 0 ? (uint64_t)(s * 1e9) : 0;
	pr->last = 0;
}

static void print_progress(void *ctx, const char *phase, size_t done, size_t total)
{
	struct progress *pr = ctx;
	uint64_t now = opus_now_ns();

	if (now - pr->start < pr->every || (pr->last && now - pr->last < pr->every))
		return;
	pr->last = now;
	if (total)
		fprintf(stderr, "opus build: %zu of %zu %s (%.0f s)\n", done, total, phase,
			(double)(now - pr->start) / 1e9);
	else
		fprintf(stderr, "opus build: %s (%.0f s)\n", phase,
			(double)(now - pr->start) / 1e9);
}

static void print_notes(const struct build_notes *notes)
{
	for (size_t i = 0; i < notes->n; i++) {
		const struct build_note *n = &notes->v[i];

		fprintf(n->kind == BUILD_WARNING ? stderr : stdout, "%-8s %s (%s): %s\n",
			build_note_kind_name(n->kind), n->function, n->file, n->message);
	}
}

/* The analysis runs in a child process while the build compiles: on two
 * cores the two halves of the work overlap. The child sends its verdict,
 * its report and the findings to embed, NUL-separated. */
struct analysis_job {
	struct analyze_opts opts;
	struct progress *progress;
	bool force, refused, joined;
	pid_t pid;
	int fd;
};

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

static void run_analysis_child(struct analysis_job *job)
{
	struct analysis a;
	char *report = NULL, *findings;
	size_t len = 0;
	FILE *out;

	if (opus_analyze(&job->opts, &a)) {
		write_all(job->fd, "fail", 5);
		write_all(job->fd, opus_errmsg(), strlen(opus_errmsg()) + 1);
		_exit(0);
	}
	out = open_memstream(&report, &len);
	if (out) {
		cli_print_analysis(&a, out);
		fclose(out);
	}
	findings = analysis_findings_text(&a);
	write_all(job->fd, analysis_has_error(&a) ? "error" : "ok", analysis_has_error(&a) ? 6 : 3);
	write_all(job->fd, report ? report : "", len + 1);
	write_all(job->fd, findings, strlen(findings) + 1);
	_exit(0);
}

static int start_analysis(struct analysis_job *job)
{
	int fds[2];

	if (pipe(fds) < 0)
		return opus_err(-errno, "pipe: %s", strerror(errno));
	fflush(NULL);
	job->pid = opus_cleanup_fork();
	if (job->pid < 0)
		return opus_err(-errno, "fork: %s", strerror(errno));
	if (job->pid == 0) {
		close(fds[0]);
		job->fd = fds[1];
		run_analysis_child(job);
	}
	close(fds[1]);
	job->fd = fds[0];
	/* Registered by the fork; it cleans its own scratch tree. */
	return 0;
}

static char *read_all(int fd, size_t *len)
{
	size_t cap = 4096;
	char *buf = malloc(cap);
	ssize_t r;

	*len = 0;
	while (buf && (r = read(fd, buf + *len, cap - *len - 1)) > 0) {
		*len += (size_t)r;
		if (*len + 1 == cap) {
			char *p = realloc(buf, cap *= 2);

			if (!p)
				break;
			buf = p;
		}
	}
	if (buf)
		buf[*len] = '\0';
	return buf;
}

/* The build's findings callback: wait for the analysis, print it, decide. */
static int join_analysis(void *ctx, char **text)
{
	struct analysis_job *job = ctx;
	size_t len;
	char *buf, *report, *findings;
	int status;

	print_progress(job->progress, "the patch is assembled; waiting for the analysis", 0, 0);
	buf = read_all(job->fd, &len);
	close(job->fd);
	waitpid(job->pid, &status, 0);
	opus_cleanup_forget_child(job->pid);
	job->joined = true;
	if (!buf || len < 3) {
		free(buf);
		if (WIFSIGNALED(status))
			return opus_err(-EIO, "the analysis process was killed by signal %d",
					WTERMSIG(status));
		return opus_err(-EIO, "the analysis process failed (exit status %d)",
				WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	report = buf + strlen(buf) + 1;
	if (!strcmp(buf, "fail") && job->force) {
		/* Forced: build without findings, and say so in the patch. */
		fprintf(stderr, "opus build: warning: no analysis: %s\n", report);
		*text = malloc(strlen(report) + 32);
		if (*text)
			sprintf(*text, "analysis unavailable: %s\n", report);
		free(buf);
		return *text ? 0 : -ENOMEM;
	}
	if (!strcmp(buf, "fail")) {
		opus_err(-EINVAL, "%s (pass --force to build without the analysis)", report);
		free(buf);
		return -EINVAL;
	}
	findings = report + strlen(report) + 1;
	fputs(report, stdout);
	if (!strcmp(buf, "error") && !job->force) {
		job->refused = true;
		free(buf);
		return opus_err(-EPERM,
				"%s: refused: the analysis found errors (pass --force to "
				"build anyway)",
				job->opts.diff);
	}
	*text = strdup(findings);
	free(buf);
	return *text ? 0 : -ENOMEM;
}

static int finish(int ret, const struct build_opts *o, struct build_notes *notes)
{
	/* What a failed build would have replaced is no news: the error is. */
	if (!ret)
		print_notes(notes);
	build_notes_free(notes);
	if (ret)
		return cli_fail("build");
	printf("wrote %s\n", o->output);
	return 0;
}

static void abandon_analysis(struct analysis_job *job)
{
	if (job->joined || job->pid <= 0)
		return;
	kill(job->pid, SIGTERM); /* it removes its scratch tree and dies */
	close(job->fd);
	waitpid(job->pid, NULL, 0);
	opus_cleanup_forget_child(job->pid);
}

int cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"source", required_argument, NULL, 's'},
	    {"diff", required_argument, NULL, 'd'},
	    {"binary", required_argument, NULL, 'b'},
	    {"output", required_argument, NULL, 'o'},
	    {"cdb", required_argument, NULL, 'c'},
	    {"id", required_argument, NULL, 'i'},
	    {"description", required_argument, NULL, 'D'},
	    {"keep-scratch", no_argument, NULL, 'k'},
	    {"after", required_argument, NULL, 'a'},
	    {"replace-all", no_argument, NULL, 'R'},
	    {"unit", required_argument, NULL, 'u'},
	    {"exclude", required_argument, NULL, 'x'},
	    {"force", no_argument, NULL, 'f'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct progress pr;
	struct build_opts o = {.progress = print_progress, .progress_ctx = &pr};
	/* Each list has at most argc entries. */
	const char **after = calloc(3 * ((size_t)argc + 1), sizeof(*after));
	const char **units = after + argc + 1, **exclude = units + argc + 1;

	if (!after)
		return cli_fail("build");
	progress_init(&pr);
	struct build_notes notes = {0};
	struct analysis_job job = {.pid = -1, .fd = -1, .progress = &pr};
	bool force = false;
	int c, ret, status;

	while ((c = cli_next_opt(argc, argv, opts, USAGE, &status)) != -1) {
		switch (c) {
		case 's':
			o.source = optarg;
			break;
		case 'd':
			o.diff = optarg;
			break;
		case 'b':
			o.binary = optarg;
			break;
		case 'o':
			o.output = optarg;
			break;
		case 'c':
			o.cdb = optarg;
			break;
		case 'i':
			o.id = optarg;
			break;
		case 'D':
			o.description = optarg;
			break;
		case 'k':
			o.keep_scratch = true;
			break;
		case 'a':
			after[o.nafter++] = optarg;
			break;
		case 'R':
			o.replace_all = true;
			break;
		case 'u':
			units[o.nunits++] = optarg;
			break;
		case 'x':
			exclude[o.nexclude++] = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'v':
			opus_set_verbose(true);
			break;
		default:
			free(after);
			return status; /* --help, or a bad option: usage printed */
		}
	}
	o.after = after;
	o.units = units;
	o.exclude = exclude;
	if (optind != argc || !o.source || !o.binary || !o.output || !o.diff == !o.replace_all ||
	    (o.nunits && !o.replace_all)) {
		free(after);
		return cli_usage(USAGE);
	}
	if (o.replace_all) {
		/* Nothing changed, nothing to analyze. */
		ret = opus_build(&o, &notes);
		free(after);
		return finish(ret, &o, &notes);
	}
	/* The same analysis as opus analyze; its findings travel in the patch. */
	job.opts = (struct analyze_opts){o.source, o.diff, o.cdb};
	job.force = force;
	if (start_analysis(&job)) {
		free(after);
		return cli_fail("build");
	}
	o.findings = join_analysis;
	o.findings_ctx = &job;
	ret = opus_build(&o, &notes);
	free(after);
	abandon_analysis(&job);
	if (job.refused) {
		build_notes_free(&notes);
		fprintf(stderr, "opus build: %s\n", opus_errmsg());
		return 3;
	}
	return finish(ret, &o, &notes);
}
