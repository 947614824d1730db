/* Output of the commands that act on many processes (apply --all, revert
 * --all, the daemon): one line or JSON object a process, then a summary. */
#ifndef OPUS_CLI_CLI_FLEET_H
#define OPUS_CLI_CLI_FLEET_H

#include <stdbool.h>

#include <jansson.h>

#include "fleet/fleet.h"

struct cli_fleet {
	bool json;
	json_t *procs;
};
void cli_fleet_init(struct cli_fleet *f, bool json);
void cli_fleet_report(const struct fleet_result *r, void *ctx); /* a fleet_report_fn */
/* Prints the summary; the exit status: 1 if any process failed. */
int cli_fleet_finish(struct cli_fleet *f, const char *patch, const struct fleet_summary *s);

#endif
