#include "analyze/analyze.h"
#include "cli.h"
#include "util/err.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#define USAGE "opus analyze --source DIR --diff FILE [--cdb FILE] [--json]"

json_t *cli_analysis_json(const struct analysis *a);

json_t *cli_analysis_json(const struct analysis *a)
{
	json_t *funcs = json_array(), *findings = json_array();

	for (size_t i = 0; i < a->nfuncs; i++)
		json_array_append_new(funcs, json_pack("{s:s, s:s, s:s}", "name", a->funcs[i].name,
						       "file", a->funcs[i].file, "change",
						       an_change_name(a->funcs[i].change)));
	for (size_t i = 0; i < a->nfindings; i++) {
		const struct an_finding *f = &a->findings[i];

		json_array_append_new(findings,
				      json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "severity",
						an_severity_name(f->severity), "kind", f->kind,
						"function", f->function, "file", f->file, "line",
						f->line, "message", f->message));
	}
	return json_pack("{s:o, s:o}", "functions", funcs, "findings", findings);
}

void cli_print_analysis(const struct analysis *a, FILE *out);

/* One line a finding, grouped by function, then a verdict. */
void cli_print_analysis(const struct analysis *a, FILE *out)
{
	size_t counts[3] = {0};

	for (size_t i = 0; i < a->nfuncs; i++)
		fprintf(out, "%s %s (%s)\n", an_change_name(a->funcs[i].change), a->funcs[i].name,
			a->funcs[i].file);
	for (size_t i = 0; i < a->nfindings; i++) {
		const struct an_finding *f = &a->findings[i];

		if (!i || strcmp(f->function, a->findings[i - 1].function))
			fprintf(out, "%s:\n", f->function[0] ? f->function : "(file scope)");
		fprintf(out, "  %s:%d: %s: %s [%s]\n", f->file, f->line,
			an_severity_name(f->severity), f->message, f->kind);
		counts[f->severity]++;
	}
	fprintf(out, "%s: %zu error(s), %zu warning(s), %zu info\n",
		counts[AN_ERROR] ? "unsafe to apply live" : "no errors", counts[AN_ERROR],
		counts[AN_WARNING], counts[AN_INFO]);
}

int cmd_analyze(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"source", required_argument, NULL, 's'}, {"diff", required_argument, NULL, 'd'},
	    {"cdb", required_argument, NULL, 'c'},    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},	      {0},
	};
	struct analyze_opts o = {0};
	struct analysis a;
	bool json = false;
	int c, status;

	while ((c = cli_next_opt(argc, argv, opts, USAGE, &status)) != -1) {
		switch (c) {
		case 's':
			o.source = optarg;
			break;
		case 'd':
			o.diff = optarg;
			break;
		case 'c':
			o.cdb = optarg;
			break;
		case 'j':
			json = true;
			break;
		default:
			return status; /* --help, or a bad option: usage printed */
		}
	}
	if (optind != argc || !o.source || !o.diff)
		return cli_usage(USAGE);
	if (opus_analyze(&o, &a))
		return cli_fail("analyze");
	if (json)
		cli_print_json(cli_analysis_json(&a));
	else
		cli_print_analysis(&a, stdout);
	status = analysis_has_error(&a) ? 3 : 0;
	analysis_free(&a);
	return status;
}
