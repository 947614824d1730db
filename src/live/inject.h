/* Syscalls run inside a stopped target thread: point it at an existing
 * `syscall` instruction, single-step, restore every register. Restoring
 * orig_rax and rax puts an interrupted blocking call back on its restart
 * path, so read/accept/epoll_wait/futex/nanosleep carry on after detach. */
#ifndef OPUS_LIVE_INJECT_H
#define OPUS_LIVE_INJECT_H

#include <stdint.h>

#include "proc.h"
#include "ptrace.h"

struct injector {
	struct thread *t;
	uint64_t syscall_insn; /* address of a 0f 05 in the target's text */
	int mem_fd;
};

/* Find a syscall instruction in the process's executable mappings. */
int inject_find_syscall(int mem_fd, const struct proc_maps *maps, uint64_t *addr);
/* Run syscall nr with up to six arguments; *ret is the raw return (-errno on error). */
int inject_syscall(struct injector *in, long nr, const uint64_t args[6], long *ret);
/* Copy a string just below the thread's stack pointer (beyond the red zone). */
int inject_push_string(struct injector *in, const char *s, uint64_t *addr);

#endif
