/* The back end: apply a patch to a running process, revert it, list what is
 * applied. Each is all or nothing: on failure the process is left exactly as
 * it was, running, with no opus mapping added or removed. */
#ifndef OPUS_LIVE_LIVE_H
#define OPUS_LIVE_LIVE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "patchfile/opatch.h"
#include "registry.h"

struct file_cache;

struct live_opts {
	double timeout_s; /* how long to retry while a function is busy */
	bool scan_memory; /* scan for suspended stacks whatever the imports say */
	/* The longest the process may be stopped (0: no limit): past it,
	 * every thread resumes and nothing is changed (-ETIME). */
	double max_pause_ms;
	/* Stop every thread until none is inside a replaced function, even
	 * where the patch allows a per-thread transition (the default there:
	 * threads found inside switch as they leave it, transition.c). */
	bool stop_world;
	/* opus's own work before it holds a thread at the lowest priority,
	 * on the CPU time the process leaves (boost.h). Not for the daemon,
	 * which answers a process's launch. */
	bool background;
	/* Files read for earlier processes, kept for the next one (one
	 * thread's; see files.h). NULL: opened for this call only. */
	struct file_cache *files;
};

/* Where the time went, from a monotonic clock. The phases before the stop
 * run while the process runs; stop, unwind, write and resume are the pause. */
struct live_stats {
	unsigned attempts;     /* stops until no thread was inside a replaced function */
	unsigned threads;      /* threads stopped in the final stop */
	unsigned exits_caught; /* busy threads caught as they left (exits.h) */
	/* Per-thread (transition.c): how many threads the stop found inside
	 * and let switch as they left, and the wait for the last of them. */
	bool per_thread;
	unsigned switched_late;
	uint64_t transition_ns;
	/* A revert that put the entries back first and unmapped the code in
	 * a later stop (revert.c): something still pointed into it. */
	bool unmapped_later;
	/* Why not per thread; per thread, why a thread found inside could
	 * not be listed (it was waited for as stop-world does). */
	char stop_world_why[192];
	bool realtime;		/* opus ran real-time while it stopped threads (boost.h) */
	uint64_t background_ns; /* opus worked in the background before a hold (boost.h) */
	uint64_t pause_ns;	/* first thread stopped to last resumed, final stop */
	uint64_t prepare_ns;	/* everything before the first stop */
	uint64_t total_ns;
	/* Opening the transaction: the lock, the process's state and maps
	 * (/proc), the registry read and verified, the link map and every
	 * loaded object's symbols, the syscall gadgets found. */
	uint64_t lock_ns, procfs_ns, registry_ns, linkmap_ns, gadgets_ns;
	uint64_t check_ns;    /* unfinished applies, the target, the stack, the old code */
	uint64_t retry_ns;    /* stops that found a thread busy, and the waits after */
	uint64_t seize_ns;    /* attaching to every thread, outside each stop */
	uint64_t close_ns;    /* after the committing stop: unlocking, freeing */
	uint64_t resolve_ns;  /* target object, link map, symbols */
	uint64_t map_ns;      /* memfd and mappings, by injected syscalls */
	uint64_t link_ns;     /* relocation, jump planning, image written */
	uint64_t cfi_ns;      /* reading the modules' unwind tables */
	uint64_t stop_ns;     /* final stop: interrupting and reaping every thread */
	uint64_t unwind_ns;   /* final stop: activeness check of the threads' stacks */
	uint64_t scan_ns;     /* final stop: memory scanned for suspended stacks */
	uint64_t scan_bytes;  /* how much memory that scan read (scan.h) */
	unsigned dead_stacks; /* stacks of exited threads that scan left alone */
	/* Signal handlers asked of the kernel before an unmap (sighand.c). */
	unsigned handlers_asked;
	uint64_t write_ns;  /* final stop: jumps written (or restored) */
	uint64_t resume_ns; /* final stop: detaching every thread */
	/* The longest any one thread was held stopped: the final stop's
	 * pause, or longer for the thread that ran the injected syscalls
	 * (held from its stop until the mapping is in place). */
	uint64_t longest_hold_ns;
	uint64_t base; /* where the patch was mapped */
};

/* -EXDEV: the process's memory is its parent's (a vfork child before its
 * exec), and the parent is the one to patch. */
int live_apply(pid_t pid, const struct opatch *p, const struct live_opts *o, struct live_stats *st);
/* id NULL: the newest patch. Only the newest patch can be reverted. */
int live_revert(pid_t pid, const char *id, const struct live_opts *o, struct live_stats *st,
		char reverted_id[OPATCH_ID_MAX + 1]);
int live_list(pid_t pid, struct registry *out);
/* Whether a revert of p asks the kernel for the process's signal
 * handlers: p's code or data takes the address of a function of its own
 * (layout_makes_code_pointers), which apply records as code-pointers. */
bool live_code_pointers(const struct opatch *p);

/* What opus recover did: applies cut short (opus killed mid-way) taken out,
 * without jumps (dropped) or with some (undone), and stray memfd
 * descriptors closed. Complete patches stay (remaining). */
struct live_recovery {
	unsigned dropped, undone, fds_closed, remaining;
	char last_id[OPATCH_ID_MAX + 1];
	/* A complete patch whose per-thread transition still waits for
	 * switching_left threads to leave its replaced code, if any. */
	char switching_id[OPATCH_ID_MAX + 1];
	unsigned switching_left;
};
int live_recover(pid_t pid, const struct live_opts *o, struct live_recovery *rec);

/* Called by a command after which opus exits (apply, revert, recover; not
 * the daemon). A thread that cannot be let go when opus is done with the
 * process (it still waits for its vfork child, an interrupt pending) is
 * then left to the kernel, which drops that interrupt as opus exits.
 * Otherwise opus waits for the thread's stop to let it go: left traced, it
 * would stay stopped for as long as opus's thread lives. */
void live_exits_when_done(void);

/* The same for the calling thread alone, called by a thread that exits
 * once it is done with its processes (the daemon's and --all's workers):
 * the kernel lets go of a thread's tracees when that thread exits, and
 * drops the interrupt left pending on one it could not let go. */
void live_thread_exits_when_done(void);

#endif
