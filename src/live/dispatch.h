/* The dispatcher of a per-thread transition (issue 15). While threads
 * switch one at a time, a replaced function's entry leads to its
 * dispatcher, which sends each caller on by its thread pointer: a thread
 * not yet switched to the patch's copy of the old code, every other to the
 * new code. The threads not yet switched are listed in a table of the
 * patch's mapping by thread pointer (%fs:0: in the x86-64 TLS ABI the
 * thread control block starts with a pointer to itself, so no FSGSBASE is
 * needed), the list ended by 0; switching a thread writes
 * DISPATCH_SWITCHED over its slot, one aligned 8-byte word. A thread the
 * table does not list, such as one created during the transition, runs
 * the new code.
 *
 * The stub is entered by a jump at the function's entry, where nothing
 * below the stack pointer is live and the flags are not, and leaves every
 * register but the flags as it found them (rax too: a variadic call
 * passes the count of vector registers in al). It holds every address it
 * needs, so it runs wherever it is written. */
#ifndef OPUS_LIVE_DISPATCH_H
#define OPUS_LIVE_DISPATCH_H

#include <stdint.h>

#define DISPATCH_STUB_SIZE  80
#define DISPATCH_SWITCHED   1
#define DISPATCH_TABLE_SIZE 4096 /* one page of the mapping's data */

/* The dispatcher for one function into out (int3 after its code). */
void dispatch_stub(uint8_t out[DISPATCH_STUB_SIZE], uint64_t table, uint64_t new_addr,
		   uint64_t old_addr);

#endif
