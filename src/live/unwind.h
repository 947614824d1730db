/* Activeness check: unwind every stopped thread with DWARF CFI (libdw; no
 * frame pointers needed) and report a frame inside any guarded range. */
#ifndef OPUS_LIVE_UNWIND_H
#define OPUS_LIVE_UNWIND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ptrace.h"
#include "scan.h"

struct unwinder;

/* Reads the process's modules and CFI; call before stopping the threads.
 * mem_fd is borrowed and must outlive the unwinder. */
int unwind_open(pid_t pid, int mem_fd, struct unwinder **out);
void unwind_close(struct unwinder *u);

/* 0 if no stopped thread has a frame in rs; -EBUSY with the thread and
 * function named otherwise. */
int unwind_check(struct unwinder *u, const struct threads *ts, const struct range_set *rs);

#endif
