#include "cli.h"
#include "live/live.h"
#include "util/err.h"

#include <getopt.h>
#include <stdio.h>

#define USAGE "opus revert PID [PATCH-ID] [--timeout SEC] [--json]"

json_t *cli_stats_json(const struct live_stats *st);

int cmd_revert(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"timeout", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct live_opts lo = {.timeout_s = 5};
	char id[OPATCH_ID_MAX + 1] = "";
	struct live_stats st;
	bool json = false;
	pid_t pid;
	int c;

	while ((c = getopt_long(argc, argv, "t:jh", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (cli_parse_timeout(optarg, &lo.timeout_s))
				return cli_fail("revert");
			break;
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
	if (argc - optind < 1 || argc - optind > 2)
		return cli_usage(USAGE);
	if (cli_parse_pid(argv[optind], &pid) ||
	    live_revert(pid, argc - optind == 2 ? argv[optind + 1] : NULL, &lo, &st, id))
		return cli_fail("revert");
	if (json) {
		json_t *j = json_pack("{s:s, s:i}", "patch", id, "pid", (int)pid);

		json_object_set_new(j, "stats", cli_stats_json(&st));
		cli_print_json(j);
	} else
		printf("reverted %s from process %d: %u thread(s) paused %.0f us\n", id, (int)pid,
		       st.threads, (double)st.pause_ns / 1e3);
	return 0;
}
