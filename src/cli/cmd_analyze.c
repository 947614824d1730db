#include "analyze/analyze.h"
#include "cli.h"
#include "options.h"
#include "util/err.h"

#include <getopt.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define USAGE "opus analyze --source DIR --diff FILE [--cdb FILE] [--json]"

static json_t *analysis_json(const struct analysis *a)
{
	json_t *funcs = json_array(), *findings = json_array(), *to_prove = json_array();

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
	for (size_t i = 0; i < a->ncallers_to_prove; i++)
		json_array_append_new(to_prove, json_string(a->callers_to_prove[i].name));
	/* unsafe: an error opus build cannot lift; callers_to_prove: the
	 * functions whose callers it looks for in the binary. */
	return json_pack("{s:o, s:o, s:b, s:o}", "functions", funcs, "findings", findings, "unsafe",
			 analysis_has_error_beyond_proof(a), "callers_to_prove", to_prove);
}

int cmd_analyze(int argc, char **argv)
{
	struct analyze_opts o = {0};
	struct analysis a;
	bool json = false;
	int status;
	const struct cli_opt opts[] = {
	    CLI_STRING("source", 's', &o.source),
	    CLI_STRING("diff", 'd', &o.diff),
	    CLI_STRING("cdb", 'c', &o.cdb),
	    CLI_JSON(&json),
	    CLI_END,
	};

	if (cli_parse(argc, argv, opts, "analyze", USAGE, &status))
		return status;
	if (optind != argc || !o.source || !o.diff)
		return cli_usage(USAGE);
	if ((status = opus_analyze(&o, &a)) == -ENODATA) {
		fprintf(stderr, "opus analyze: %s\n", opus_errmsg());
		return CLI_NOTHING_TO_APPLY;
	}
	if (status)
		return cli_fail("analyze");
	if (a.reused)
		fprintf(stderr,
			"opus analyze: reused the analysis of %s: same diff, and the files "
			"it read are unchanged\n",
			o.diff);
	if (json)
		cli_print_json(analysis_json(&a));
	else
		analysis_print(&a, stdout);
	status = analysis_has_error(&a) ? 3 : 0;
	analysis_free(&a);
	return status;
}
