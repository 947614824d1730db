#include "cli.h"
#include "options.h"
#include "live/live.h"
#include "patchfile/opatch.h"
#include "patchfile/trust.h"
#include "util/file.h"
#include "util/err.h"
#include "util/hex.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USAGE "opus inspect PATCH [--json]"

static const char *sym_kind(enum opatch_sym_kind k)
{
	static const char *const names[] = {"section", "defined", "target", "extern"};

	return names[k];
}

/* How apply may move the threads over: the build's judgement. */
static const char *transition_of(const struct opatch *p)
{
	return !p->stop_world ? "unjudged" : *p->stop_world ? "stop-world" : "per-thread";
}

static json_t *patch_json(const struct opatch *p, const char *build_id)
{
	json_t *funcs = json_array(), *externs = json_array();

	for (size_t i = 0; i < p->nfuncs; i++)
		json_array_append_new(
		    funcs, json_pack("{s:s, s:I, s:I, s:b, s:b}", "name", p->funcs[i].name,
				     "old_addr", (json_int_t)p->funcs[i].old_addr, "old_size",
				     (json_int_t)p->funcs[i].old_size, "cold", p->funcs[i].cold,
				     "old_copy", p->funcs[i].old_sym >= 0));
	for (size_t i = 0; i < p->nsyms; i++)
		if (p->syms[i].kind == OPATCH_SYM_EXTERN)
			json_array_append_new(externs, json_string(p->syms[i].name));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:b}", "id", p->id,
			 "description", p->description ? p->description : "", "target",
			 p->target_name, "build_id", build_id, "diff_sha256",
			 p->diff_sha256 ? p->diff_sha256 : "", "functions", funcs, "externs",
			 externs, "findings", p->findings ? p->findings : "", "transition",
			 transition_of(p), "stop_world", p->stop_world ? p->stop_world : "",
			 "code_pointers", live_code_pointers(p));
}

static void print_text(const struct opatch *p, const char *build_id)
{
	printf("patch       %s\ndescription %s\ntarget      %s\nbuild-id    %s\n", p->id,
	       p->description ? p->description : "", p->target_name, build_id);
	printf("functions:\n");
	for (size_t i = 0; i < p->nfuncs; i++)
		printf("  %-30s 0x%llx %llu bytes%s%s\n", p->funcs[i].name,
		       (unsigned long long)p->funcs[i].old_addr,
		       (unsigned long long)p->funcs[i].old_size,
		       p->funcs[i].cold ? " (cold part)" : "",
		       p->funcs[i].old_sym >= 0 ? ", old code copied" : "");
	printf("sections:\n");
	for (size_t i = 0; i < p->nsections; i++)
		printf("  %-30s %llu bytes, %zu relocations\n", p->sections[i].name,
		       (unsigned long long)p->sections[i].size, p->sections[i].nrelas);
	printf("symbols resolved at apply time:\n");
	for (size_t i = 0; i < p->nsyms; i++)
		if (p->syms[i].kind == OPATCH_SYM_EXTERN || p->syms[i].kind == OPATCH_SYM_TARGET)
			printf("  %-30s %s\n", p->syms[i].name, sym_kind(p->syms[i].kind));
	if (p->findings && *p->findings)
		printf("findings:\n%s", p->findings);
	printf("transition  %s\n", transition_of(p));
	for (const char *at = p->stop_world; at && *at; at += strcspn(at, "\n") + 1)
		printf("  %.*s\n", (int)strcspn(at, "\n"), at);
	printf("code-pointers %s\n",
	       live_code_pointers(p) ? "yes: a function of its own is taken at its address, and "
				       "a revert asks the kernel for each caught signal's handler"
				     : "no: its functions are only called and jumped to");
}

/* Who signed the file and whether this machine's trust policy accepts it. */
static void describe_signature(const char *path, char *out, size_t size)
{
	struct optrailer info;
	char *data;
	size_t len;

	if (opus_read_file(path, &data, &len)) {
		snprintf(out, size, "unreadable");
		return;
	}
	if (optrailer_split(path, data, len, &info))
		snprintf(out, size, "%s", opus_errmsg());
	else if (!info.is_signed)
		snprintf(out, size, "none");
	else if (optrust_check(path, data, &info, NULL))
		snprintf(out, size, "key %s, NOT accepted: %s", info.key_id, opus_errmsg());
	else
		snprintf(out, size, "key %s (%s)", info.key_id,
			 access(optrust_dir(NULL), F_OK) ? "no trusted keys configured here"
							 : "valid, trusted here");
	free(data);
}

int cmd_inspect(int argc, char **argv)
{
	char build_id[2 * OPUS_BUILD_ID_MAX + 1], sig[1024];
	struct opatch p;
	bool json = false;
	int status;
	const struct cli_opt opts[] = {
	    CLI_JSON(&json),
	    CLI_END,
	};

	if (cli_parse(argc, argv, opts, "inspect", USAGE, &status))
		return status;
	if (argc - optind != 1)
		return cli_usage(USAGE);
	if (opatch_read(argv[optind], &p))
		return cli_fail("inspect");
	opus_hex_encode(p.build_id, p.build_id_len, build_id);
	describe_signature(argv[optind], sig, sizeof(sig));
	if (json) {
		json_t *j = patch_json(&p, build_id);

		json_object_set_new(j, "signature", json_string(sig));
		cli_print_json(j);
	} else {
		print_text(&p, build_id);
		printf("signature   %s\n", sig);
	}
	opatch_free(&p);
	return 0;
}
