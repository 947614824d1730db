#include "cli.h"
#include "cli_fleet.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per-process lines of --all runs and the daemon, as text or into JSON. */
void cli_fleet_report(const struct fleet_result *r, void *ctx)
{
	struct cli_fleet *f = ctx;

	if (f->json) {
		json_t *j = json_pack("{s:i, s:s, s:s}", "pid", (int)r->pid, "comm", r->comm,
				      "state", fleet_state_name(r->state));

		if (r->msg[0])
			json_object_set_new(j, "reason", json_string(r->msg));
		if (r->state == FLEET_PATCHED || r->state == FLEET_REVERTED) {
			json_object_set_new(j, "pause_us", json_real((double)r->st.pause_ns / 1e3));
			json_object_set_new(j, "stats", cli_stats_json(&r->st));
		}
		json_array_append_new(f->procs, j);
		return;
	}
	printf("%-16s %7d  %-15s", fleet_state_name(r->state), (int)r->pid, r->comm);
	if (r->state == FLEET_PATCHED || r->state == FLEET_REVERTED)
		printf("  paused %.0f us", (double)r->st.pause_ns / 1e3);
	else if (r->msg[0] && r->state != FLEET_ALREADY)
		printf("  %s", r->msg);
	putchar('\n');
	fflush(stdout);
}

void cli_fleet_init(struct cli_fleet *f, bool json)
{
	f->json = json;
	f->procs = json ? json_array() : NULL;
}

int cli_fleet_finish(struct cli_fleet *f, const char *patch, const struct fleet_summary *s)
{
	static const char *const keys[] = {"patched", "already_patched", "would_patch", "reverted",
					   "gone",    "with_parent",	 "not_checked", "failed"};
	unsigned total = 0;

	for (int i = 0; i <= FLEET_FAILED; i++)
		if (i != FLEET_UNCHECKED)
			total += s->count[i];
	if (f->json) {
		json_t *sum = json_object();

		for (int i = 0; i <= FLEET_FAILED; i++)
			json_object_set_new(sum, keys[i], json_integer(s->count[i]));
		json_object_set_new(sum, "total_ms", json_real((double)s->total_ns / 1e6));
		cli_print_json(json_pack("{s:s, s:o, s:o}", "patch", patch, "processes", f->procs,
					 "summary", sum));
	} else if (!total)
		printf("%s: no process to act on%s\n", patch,
		       s->count[FLEET_UNCHECKED] ? " (some could not be checked, above)" : "");
	else {
		const char *sep = "";

		printf("%s:", patch);
		for (int i = 0; i <= FLEET_FAILED; i++)
			if (s->count[i]) {
				printf("%s %u %s", sep, s->count[i], fleet_state_name(i));
				sep = ",";
			}
		printf(" (%u process(es), %.1f ms)\n", total, (double)s->total_ns / 1e6);
	}
	return s->count[FLEET_FAILED] ? 1 : 0;
}
