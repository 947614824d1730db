/* New processes as they appear: the kernel's process connector (netlink)
 * reports every fork and exec as it happens; where it is not available
 * (no CAP_NET_ADMIN, a pid namespace that hears nothing), /proc is polled
 * for pids not seen before. */
#ifndef OPUS_FLEET_WATCH_H
#define OPUS_FLEET_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct watch {
	int nl_fd;	  /* -1 when polling */
	unsigned poll_ms; /* polling interval */
	pid_t *known;	  /* polling: the pids of the last scan, sorted */
	size_t nknown;
	uint64_t scanned_ns; /* polling: when /proc was last listed */
	char why_polling[256];
};

/* Netlink unless no_netlink, falling back to polling (why_polling says why). */
int watch_open(struct watch *w, bool no_netlink, unsigned poll_ms);
void watch_close(struct watch *w);

/* Waits up to timeout_ms; appends to *pids (malloc'd, *n entries) each
 * process that was created or ran exec since the last call. */
int watch_wait(struct watch *w, int timeout_ms, pid_t **pids, size_t *n, size_t *cap);

#endif
