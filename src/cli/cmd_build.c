#include "analyze/job.h"
#include "mkpatch/build.h"
#include "cli.h"
#include "options.h"
#include "util/clock.h"
#include "util/err.h"

#include <getopt.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define USAGE                                                                                      \
	"opus build --source DIR --diff FILE --binary PATH -o OUT [--cdb FILE] [--id ID]\n"        \
	"                  [--description TEXT] [--after PATCH]... [--exclude FUNCTION]...\n"      \
	"                  [--installed PATH] [--force] [--keep-scratch] [-v]\n"                   \
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

/* The analysis runs beside the build (analyze/job.h); the build asks for
 * its findings once the patch is assembled. */
struct build_analysis {
	struct analysis_job job;
	struct progress *progress;
	bool force;
};

/* Forced past an analysis that could not run: the patch says so. */
static int no_analysis(const char *why, struct build_findings *f)
{
	fprintf(stderr, "opus build: warning: no analysis: %s\n", why);
	if (asprintf(&f->text, "analysis unavailable: %s\n", why) < 0)
		f->text = NULL;
	return f->text ? 0 : -ENOMEM;
}

static int take_findings(const struct analysis_outcome *out, struct build_findings *f)
{
	fputs(out->report, stdout);
	f->text = strdup(out->findings);
	f->never_left = strdup(out->never_left);
	f->callers_to_prove = strdup(out->callers_to_prove);
	f->unsafe = out->verdict == ANALYSIS_UNSAFE;
	return f->text && f->never_left && f->callers_to_prove ? 0 : -ENOMEM;
}

/* The build's findings callback: wait for the analysis, print it, hand
 * its findings over; the build decides. */
static int join_analysis(void *ctx, struct build_findings *f)
{
	struct build_analysis *ba = ctx;
	struct analysis_outcome out;
	int ret = 0;

	print_progress(ba->progress, "the patch is assembled; waiting for the analysis", 0, 0);
	if ((ret = analysis_job_join(&ba->job, &out)))
		return ret;
	if (out.verdict == ANALYSIS_FAILED && ba->force)
		ret = no_analysis(out.report, f);
	else if (out.verdict == ANALYSIS_FAILED)
		ret = opus_err(-EINVAL, "%s (pass --force to build without the analysis)",
			       out.report);
	else
		ret = take_findings(&out, f);
	analysis_outcome_free(&out);
	return ret;
}

static int finish(int ret, const struct build_opts *o, struct build_notes *notes)
{
	/* What a failed build would have replaced is no news: the error is. */
	if (!ret)
		print_notes(notes);
	build_notes_free(notes);
	if (ret == -ENODATA) { /* a fix to code this build leaves out */
		fprintf(stderr, "opus build: %s\n", opus_errmsg());
		return CLI_NOTHING_TO_APPLY;
	}
	if (ret)
		return cli_fail("build");
	printf("wrote %s\n", o->output);
	return 0;
}

static void free_lists(struct build_opts *o)
{
	free((void *)o->after);
	free((void *)o->units);
	free((void *)o->exclude);
}

static int run_build(struct build_opts *o)
{
	struct build_notes notes = {0};
	struct build_analysis ba = {.progress = o->progress_ctx, .force = o->force};
	int ret;

	if (o->replace_all) /* nothing changed, nothing to analyze */
		return finish(opus_build(o, &notes), o, &notes);
	/* The same analysis as opus analyze; its findings travel in the patch. */
	if (analysis_job_start(&ba.job, &(struct analyze_opts){o->source, o->diff, o->cdb}))
		return cli_fail("build");
	o->findings = join_analysis;
	o->findings_ctx = &ba;
	ret = opus_build(o, &notes);
	analysis_job_abandon(&ba.job);
	if (ret == BUILD_REFUSED) {
		build_notes_free(&notes);
		fprintf(stderr, "opus build: %s\n", opus_errmsg());
		return 3;
	}
	return finish(ret, o, &notes);
}

int cmd_build(int argc, char **argv)
{
	struct progress pr;
	struct build_opts o = {.progress = print_progress, .progress_ctx = &pr};
	bool verbose = false;
	int status;
	const struct cli_opt opts[] = {
	    CLI_STRING("source", 's', &o.source),
	    CLI_STRING("diff", 'd', &o.diff),
	    CLI_STRING("binary", 'b', &o.binary),
	    CLI_STRING("installed", 'I', &o.installed),
	    CLI_STRING("output", 'o', &o.output),
	    CLI_STRING("cdb", 'c', &o.cdb),
	    CLI_STRING("id", 'i', &o.id),
	    CLI_STRING("description", 'D', &o.description),
	    CLI_FLAG("keep-scratch", 'k', &o.keep_scratch),
	    CLI_LIST("after", 'a', &o.after, &o.nafter),
	    CLI_FLAG("replace-all", 'R', &o.replace_all),
	    CLI_LIST("unit", 'u', &o.units, &o.nunits),
	    CLI_LIST("exclude", 'x', &o.exclude, &o.nexclude),
	    CLI_FLAG("force", 'f', &o.force),
	    CLI_FLAG("verbose", 'v', &verbose),
	    CLI_END,
	};

	progress_init(&pr);
	if (cli_parse(argc, argv, opts, "build", USAGE, &status) == 0) {
		if (optind != argc || !o.source || !o.binary || !o.output ||
		    !o.diff == !o.replace_all || (o.nunits && !o.replace_all)) {
			status = cli_usage(USAGE);
		} else {
			opus_set_verbose(verbose);
			status = run_build(&o);
		}
	}
	free_lists(&o);
	return status;
}
