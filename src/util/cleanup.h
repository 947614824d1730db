/* What an interrupted opus leaves behind is nothing: on SIGINT, SIGTERM or
 * SIGHUP, the children it waits for (compilers, the analysis) are killed,
 * the scratch directory registered is removed, and opus dies of the same
 * signal. Only async-signal-safe calls run in the handler. */
#ifndef OPUS_UTIL_CLEANUP_H
#define OPUS_UTIL_CLEANUP_H

#include <sys/types.h>

/* Remove dir (an absolute path) if opus is interrupted; NULL forgets it. */
void opus_cleanup_dir(const char *dir);
/* mkdtemp(3), the directory registered with no moment between. */
char *opus_cleanup_mkdtemp(char *tmpl);
/* fork(2), the child registered with no moment between; it leads its own
 * process group and starts with nothing to clean. */
pid_t opus_cleanup_fork(void);
/* The directory registered, or NULL. */
const char *opus_cleanup_scratch(void);
/* In a forked child: nothing of the parent's is the child's to clean. */
void opus_cleanup_reset(void);
/* Kill pid (a child of ours, leading its own process group: opus_run_start) if opus is interrupted;
 * forget it once reaped. */
void opus_cleanup_child(pid_t pid);
void opus_cleanup_forget_child(pid_t pid);

/* The last step of a command that succeeds (a patch file renamed into
 * place): from here an interrupt waits, and a command that then exits
 * normally leaves its result and says it succeeded, never "killed" with the
 * result written. opus_cleanup_release lets the signals in again, when that
 * step failed. */
void opus_cleanup_hold(void);
void opus_cleanup_release(void);

#endif
