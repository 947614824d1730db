#include "fault.h"
#include "err.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Points passed so far: the one piece of process-wide state, and only
 * when the test hook is on. */
static _Thread_local unsigned passed;

int opus_fault(const char *point)
{
	const char *at = getenv("OPUS_FAULT_AT"), *action, *list = getenv("OPUS_FAULT_LIST");

	if (!at && !list)
		return 0;
	passed++;
	if (list)
		fprintf(stderr, "opus fault point %u: %s\n", passed, point);
	if (!at || strtoul(at, NULL, 10) != passed)
		return 0;
	action = getenv("OPUS_FAULT_ACTION");
	if (action && !strcmp(action, "kill"))
		raise(SIGKILL);
	return opus_err(-EIO, "injected fault %u (after %s)", passed, point);
}
