/* Subcommands: each parses its arguments, calls the library, prints. */
#ifndef OPUS_CLI_CLI_H
#define OPUS_CLI_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "live/fleet.h"

int cmd_analyze(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_revert(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_recover(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_sign(int argc, char **argv);
int cmd_install(int argc, char **argv);
int cmd_uninstall(int argc, char **argv);
int cmd_daemon(int argc, char **argv);

/* Shared by the subcommands. */
int cli_fail(const char *cmd); /* prints opus_errmsg(), returns 1 */
int cli_usage(const char *usage);
int cli_parse_pid(const char *s, pid_t *pid);
int cli_parse_timeout(const char *s, double *out);
/* getopt_long over opts, the short letters taken from the table. --help
 * prints usage, a bad option prints usage to stderr: both return
 * CLI_OPT_EXIT with *status the command's exit status. */
#define CLI_OPT_EXIT (-2)
int cli_next_opt(int argc, char **argv, const struct option *opts, const char *usage, int *status);
int cli_parse_count(const char *opt, const char *s, unsigned max, unsigned *out);
void cli_print_json(json_t *j); /* prints and frees */
json_t *cli_stats_json(const struct live_stats *st);

/* Output of the commands that act on many processes. */
struct cli_fleet {
	bool json;
	json_t *procs;
};
void cli_fleet_init(struct cli_fleet *f, bool json);
void cli_fleet_report(const struct fleet_result *r, void *ctx); /* a fleet_report_fn */
/* Prints the summary; the exit status: 1 if any process failed. */
int cli_fleet_finish(struct cli_fleet *f, const char *patch, const struct fleet_summary *s);

#endif
