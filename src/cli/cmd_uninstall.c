#include "cli.h"
#include "patchfile/store.h"
#include "util/err.h"

#include <getopt.h>
#include <stdio.h>

#define USAGE "opus uninstall PATCH-ID [--revert] [--store DIR] [--timeout SEC]"

int cmd_uninstall(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"revert", no_argument, NULL, 'r'},
	    {"store", required_argument, NULL, 's'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct fleet_opts fo = {.live.timeout_s = 5};
	const char *store = NULL, *id;
	struct fleet_summary s;
	struct cli_fleet out;
	bool revert = false;
	int c, status;

	while ((c = cli_next_opt(argc, argv, opts, USAGE, &status)) != -1) {
		switch (c) {
		case 'r':
			revert = true;
			break;
		case 's':
			store = optarg;
			break;
		case 't':
			if (cli_parse_timeout(optarg, &fo.live.timeout_s))
				return cli_fail("uninstall");
			break;
		default:
			return status; /* --help, or a bad option: usage printed */
		}
	}
	if (argc - optind != 1)
		return cli_usage(USAGE);
	id = argv[optind];
	store = opstore_dir(store);
	/* Out of the store first, so that the daemon does not put it back. */
	if (opstore_uninstall(store, id))
		return cli_fail("uninstall");
	printf("uninstalled %s from %s\n", id, store);
	if (!revert)
		return 0;
	cli_fleet_init(&out, false);
	fo.report = cli_fleet_report;
	fo.ctx = &out;
	if (fleet_revert(id, &fo, &s))
		return cli_fail("uninstall");
	return cli_fleet_finish(&out, id, &s);
}
