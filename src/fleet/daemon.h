/* opus daemon: keeps every process patched with the patches of the store,
 * including processes started later. At start and whenever the store
 * changes it applies each installed patch to every process that maps its
 * object (fleet.h); then it watches new processes (watch.h) and patches
 * each as soon as it maps a patched object. */
#ifndef OPUS_FLEET_DAEMON_H
#define OPUS_FLEET_DAEMON_H

#include <signal.h>
#include <stdbool.h>

#include "fleet.h"

struct daemon_opts {
	const char *store;   /* the patch store directory */
	const char *trusted; /* trusted keys (patchfile/sign.h); NULL: the default */
	bool no_netlink;     /* poll /proc even where netlink works */
	unsigned poll_ms;    /* polling interval for new processes */
	unsigned sweep_ms;   /* full sweep of every process (late dlopen, missed events) */
	struct live_opts live;
	fleet_report_fn report; /* every process patched, or failed for good */
	void (*log)(const char *msg, void *ctx);
	void *ctx;
	volatile sig_atomic_t *stop;   /* set by a signal handler: return */
	volatile sig_atomic_t *reload; /* set by a signal handler: reread the store */
};

/* Runs until *stop; 0 then, -errno if it cannot watch processes at all. */
int daemon_run(const struct daemon_opts *o);

#endif
