/* Restartable sequences (rseq(2)): glibc registers an area for every
 * thread since 2.35, and a program (tcmalloc's per-CPU caches, liburcu,
 * LTTng) may run critical sections that must not finish once the thread
 * has been preempted in them. The kernel sends such a thread to the
 * section's abort handler as it next returns to its code.
 *
 * A thread opus runs syscalls in returns first to opus's gadget, where the
 * kernel finds no section and forgets the one the thread was in (it
 * clears rseq_cs): given its own registers back, the thread committed a
 * section it had been held in while the other threads ran. Before the
 * thread runs anything of opus's, opus does what the kernel would have
 * done at its return: its registers go on at the abort handler (the
 * kernel then clears rseq_cs itself, finding the thread outside). */
#ifndef OPUS_LIVE_RSEQ_H
#define OPUS_LIVE_RSEQ_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/user.h>

/* If the stopped thread tid, whose registers are regs, is inside a
 * critical section, set regs' pc to the section's abort handler; true if
 * it did. Nothing is written to the process. A section whose descriptor
 * the kernel would refuse (it kills the thread there) is left to it. */
bool rseq_abort_section(pid_t tid, int mem_fd, struct user_regs_struct *regs);

#endif
