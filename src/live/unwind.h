/* Activeness check: unwind every stopped thread with DWARF CFI (libdw; no
 * frame pointers needed) and report a frame inside any guarded range. */
#ifndef OPUS_LIVE_UNWIND_H
#define OPUS_LIVE_UNWIND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ptrace.h"

struct addr_range {
	uint64_t lo, hi;
	const char *name;
};

struct unwinder;

/* Reads the process's modules and CFI; call before stopping the threads.
 * mem_fd is borrowed and must outlive the unwinder. */
int unwind_open(pid_t pid, int mem_fd, struct unwinder **out);
void unwind_close(struct unwinder *u);

/* 0 if no stopped thread has a frame in ranges; -EBUSY with the thread and
 * function named otherwise. */
int unwind_check(struct unwinder *u, const struct threads *ts, const struct addr_range *ranges,
		 size_t nranges);

/* Suspended stacks (coroutines: makecontext/swapcontext, or hand-made
 * switchers) are on no thread's unwind. A conservative scan of the
 * process's writable memory (the live part of each thread's stack too) for
 * a word that is a return address into ranges, and follows a call
 * instruction. 0, or -EBUSY naming the function and where the word is. */
int unwind_scan_suspended(struct unwinder *u, const struct threads *ts,
			  const struct addr_range *ranges, size_t nranges);

#endif
