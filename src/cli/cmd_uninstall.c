#include "cli.h"
#include "options.h"
#include "cli_fleet.h"
#include "patchfile/store.h"
#include "util/err.h"

#include <getopt.h>
#include <stdio.h>

#define USAGE "opus uninstall PATCH-ID [--revert] [--store DIR] [--timeout SEC] [--stop-world]"

int cmd_uninstall(int argc, char **argv)
{
	struct fleet_opts fo = {.live.timeout_s = 5, .live.background = true};
	const char *store = NULL, *id;
	struct fleet_summary s;
	struct cli_fleet out;
	bool revert = false;
	int status;
	const struct cli_opt opts[] = {
	    CLI_FLAG("revert", 'r', &revert),
	    CLI_STORE(&store),
	    CLI_TIMEOUT(&fo.live.timeout_s),
	    CLI_STOP_WORLD(&fo.live.stop_world), /* for --revert */
	    CLI_END,
	};

	if (cli_parse(argc, argv, opts, "uninstall", USAGE, &status))
		return status;
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
