#include "cli.h"
#include "live/live.h"
#include "patchfile/opatch.h"
#include "patchfile/sign.h"
#include "util/clock.h"
#include "util/err.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#define USAGE                                                                                      \
	"opus apply PID PATCH [--timeout SEC] [--scan-memory] [--trusted DIR] [--json]\n"          \
	"       opus apply --all PATCH [--dry-run] [--jobs N] [--timeout SEC] [--scan-memory] "    \
	"[--trusted DIR] "                                                                         \
	"[--json]"

json_t *cli_stats_json(const struct live_stats *st)
{
	json_t *phases = json_pack(
	    "{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "resolve_us", (double)st->resolve_ns / 1e3,
	    "map_us", (double)st->map_ns / 1e3, "link_us", (double)st->link_ns / 1e3, "cfi_us",
	    (double)st->cfi_ns / 1e3, "stop_us", (double)st->stop_ns / 1e3, "unwind_us",
	    (double)st->unwind_ns / 1e3, "write_us", (double)st->write_ns / 1e3, "resume_us",
	    (double)st->resume_ns / 1e3);

	return json_pack("{s:i, s:i, s:f, s:f, s:f, s:o}", "attempts", (int)st->attempts, "threads",
			 (int)st->threads, "pause_us", (double)st->pause_ns / 1e3, "prepare_ms",
			 (double)st->prepare_ns / 1e6, "total_ms", (double)st->total_ns / 1e6,
			 "phases_us", phases);
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

		json_object_set_new(j, "stats", cli_stats_json(&st));
		json_object_set_new(json_object_get(json_object_get(j, "stats"), "phases_us"),
				    "parse_us", json_real((double)parse_ns / 1e3));
		cli_print_json(j);
	} else
		printf("applied %s to process %d: %zu function(s) at 0x%" PRIx64
		       ", %u thread(s) paused %.0f us (%u attempt(s))\n",
		       p->id, (int)pid, p->nfuncs, st.base, st.threads, (double)st.pause_ns / 1e3,
		       st.attempts);
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
	static const struct option opts[] = {
	    {"all", no_argument, NULL, 'a'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"jobs", required_argument, NULL, 'J'},
	    {"timeout", required_argument, NULL, 't'},
	    {"trusted", required_argument, NULL, 'T'},
	    {"json", no_argument, NULL, 'j'},
	    {"scan-memory", no_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct fleet_opts fo = {.live.timeout_s = 5};
	struct opatch p;
	uint64_t parse_start, parse_ns;
	bool json = false, all = false;
	const char *trusted = NULL;
	pid_t pid = 0;
	int c, ret, status;

	while ((c = cli_next_opt(argc, argv, opts, USAGE, &status)) != -1) {
		switch (c) {
		case 'a':
			all = true;
			break;
		case 'n':
			fo.dry_run = true;
			break;
		case 'J':
			if (cli_parse_count("--jobs", optarg, 1024, &fo.jobs))
				return cli_fail("apply");
			break;
		case 't':
			if (cli_parse_timeout(optarg, &fo.live.timeout_s))
				return cli_fail("apply");
			break;
		case 'T':
			trusted = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'S':
			fo.live.scan_memory = true;
			break;
		default:
			return status; /* --help, or a bad option: usage printed */
		}
	}
	if (argc - optind != (all ? 1 : 2) || (fo.dry_run && !all))
		return cli_usage(USAGE);
	if (!all && cli_parse_pid(argv[optind], &pid))
		return cli_fail("apply");
	parse_start = opus_now_ns();
	if (opatch_read_trusted(argv[argc - 1], trusted, &p))
		return cli_fail("apply");
	parse_ns = opus_now_ns() - parse_start;
	ret = all ? apply_all(&p, &fo, json) : apply_one(pid, &p, &fo.live, json, parse_ns);
	opatch_free(&p);
	return ret;
}
