/* One opus at a time per target process, and a journal of what it began
 * there. The lock is a file named after the process's pid and start time
 * (a reused pid is another process), flock()ed while opus acts; the
 * journal, in the same file, holds the nonce of each memfd an apply is
 * about to create, so that after a killed opus the next one takes out what
 * was begun there, and never a mapping the program made itself. */
#ifndef OPUS_LIVE_LOCK_H
#define OPUS_LIVE_LOCK_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#define LOCK_NONCE_LEN 16 /* hex digits */

struct target_lock {
	int fd;
	pid_t pid;
	char path[PATH_MAX];
	char (*nonces)[LOCK_NONCE_LEN + 1]; /* the journal: begun, not finished */
	size_t n;
	size_t len; /* bytes in the file: a shorter state is padded, not truncated */
};

/* Lock process pid, waiting up to timeout_s for another opus to finish;
 * -EBUSY naming it then. */
int target_lock(pid_t pid, double timeout_s, struct target_lock *l);
void target_unlock(struct target_lock *l);

/* A fresh nonce, journaled before its memfd exists. */
int target_journal_begin(struct target_lock *l, char nonce[LOCK_NONCE_LEN + 1]);
/* A revert is taking the memfd of nonce out: journaled until it is gone. */
int target_journal_add(struct target_lock *l, const char *nonce);
/* The memfd of nonce is finished with (recorded, or taken out). */
int target_journal_end(struct target_lock *l, const char *nonce);
bool target_journal_has(const struct target_lock *l, const char *nonce);
/* Every transaction begun is settled (recorded whole, or taken out). */
int target_journal_clear(struct target_lock *l);
/* The journal of pid as it stands, without taking the lock (for list). */
int target_journal_peek(pid_t pid, struct target_lock *l);

/* The directory of the lock files (for messages and tests). */
const char *target_lock_dir(void);

#endif
