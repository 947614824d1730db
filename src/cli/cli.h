/* Subcommands: each parses its arguments, calls the library, prints. */
#ifndef OPUS_CLI_CLI_H
#define OPUS_CLI_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

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
int cmd_deb(int argc, char **argv);

/* Shared by the subcommands. */
int cli_fail(const char *cmd); /* prints opus_errmsg(), returns 1 */
/* The exit status of a build or analysis whose diff changes no code this
 * build compiles: not a failure, and not a patch either. */
#define CLI_NOTHING_TO_APPLY 4
int cli_usage(const char *usage);
int cli_parse_pid(const char *s, pid_t *pid);
void cli_print_json(json_t *j); /* prints and frees */
struct live_stats;
json_t *cli_stats_json(const struct live_stats *st);
/* The pause's parts a user may wonder about, a line each (none if none). */
void cli_print_pause_notes(const struct live_stats *st);
/* Adds to stats what opus itself took: "startup_cpu_us", the CPU time from
 * exec to main (loading, relocation), and "main_us", the wall time from main
 * to now. What an outside clock sees beyond them is exec and exit. */
void cli_add_process_times(json_t *stats);

#endif
