/* Conservative scans for return addresses into guarded code: the words of
 * a stack that DWARF could not unwind, and every page of writable memory
 * where a suspended coroutine's stack may be. A word counts when it points
 * into a guarded range just after a call instruction. */
#ifndef OPUS_LIVE_SCAN_H
#define OPUS_LIVE_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ptrace.h"

struct addr_range {
	uint64_t lo, hi;
	const char *name;
	/* Its code may jump into an entry's jump bytes, past the first
	 * (transition_mark_reentries): a thread inside is not listed. */
	bool reenters;
};

/* The ranges sorted by start, for a lookup in O(log n) per word: memory
 * scans test every word of hundreds of megabytes against them. */
struct range_set {
	const struct addr_range **v;
	uint64_t *max_hi; /* the largest end among v[0..i] (ranges may nest) */
	size_t n;
	uint64_t lo, hi; /* the hull: most words fall outside it at once */
};

int range_set_init(struct range_set *rs, const struct addr_range *ranges, size_t n);
void range_set_free(struct range_set *rs);
const struct addr_range *range_set_find(const struct range_set *rs, uint64_t addr);

/* The range words[i] returns into, for the first i >= *i that is a return
 * address (set *i to it), or NULL. With guard (glibc's pointer guard), a
 * program counter that setjmp saved counts too. */
const struct addr_range *scan_words(int mem_fd, const struct range_set *rs, const uint64_t *words,
				    size_t n, const uint64_t *guard, size_t *i);

/* What the instruction that ends just before ret is, decoded exactly (the
 * ModRM byte must say the length): 1 for a direct call (rel32; *target
 * set), 2 for an indirect one (ff /2), 0 for neither. */
int scan_call_before(int mem_fd, uint64_t ret, uint64_t *target);

/* Where suspended stacks are looked for: nowhere; in every private
 * writable mapping but the threads' own stacks (whose live frames DWARF
 * unwound, and whose unused slots keep stale return addresses: nginx's
 * master had one of a function main had called); or there too, from each
 * stack pointer up (a coroutine stack may be a local array of a frame). */
enum scan_scope { SCAN_NONE, SCAN_BESIDE_THREADS, SCAN_ALL };

/* What one scan reads at a time, per worker. */
#define SCAN_CHUNK_BYTES (1u << 20)

/* glibc's thread descriptor (struct pthread) as glibc describes it to
 * debuggers (libthread_db's _thread_db_sizeof_pthread and
 * _thread_db_pthread_tid): its size, and where it keeps the thread's id.
 * size 0: not known (another C library). */
struct pthread_layout {
	uint32_t size, tid;
	/* How far below the thread pointer the static TLS blocks reach: the
	 * largest l_tls_offset of a loaded object; 0 if not known. */
	uint64_t tls_below;
};

/* What a scan needs that costs time to make, made before the stop: the
 * first worker's buffer (touched, so that reading into it inside the stop
 * faults nothing in) and the pagemap. mem_fd is borrowed. With glibc's
 * thread descriptor known, the stack of a thread that has exited, which
 * glibc keeps for the next thread, is known for what it is and not read:
 * its stale frames hold return addresses nothing will resume (memcached's
 * kept its LRU crawler's after the crawler stopped). */
struct scanner {
	pid_t pid;
	int mem_fd, pagemap_fd; /* pagemap -1: every page is read */
	struct pthread_layout pthread;
	uint64_t *buf;
};

int scanner_open(struct scanner *sc, pid_t pid, int mem_fd, const struct pthread_layout *pl);
void scanner_close(struct scanner *sc);

/* What a scan did: how much memory it read, and how many stacks of
 * exited threads it left alone. */
struct scan_tally {
	uint64_t bytes;
	unsigned dead_stacks;
};

/* Every page of the stopped process in scope, skipping pages never
 * touched: 0, or -EBUSY naming the function and where the word is. A large
 * scan is shared with a thread per other CPU opus may run on. -ETIME (no
 * message) if opus_now_ns() passed deadline (0: none) before the end. */
int scan_suspended(const struct scanner *sc, const struct threads *ts, const struct range_set *rs,
		   enum scan_scope scope, uint64_t deadline, struct scan_tally *tally);

/* How much below a stopped thread's stack pointer is live (regs, its
 * registers): the x86-64 ABI's red zone, the 128 bytes in which a
 * function that calls nothing may keep its locals, for a thread stopped
 * in its own code; none for one in a syscall (the wrapper that made it
 * keeps nothing there). */
uint64_t scan_red_zone(const struct user_regs_struct *regs);

/* Before memory in rs is unmapped (a revert): no pointer into it may be
 * left where the program can follow it. Where suspended stacks are looked
 * for (every private writable mapping but the stacks threads run on), any
 * word, plain or demangled; in the stacks threads run on, each thread's
 * static TLS blocks and glibc's descriptor (pl->tls_below); and the
 * stopped threads' registers (in a syscall, those kept across calls and
 * its arguments; in its own code, all, vector registers too). 0, or
 * -EBUSY naming the register (a retry may find it gone), -EADDRINUSE
 * naming where in memory the pointer is. -ETIME as for scan_suspended.
 *
 * A thread's live frames (from its stack pointer up, and its red zone
 * if it is stopped in its own code) are read only for
 * candidates: with frames_hold (one per thread of ts), frames_hold[k]
 * says whether thread k's hold a word into rs that does not return into
 * unwound (the code the stack check has unwound exactly; NULL: none).
 * Unused slots and signal frames keep stale words (nginx's master kept a
 * return address; a signal frame's unwritten padding, the program
 * counter of an earlier signal taken in the patch's code), so a word
 * there says nothing by itself: unwind_kept_pointers tells. */
int scan_dangling(const struct scanner *sc, const struct threads *ts, const struct range_set *rs,
		  const struct range_set *unwound, uint64_t deadline, bool *frames_hold,
		  struct scan_tally *tally);

#endif
