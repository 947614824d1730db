/* Run a command and wait for it. */
#ifndef OPUS_UTIL_RUN_H
#define OPUS_UTIL_RUN_H

/* Runs argv in cwd (NULL: current) with stdout sent to stderr. Returns 0 when
 * it exits 0, else a negative errno with a message naming the command. */
int opus_run(char *const argv[], const char *cwd);

#endif
