/* Activeness check: report a frame of any stopped thread inside a guarded
 * range. A thread on its own stack with no word there that could be a
 * return address into a range is clear at once; the others are unwound
 * with DWARF CFI (libdw; no frame pointers needed). */
#ifndef OPUS_LIVE_UNWIND_H
#define OPUS_LIVE_UNWIND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ptrace.h"
#include "scan.h"

struct unwinder;

/* Reads the process's modules, CFI and maps; call before stopping the
 * threads. mem_fd is borrowed and must outlive the unwinder; restorer is
 * where the process's signal frames return (libc's __restore_rt). */
int unwind_open(pid_t pid, int mem_fd, uint64_t restorer, struct unwinder **out);
void unwind_close(struct unwinder *u);

/* 0 if no stopped thread has a frame in rs; -EBUSY with the thread and
 * function named otherwise. */
int unwind_check(struct unwinder *u, const struct threads *ts, const struct range_set *rs);

#endif
