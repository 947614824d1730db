#include "cli.h"
#include "options.h"
#include "cli_fleet.h"
#include "live/live.h"
#include "util/err.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#define USAGE                                                                                      \
	"opus revert PID [PATCH-ID] [--stop-world] [--timeout SEC] [--max-pause MS] "              \
	"[--scan-memory] [--json]\n"                                                               \
	"       opus revert --all PATCH-ID [--jobs N] [--stop-world] [--timeout SEC] "             \
	"[--max-pause MS] [--scan-memory] [--json]"

static int revert_one(pid_t pid, const char *want, const struct live_opts *lo, bool json)
{
	char id[OPATCH_ID_MAX + 1] = "";
	struct live_stats st;

	if (live_revert(pid, want, lo, &st, id))
		return cli_fail("revert");
	if (json) {
		json_t *j = json_pack("{s:s, s:i}", "patch", id, "pid", (int)pid);

		json_object_set_new(j, "stats", cli_stats_json(&st));
		cli_print_json(j);
	} else {
		printf("reverted %s from process %d: %u thread(s) paused %.0f us\n", id, (int)pid,
		       st.threads, (double)st.pause_ns / 1e3);
		cli_print_pause_notes(&st);
		if (!st.per_thread)
			printf("  stop-world: %s\n", st.stop_world_why);
		else if (st.unmapped_later)
			printf(
			    "  per-thread: the entries went back first; the code, which something "
			    "still pointed into, was unmapped in a later stop\n");
		else if (st.switched_late)
			printf(
			    "  per-thread: %u thread(s) inside the patch's code kept it until they "
			    "left it, the last %.1f ms after the first stop\n",
			    st.switched_late, (double)st.transition_ns / 1e6);
		else
			printf("  per-thread: no thread was inside the patch's code\n");
	}
	return 0;
}

static int revert_all(const char *id, struct fleet_opts *fo, bool json)
{
	struct fleet_summary s;
	struct cli_fleet out;

	cli_fleet_init(&out, json);
	fo->report = cli_fleet_report;
	fo->ctx = &out;
	if (fleet_revert(id, fo, &s)) {
		json_decref(out.procs);
		return cli_fail("revert");
	}
	if (!s.count[FLEET_REVERTED] && !s.count[FLEET_FAILED] && !s.count[FLEET_GONE]) {
		json_decref(out.procs);
		opus_err(-ENOENT, "no process has patch %s applied", id);
		return cli_fail("revert");
	}
	return cli_fleet_finish(&out, id, &s);
}

int cmd_revert(int argc, char **argv)
{
	struct fleet_opts fo = {.live.timeout_s = 5, .live.background = true};
	bool json = false, all = false, per_thread = false;
	pid_t pid;
	int args, status;
	const struct cli_opt opts[] = {
	    CLI_FLAG("all", 'a', &all),
	    CLI_JOBS(&fo.jobs),
	    CLI_TIMEOUT(&fo.live.timeout_s),
	    CLI_MAX_PAUSE(&fo.live.max_pause_ms),
	    CLI_JSON(&json),
	    CLI_FLAG("scan-memory", 'S', &fo.live.scan_memory),
	    CLI_FLAG("per-thread", 'P', &per_thread),
	    CLI_STOP_WORLD(&fo.live.stop_world),
	    CLI_END,
	};

	if (cli_parse(argc, argv, opts, "revert", USAGE, &status))
		return status;
	live_exits_when_done();
	args = argc - optind;
	if (per_thread && fo.live.stop_world)
		return cli_usage(USAGE);
	if (all)
		return args == 1 ? revert_all(argv[optind], &fo, json) : cli_usage(USAGE);
	if (args < 1 || args > 2)
		return cli_usage(USAGE);
	if (cli_parse_pid(argv[optind], &pid))
		return cli_fail("revert");
	return revert_one(pid, args == 2 ? argv[optind + 1] : NULL, &fo.live, json);
}
