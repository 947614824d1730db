/* Activeness check: report a frame of any stopped thread inside a guarded
 * range. A thread on its own stack with no word there that could be a
 * return address into a range is clear at once; the others are unwound
 * with DWARF CFI (libdw; no frame pointers needed). */
#ifndef OPUS_LIVE_UNWIND_H
#define OPUS_LIVE_UNWIND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proc.h"
#include "ptrace.h"
#include "registry.h"
#include "scan.h"

struct unwinder;

/* Call before stopping the threads. mem_fd and maps (the process's, read
 * before the stop: where the stacks are) are borrowed and must outlive the
 * unwinder; restorer is where the process's signal frames return (libc's
 * __restore_rt). A map read at any time before the stop serves: a thread's
 * own stack does not move, and a stack the map does not show, or shows
 * with another thread pointer, is unwound with DWARF. */
int unwind_open(pid_t pid, int mem_fd, uint64_t restorer, const struct proc_maps *maps,
		struct unwinder **out);
/* Reads the modules' unwind tables (libdwfl), which most stops never need
 * and which cost a millisecond to read and to let go of: call it with the
 * threads running, when unwind_check asked for it. */
int unwind_load_cfi(struct unwinder *u);
void unwind_close(struct unwinder *u);
/* Room for the stacks of nthreads threads, made ready (touched) before a
 * stop so that copying them inside it faults nothing in. */
void unwind_reserve(struct unwinder *u, size_t nthreads);

/* The entries whose jumps lead into the guarded code (the old functions'
 * first bytes; borrowed). A busy thread that would resume inside the
 * first JUMP_SIZE bytes of one, past the first, is named in its exit_site.
 * In code no module describes (a patch's), where
 * DWARF cannot say where a frame ends, the first word past the last return
 * into the guarded code that returns, into other code, right after a
 * direct call to one of them or an indirect call, is taken as where that
 * code returns to (see exit_site). */
void unwind_set_entries(struct unwinder *u, const uint64_t *entries, size_t n);

/* The patches applied to the process, and the one the transaction applies
 * or reverts (NULL: none; both borrowed): a frame in one's code is unwound
 * with the unwind tables its record says it carries. */
void unwind_set_patches(struct unwinder *u, const struct registry *patches,
			const struct reg_entry *own);

/* Where a busy thread leaves the guarded code: the return address of its
 * outermost frame there, and the stack slot that holds it. */
struct exit_site {
	pid_t tid; /* 0: not known */
	uint64_t slot, ret;
	/* The function into whose entry's first bytes, past the first, the
	 * thread would resume (interrupted in its first instructions), or
	 * NULL: a jump written there would be run from its middle. */
	const char *mid_entry;
	/* A function on its stack whose code may jump into an entry's jump
	 * bytes, past the first (addr_range.reenters), or NULL: the thread
	 * would run that jump from its middle as it goes on there. */
	const char *reenters;
};

/* The fast check of unwind_check for one thread, done as soon as it stops
 * (threads_stop_all's on_stop) while others are still on their way; its
 * answer is noted in t for unwind_check in the same stop, which reads
 * nothing of t again. A stopped thread's frames do not change while the
 * others run: only its own calls write return addresses (another thread
 * may write data there, which can only add or take away a word that looks
 * like one). Not where opus itself writes to the stacks before the check
 * (exit stubs put back). regs are t's registers at its stop, or NULL to
 * read them. */
void unwind_check_early(struct unwinder *u, const struct range_set *rs, struct thread *t,
			const struct user_regs_struct *regs);

/* 0 if no stopped thread has a frame in rs; -EBUSY with the thread and
 * function named otherwise; -EAGAIN if a thread needs DWARF unwinding and
 * the tables are not loaded (resume, unwind_load_cfi, stop again). On
 * -EBUSY, exits (if not NULL, one per thread of ts) says where each busy
 * thread leaves the guarded code: tid 0 for a thread with no frame there,
 * slot 0 for one whose frames were not described to the end. */
int unwind_check(struct unwinder *u, const struct threads *ts, const struct range_set *rs,
		 struct exit_site *exits);

/* For a stopped thread whose live frames hold a word into rs (a
 * candidate: scan_dangling's frames_hold), whether a frame keeps it: a
 * register it must keep across calls (rbx, rbp, r12-r15) that DWARF CFI
 * says it saved, or any register of a context a signal interrupted, as
 * each frame's caller will see it; or a word of a frame's own part of the
 * stack (a local, or a stale word: not told apart, so in doubt it counts)
 * that does not return into unwound (the code the stack check unwound:
 * NULL, none). A signal frame's words are not counted (its padding keeps
 * stale ones for good). 0 if none, the stack unwound to its end; -EBUSY
 * naming the register or the word and the function, or if the stack
 * could not be unwound to the end (in doubt); -EAGAIN if the tables are
 * not loaded, as for unwind_check. */
int unwind_kept_pointers(struct unwinder *u, pid_t tid, const struct range_set *rs,
			 const struct range_set *unwound);

#endif
