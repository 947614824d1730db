#include "cli.h"
#include "options.h"
#include "cli_fleet.h"
#include "live/live.h"
#include "patchfile/opatch.h"
#include "patchfile/trust.h"
#include "util/clock.h"
#include "util/err.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#define USAGE                                                                                      \
	"opus apply PID PATCH [--stop-world] [--timeout SEC] [--max-pause MS] [--scan-memory] "    \
	"[--trusted DIR] [--json]\n"                                                               \
	"       opus apply --all PATCH [--dry-run] [--jobs N] [--stop-world] [--timeout SEC] "     \
	"[--max-pause MS] "                                                                        \
	"[--scan-memory] "                                                                         \
	"[--trusted DIR] "                                                                         \
	"[--json]"

/* Every phase, in the order they run; they add up to total_ms. */
json_t *cli_stats_json(const struct live_stats *st)
{
	const struct {
		const char *name;
		uint64_t ns;
	} phases[] = {
	    {"lock_us", st->lock_ns},	      {"procfs_us", st->procfs_ns},
	    {"registry_us", st->registry_ns}, {"linkmap_us", st->linkmap_ns},
	    {"gadgets_us", st->gadgets_ns},   {"check_us", st->check_ns},
	    {"resolve_us", st->resolve_ns},   {"map_us", st->map_ns},
	    {"link_us", st->link_ns},	      {"cfi_us", st->cfi_ns},
	    {"retry_us", st->retry_ns},	      {"seize_us", st->seize_ns},
	    {"stop_us", st->stop_ns},	      {"unwind_us", st->unwind_ns},
	    {"scan_us", st->scan_ns},	      {"write_us", st->write_ns},
	    {"resume_us", st->resume_ns},     {"transition_us", st->transition_ns},
	    {"close_us", st->close_ns},
	};
	json_t *j = json_object();

	for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++)
		json_object_set_new(j, phases[i].name, json_real((double)phases[i].ns / 1e3));
	return json_pack(
	    "{s:s, s:s, s:i, s:b, s:i, s:i, s:i, s:b, s:f, s:I, s:i, s:i, s:f, s:f, s:f, s:f, s:o}",
	    "mode", st->per_thread ? "per-thread" : "stop-world", "stop_world_why",
	    st->stop_world_why, "switched_late", (int)st->switched_late, "unmapped_later",
	    (int)st->unmapped_later, "attempts", (int)st->attempts, "exits_caught",
	    (int)st->exits_caught, "threads", (int)st->threads, "realtime", (int)st->realtime,
	    "background_ms", (double)st->background_ns / 1e6, "scanned_bytes",
	    (json_int_t)st->scan_bytes, "dead_stacks_skipped", (int)st->dead_stacks,
	    "handlers_asked", (int)st->handlers_asked, "pause_us", (double)st->pause_ns / 1e3,
	    "longest_hold_us", (double)st->longest_hold_ns / 1e3, "prepare_ms",
	    (double)st->prepare_ns / 1e6, "total_ms", (double)st->total_ns / 1e6, "phases_us", j);
}

void cli_print_pause_notes(const struct live_stats *st)
{
	if (st->exits_caught)
		printf("  %u busy thread(s) caught as they left the replaced code\n",
		       st->exits_caught);
	/* The process switches stacks (or --scan-memory), or a revert looked
	 * for pointers into the patch: its memory was read in the pause,
	 * which grows with the heap. */
	if (st->scan_bytes)
		printf("  %.1f MiB of memory scanned (for suspended stacks; on a revert, for "
		       "pointers into the patch) in %.1f ms of the pause\n",
		       (double)st->scan_bytes / (1 << 20), (double)st->scan_ns / 1e6);
}

/* Which way the patch went in. */
static void print_mode(const struct live_stats *st)
{
	if (!st->per_thread)
		printf("  stop-world: %s\n", st->stop_world_why);
	else if (st->switched_late)
		printf("  per-thread: %u thread(s) inside the replaced code kept the old code "
		       "until they left it, the last %.1f ms after the stop\n",
		       st->switched_late, (double)st->transition_ns / 1e6);
	else if (st->attempts > 1 && st->stop_world_why[0])
		printf("  per-thread, but a thread inside could not be listed (%s): every thread "
		       "was stopped until none was inside\n",
		       st->stop_world_why);
	else
		printf("  per-thread: no thread was inside the replaced code\n");
}

static int apply_one(pid_t pid, const struct opatch *p, const struct live_opts *lo, bool json,
		     uint64_t parse_ns)
{
	struct live_stats st;

	if (live_apply(pid, p, lo, &st))
		return cli_fail("apply");
	if (json) {
		json_t *j = json_pack("{s:s, s:i, s:i}", "patch", p->id, "pid", (int)pid,
				      "functions", (int)p->nfuncs);

		json_t *stats = cli_stats_json(&st);

		json_object_set_new(json_object_get(stats, "phases_us"), "parse_us",
				    json_real((double)parse_ns / 1e3));
		cli_add_process_times(stats);
		json_object_set_new(j, "stats", stats);
		cli_print_json(j);
	} else {
		printf("applied %s to process %d: %zu function(s) at 0x%" PRIx64
		       ", %u thread(s) paused %.0f us (%u attempt(s))\n",
		       p->id, (int)pid, p->nfuncs, st.base, st.threads, (double)st.pause_ns / 1e3,
		       st.attempts);
		cli_print_pause_notes(&st);
		print_mode(&st);
	}
	return 0;
}

static int apply_all(const struct opatch *p, struct fleet_opts *fo, bool json)
{
	struct fleet_summary s;
	struct cli_fleet out;

	cli_fleet_init(&out, json);
	fo->report = cli_fleet_report;
	fo->ctx = &out;
	if (!json)
		printf("%s %s: every process that maps %s\n", fo->dry_run ? "checking" : "applying",
		       p->id, p->target_name);
	if (fleet_apply(p, fo, &s)) {
		json_decref(out.procs);
		return cli_fail("apply");
	}
	return cli_fleet_finish(&out, p->id, &s);
}

int cmd_apply(int argc, char **argv)
{
	struct fleet_opts fo = {.live.timeout_s = 5, .live.background = true};
	struct opatch p;
	uint64_t parse_start, parse_ns;
	bool json = false, all = false, per_thread = false;
	const char *trusted = NULL;
	pid_t pid = 0;
	int ret, status;
	const struct cli_opt opts[] = {
	    CLI_FLAG("all", 'a', &all),
	    CLI_FLAG("dry-run", 'n', &fo.dry_run),
	    CLI_JOBS(&fo.jobs),
	    CLI_TIMEOUT(&fo.live.timeout_s),
	    CLI_MAX_PAUSE(&fo.live.max_pause_ms),
	    CLI_TRUSTED(&trusted),
	    CLI_JSON(&json),
	    CLI_FLAG("scan-memory", 'S', &fo.live.scan_memory),
	    CLI_FLAG("per-thread", 'P', &per_thread),
	    CLI_STOP_WORLD(&fo.live.stop_world),
	    CLI_END,
	};

	if (cli_parse(argc, argv, opts, "apply", USAGE, &status))
		return status;
	live_exits_when_done();
	if (argc - optind != (all ? 1 : 2) || (fo.dry_run && !all) ||
	    (per_thread && fo.live.stop_world))
		return cli_usage(USAGE);
	if (!all && cli_parse_pid(argv[optind], &pid))
		return cli_fail("apply");
	parse_start = opus_now_ns();
	if (optrust_read(argv[argc - 1], trusted, &p))
		return cli_fail("apply");
	parse_ns = opus_now_ns() - parse_start;
	ret = all ? apply_all(&p, &fo, json) : apply_one(pid, &p, &fo.live, json, parse_ns);
	opatch_free(&p);
	return ret;
}
