#include "cli.h"
#include "options.h"
#include "live/live.h"
#include "util/err.h"

#include <stdio.h>

#define USAGE "opus recover PID [--timeout SEC]"

int cmd_recover(int argc, char **argv)
{
	struct live_opts lo = {.timeout_s = 5, .background = true};
	struct live_recovery rec;
	pid_t pid;
	int status;
	const struct cli_opt opts[] = {
	    CLI_TIMEOUT(&lo.timeout_s),
	    CLI_END,
	};

	if (cli_parse(argc, argv, opts, "recover", USAGE, &status))
		return status;
	live_exits_when_done();
	if (argc - optind != 1)
		return cli_usage(USAGE);
	if (cli_parse_pid(argv[optind], &pid) || live_recover(pid, &lo, &rec))
		return cli_fail("recover");
	if (!rec.dropped && !rec.undone && !rec.fds_closed)
		printf("process %d: nothing to recover (%u complete patch(es))\n", (int)pid,
		       rec.remaining);
	else
		printf("process %d: took out %u unfinished apply(s) (%u with jumps undone), closed "
		       "%u stray descriptor(s); %u complete patch(es) stay\n",
		       (int)pid, rec.dropped + rec.undone, rec.undone, rec.fds_closed,
		       rec.remaining);
	if (rec.switching_left)
		printf("process %d: patch %s is switching threads one at a time: %u thread(s) "
		       "keep the old code until they leave it\n",
		       (int)pid, rec.switching_id, rec.switching_left);
	return 0;
}
