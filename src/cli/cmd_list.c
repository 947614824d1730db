#include "cli.h"
#include "live/live.h"
#include "util/err.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#define USAGE "opus list PID [--json]"

static json_t *entry_json(const struct reg_entry *e)
{
	json_t *funcs = json_array();

	for (size_t i = 0; i < e->nfuncs; i++)
		if (!e->funcs[i].cold)
			json_array_append_new(funcs, json_string(e->funcs[i].name));
	return json_pack("{s:s, s:i, s:s, s:s, s:s, s:o}", "id", e->id, "seq", (int)e->seq,
			 "description", e->description, "target", e->target, "build_id",
			 e->build_id, "functions", funcs);
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct registry reg;
	bool json = false;
	pid_t pid;
	int c;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: %s\n", USAGE);
			return 0;
		default:
			return cli_usage(USAGE);
		}
	}
	if (argc - optind != 1)
		return cli_usage(USAGE);
	if (cli_parse_pid(argv[optind], &pid) || live_list(pid, &reg))
		return cli_fail("list");
	if (json) {
		json_t *arr = json_array();

		for (size_t i = 0; i < reg.n; i++)
			json_array_append_new(arr, entry_json(&reg.v[i]));
		cli_print_json(json_pack("{s:i, s:o}", "pid", (int)pid, "patches", arr));
	} else if (!reg.n)
		printf("process %d: no patches applied\n", (int)pid);
	for (size_t i = 0; !json && i < reg.n; i++) {
		const struct reg_entry *e = &reg.v[i];

		printf("%s\t%s (build-id %.16s...)\t%s\n", e->id, e->target, e->build_id,
		       e->description);
		for (size_t f = 0; f < e->nfuncs; f++)
			if (!e->funcs[f].cold)
				printf("  %s 0x%" PRIx64 " -> 0x%" PRIx64 "\n", e->funcs[f].name,
				       e->funcs[f].old_addr, e->funcs[f].new_addr);
	}
	registry_free(&reg);
	return 0;
}
