#include "fault.h"
#include "err.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Points passed so far, and whether the point named by OPUS_FAULT_AT
 * was: the only process-wide state, and used only when the test hook is
 * on. */
static _Thread_local unsigned passed;
static _Thread_local bool named_seen;

/* Is this the point OPUS_FAULT_AT names: the Nth passed, or the first
 * pass of a point of that name? */
static bool is_chosen(const char *at, const char *point)
{
	char *end;
	unsigned long n = strtoul(at, &end, 10);

	if (end != at && !*end)
		return n == passed;
	if (named_seen || strcmp(at, point))
		return false;
	return named_seen = true;
}

int opus_fault(const char *point)
{
	const char *at = getenv("OPUS_FAULT_AT"), *action, *list = getenv("OPUS_FAULT_LIST");

	if (!at && !list)
		return 0;
	passed++;
	if (list)
		fprintf(stderr, "opus fault point %u: %s\n", passed, point);
	if (!at || !is_chosen(at, point))
		return 0;
	action = getenv("OPUS_FAULT_ACTION");
	if (action && !strcmp(action, "kill"))
		raise(SIGKILL);
	/* opus descheduled right here, as a loaded machine does. */
	if (action && !strncmp(action, "stall:", 6)) {
		unsigned long ms = strtoul(action + 6, NULL, 10);

		nanosleep(&(struct timespec){ms / 1000, ms % 1000 * 1000000L}, NULL);
		return 0;
	}
	return opus_err(-EIO, "injected fault %u (after %s)", passed, point);
}
