#include "cli.h"
#include "options.h"
#include "fleet/daemon.h"
#include "patchfile/store.h"
#include "util/err.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define USAGE                                                                                      \
	"opus daemon [--store DIR] [--trusted DIR] [--no-netlink] [--poll-ms N] [--sweep-ms N]\n"  \
	"                   [--timeout SEC] [--max-pause MS] [--stop-world]"

static volatile sig_atomic_t stop_requested, reload_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void on_hup(int sig)
{
	(void)sig;
	reload_requested = 1;
}

static void log_line(const char *msg, void *ctx)
{
	(void)ctx;
	printf("opus daemon: %s\n", msg);
	fflush(stdout);
}

static void log_result(const struct fleet_result *r, void *ctx)
{
	(void)ctx;
	if (r->state == FLEET_PATCHED && r->since_seen_ns)
		printf("opus daemon: patched %d (%s) with %s: paused %.0f us, %.1f ms after it "
		       "appeared\n",
		       (int)r->pid, r->comm, r->patch, (double)r->st.pause_ns / 1e3,
		       (double)r->since_seen_ns / 1e6);
	else if (r->state == FLEET_PATCHED)
		printf("opus daemon: patched %d (%s) with %s: paused %.0f us\n", (int)r->pid,
		       r->comm, r->patch, (double)r->st.pause_ns / 1e3);
	else
		printf("opus daemon: %s %d (%s) with %s: %s\n", fleet_state_name(r->state),
		       (int)r->pid, r->comm, r->patch, r->msg);
	fflush(stdout);
}

static void handle(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn; /* no SA_RESTART: a signal wakes the wait */
	sigaction(sig, &sa, NULL);
}

int cmd_daemon(int argc, char **argv)
{
	struct daemon_opts o = {.poll_ms = 50, .sweep_ms = 5000, .live.timeout_s = 1};
	bool per_thread = false;
	int status;
	const struct cli_opt opts[] = {
	    CLI_STORE(&o.store),
	    CLI_TRUSTED(&o.trusted),
	    CLI_FLAG("no-netlink", 'P', &o.no_netlink),
	    CLI_COUNT("poll-ms", 'p', &o.poll_ms, 60000),
	    CLI_COUNT("sweep-ms", 'w', &o.sweep_ms, 3600000),
	    CLI_TIMEOUT(&o.live.timeout_s),
	    CLI_MAX_PAUSE(&o.live.max_pause_ms),
	    CLI_FLAG("per-thread", 'R', &per_thread),
	    CLI_STOP_WORLD(&o.live.stop_world),
	    CLI_END,
	};

	if (cli_parse(argc, argv, opts, "daemon", USAGE, &status))
		return status;
	if (argc != optind || (per_thread && o.live.stop_world))
		return cli_usage(USAGE);
	o.store = opstore_dir(o.store);
	o.report = log_result;
	o.log = log_line;
	o.stop = &stop_requested;
	o.reload = &reload_requested;
	handle(SIGTERM, on_stop);
	handle(SIGINT, on_stop);
	handle(SIGHUP, on_hup);
	if (daemon_run(&o))
		return cli_fail("daemon");
	log_line("stopped", NULL);
	return 0;
}
