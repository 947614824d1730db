/* Catching a busy thread as it leaves. When the stack check finds a thread
 * inside a guarded function, and DWARF showed where the return address of
 * its outermost frame there is kept, that return address is sent to a stub
 * in the patch's mapping: push the registers a syscall clobbers, getpid,
 * pop them, jump to the real return address. Only that thread stays traced,
 * under PTRACE_SYSCALL; the stub's getpid stops it at the very moment it
 * leaves, and opus puts it where the return would have put it, stopped.
 * Every other thread runs untraced meanwhile.
 *
 * Should opus die at any point, the stub still returns where the function
 * would have: nothing depends on opus being there. Each stop disarms what
 * is left (a return address still sent to a stub gets its own back) before
 * the stack check, so no patch mapping is unmapped while a stack leads
 * into it; revert and recover guard the stubs' page as they guard code. */
#ifndef OPUS_LIVE_EXITS_H
#define OPUS_LIVE_EXITS_H

#include <stdbool.h>
#include <stdint.h>

#include "layout.h"
#include "ptrace.h"
#include "unwind.h"

#define EXITS_PAGE 4096
/* A mapping's stubs: 4 pages (256 stubs), of which a record with no
 * dispatchers' table names only the first (exits_area). */
#define EXITS_SIZE LAYOUT_EXITS

/* A patch's exit stubs: where, and how many bytes. */
struct exits_area {
	uint64_t at;
	uint64_t size;
};

/* The stubs of a record (exits, and its table or 0; registry.h): up to
 * the table where there is one (older records put it a page after the
 * exits), the first page otherwise. */
struct exits_area exits_of(uint64_t exits, uint64_t table);

/* May a stub of a still be in use (read with the lock held, before a
 * stop: only an opus holding it plants one)? In doubt, yes. */
bool exits_armed(int mem_fd, struct exits_area a);
/* Put back every return address still sent to a stub of a, and retire
 * the stubs (one use each). Every thread must be stopped. */
int exits_disarm(int mem_fd, struct exits_area a);

/* Send x's return address to a stub of a and wait, until deadline (a
 * monotonic time in ns), for its thread to get there. Every thread of ts
 * must be stopped, and x found by the stack check of this stop. Returns 1
 * when the thread was caught: it is stopped where its return leads, with
 * its registers as the return left them, and the other threads of ts are
 * detached and forgotten (seize them again). 0 when it was not (the
 * deadline passed, a group stop, it died): the thread is stopped or
 * forgotten, the others detached and forgotten, and a stop must disarm
 * what is left. -ENOTSUP when the thread cannot be caught this way (its
 * seccomp filters, a shadow stack, no stub left): nothing was changed. */
int exits_catch(struct threads *ts, int mem_fd, struct exits_area a, const struct exit_site *x,
		uint64_t deadline);

/* Per-thread transitions (transition.c): send x's return address to a stub
 * that writes DISPATCH_SWITCHED into table_slot and returns where x's
 * would, making no syscall, so the thread switches itself as it leaves
 * whether or not opus is there. Every thread must be stopped. -ENOTSUP
 * when that cannot be done (a shadow stack, no stub left, the return
 * address moved): nothing was changed. *stub is the stub planted. With
 * reuse (no thread's pc is in the area), a stub that has been returned
 * through or disarmed is used again: a page holds 64. */
int exits_plant_switch(int mem_fd, struct exits_area a, const struct exit_site *x,
		       uint64_t table_slot, bool reuse, uint64_t *stub);
/* A stub that has been returned through (its thread's slot reads switched):
 * no later disarm needs to look at the stack word it was planted in. */
int exits_retire(int mem_fd, uint64_t stub);

#endif
