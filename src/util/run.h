/* Run a command and wait for it. */
#ifndef OPUS_UTIL_RUN_H
#define OPUS_UTIL_RUN_H

#include <sys/types.h>

/* Runs argv in cwd (NULL: current) with stdout sent to stderr. Returns 0 when
 * it exits 0, else a negative errno with a message naming the command. */
int opus_run(char *const argv[], const char *cwd);
/* The same in two halves, for running several at once: start returns the
 * child's pid (or a negative errno), wait its result as opus_run's. */
int opus_run_start(char *const argv[], const char *cwd);
int opus_run_wait(int pid, const char *what, const char *cwd);

#endif
