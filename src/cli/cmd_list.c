#include "cli.h"
#include "options.h"
#include "fleet/fleet.h"
#include "live/live.h"
#include "patchfile/store.h"
#include "util/hex.h"
#include "util/err.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define USAGE "opus list [PID] [--json]\n       opus list --installed [--store DIR] [--json]"

static json_t *entry_json(const struct reg_entry *e)
{
	json_t *funcs = json_array();

	for (size_t i = 0; i < e->nfuncs; i++)
		if (!e->funcs[i].cold)
			json_array_append_new(funcs, json_string(e->funcs[i].name));
	return json_pack("{s:s, s:i, s:b, s:s, s:s, s:s, s:o}", "id", e->id, "seq", (int)e->seq,
			 "active", e->active, "description", e->description, "target", e->target,
			 "build_id", e->build_id, "functions", funcs);
}

static json_t *registry_json(const struct registry *reg)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < reg->n; i++)
		json_array_append_new(arr, entry_json(&reg->v[i]));
	return arr;
}

static json_t *foreign_json(const struct registry *reg)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < reg->nforeign; i++)
		json_array_append_new(
		    arr, json_pack("{s:I, s:s, s:s}", "address", (json_int_t)reg->foreign[i].start,
				   "name", reg->foreign[i].name, "why", reg->foreign[i].why));
	return arr;
}

/* Mappings named as opus's that opus does not vouch for: said, not hidden. */
static void print_foreign(const struct registry *reg)
{
	for (size_t i = 0; i < reg->nforeign; i++)
		printf("not opus's: 0x%" PRIx64 " %s: %s\n", reg->foreign[i].start,
		       reg->foreign[i].name, reg->foreign[i].why);
}

static void print_registry(const struct registry *reg)
{
	for (size_t i = 0; i < reg->n; i++) {
		const struct reg_entry *e = &reg->v[i];

		printf("%s\t%s (build-id %.16s...)\t%s%s\n", e->id, e->target, e->build_id,
		       e->description,
		       e->active ? "" : "\t[inactive: its jumps were never written]");
		for (size_t f = 0; f < e->nfuncs; f++)
			if (!e->funcs[f].cold)
				printf("  %s 0x%" PRIx64 " -> 0x%" PRIx64 "\n", e->funcs[f].name,
				       e->funcs[f].old_addr, e->funcs[f].new_addr);
	}
}

static int list_one(pid_t pid, bool json)
{
	struct registry reg;

	if (live_list(pid, &reg))
		return cli_fail("list");
	if (json)
		cli_print_json(json_pack("{s:i, s:o, s:o}", "pid", (int)pid, "patches",
					 registry_json(&reg), "not_opus", foreign_json(&reg)));
	else if (!reg.n)
		printf("process %d: no patches applied\n", (int)pid);
	else
		print_registry(&reg);
	if (!json)
		print_foreign(&reg);
	registry_free(&reg);
	return 0;
}

/* Every patched process: one line each with its patch ids, oldest first. */
static int list_all(bool json)
{
	struct fleet_proc *v;
	json_t *arr = json ? json_array() : NULL;
	size_t n;

	if (fleet_list(&v, &n)) {
		json_decref(arr);
		return cli_fail("list");
	}
	for (size_t i = 0; i < n; i++) {
		if (json) {
			json_array_append_new(arr, json_pack("{s:i, s:s, s:o}", "pid",
							     (int)v[i].pid, "comm", v[i].comm,
							     "patches", registry_json(&v[i].reg)));
			continue;
		}
		printf("%7d  %-15s", (int)v[i].pid, v[i].comm);
		for (size_t k = 0; k < v[i].reg.n; k++)
			printf(" %s%s", v[i].reg.v[k].id, v[i].reg.v[k].active ? "" : "(inactive)");
		putchar('\n');
	}
	if (json)
		cli_print_json(json_pack("{s:o}", "processes", arr));
	else if (!n)
		printf("no patched processes\n");
	fleet_list_free(v, n);
	return 0;
}

/* The patch store's content, in install order. */
static int list_installed(const char *store, bool json)
{
	struct opstore_entry *v;
	json_t *arr = json ? json_array() : NULL;
	size_t n;

	store = opstore_dir(store);
	if (opstore_list(store, &v, &n)) {
		json_decref(arr);
		return cli_fail("list");
	}
	for (size_t i = 0; i < n; i++) {
		struct opatch p;
		char hex[2 * OPUS_BUILD_ID_MAX + 1] = "";
		const char *target = "?";
		bool ok = opatch_read(v[i].path, &p) == 0;

		if (ok) {
			opus_hex_encode(p.build_id, p.build_id_len, hex);
			target = p.target_name;
		}
		if (json)
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:b}", "id",
							     v[i].id, "path", v[i].path, "target",
							     target, "build_id", hex, "valid", ok));
		else
			printf("%s\t%s (build-id %.16s...)\t%s\n", v[i].id, target, hex,
			       ok ? v[i].path : opus_errmsg());
		if (ok)
			opatch_free(&p);
	}
	if (json)
		cli_print_json(json_pack("{s:s, s:o}", "store", store, "patches", arr));
	else if (!n)
		printf("no patches installed in %s\n", store);
	free(v);
	return 0;
}

int cmd_list(int argc, char **argv)
{
	const char *store = NULL;
	bool json = false, installed = false;
	pid_t pid;
	int status;
	const struct cli_opt opts[] = {
	    CLI_FLAG("installed", 'i', &installed),
	    CLI_STORE(&store),
	    CLI_JSON(&json),
	    CLI_END,
	};

	if (cli_parse(argc, argv, opts, "list", USAGE, &status))
		return status;
	if (argc - optind > (installed ? 0 : 1))
		return cli_usage(USAGE);
	if (installed)
		return list_installed(store, json);
	if (argc - optind == 0)
		return list_all(json);
	if (cli_parse_pid(argv[optind], &pid))
		return cli_fail("list");
	return list_one(pid, json);
}
