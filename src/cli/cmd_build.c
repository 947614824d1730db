#include "analyze/analyze.h"
#include "build/build.h"
#include "cli.h"
#include "util/err.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_print_analysis(const struct analysis *a, FILE *out);

#define USAGE                                                                                      \
	"opus build --source DIR --diff FILE --binary PATH -o OUT [--cdb FILE] [--id ID]\n"        \
	"                  [--description TEXT] [--force] [--keep-scratch] [-v]"

static void print_notes(const struct build_notes *notes)
{
	for (size_t i = 0; i < notes->n; i++) {
		const struct build_note *n = &notes->v[i];

		fprintf(n->kind == BUILD_WARNING ? stderr : stdout, "%-8s %s (%s): %s\n",
			build_note_kind_name(n->kind), n->function, n->file, n->message);
	}
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
	    {"force", no_argument, NULL, 'f'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct build_opts o = {0};
	struct build_notes notes = {0};
	struct analysis a;
	bool force = false;
	char *findings;
	int c, ret;

	while ((c = getopt_long(argc, argv, "s:d:b:o:c:i:D:kfvh", opts, NULL)) != -1) {
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
		case 'f':
			force = true;
			break;
		case 'v':
			opus_set_verbose(true);
			break;
		case 'h':
			printf("usage: %s\n", USAGE);
			return 0;
		default:
			return cli_usage(USAGE);
		}
	}
	if (optind != argc || !o.source || !o.diff || !o.binary || !o.output)
		return cli_usage(USAGE);
	/* The same analysis as opus analyze; its findings travel in the patch. */
	if (opus_analyze(&(struct analyze_opts){o.source, o.diff, o.cdb}, &a))
		return cli_fail("build");
	cli_print_analysis(&a, stdout);
	if (analysis_has_error(&a) && !force) {
		analysis_free(&a);
		fprintf(stderr,
			"opus build: %s: refused: the analysis found errors (pass --force to "
			"build anyway)\n",
			o.diff);
		return 3;
	}
	findings = analysis_findings_text(&a);
	analysis_free(&a);
	o.findings = findings;
	ret = opus_build(&o, &notes);
	free(findings);
	print_notes(&notes);
	build_notes_free(&notes);
	if (ret)
		return cli_fail("build");
	printf("wrote %s\n", o.output);
	return 0;
}
