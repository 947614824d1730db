/* Private to the transaction engine (apply.c, revert.c, recover.c, place.c,
 * txn.c): one opus acting on one process, from taking the lock to letting
 * go. A transaction holds everything read about the process, the syscalls
 * injected into it, the jump sites written and the ranges no thread may be
 * in while they are. */
#ifndef OPUS_LIVE_TXN_H
#define OPUS_LIVE_TXN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "boost.h"
#include "inject.h"
#include "layout.h"
#include "live.h"
#include "lock.h"
#include "proc.h"
#include "ptrace.h"
#include "registry.h"
#include "resolve.h"
#include "scan.h"
#include "seccomp.h"
#include "unwind.h"

#define MIN_ADDR     0x10000ull /* nothing is ever mapped below this */
#define MFD_CLOEXEC_ 1u

struct txn {
	pid_t pid;
	struct target_lock lock;  /* one opus at a time; the journal of memfds begun */
	bool memfd_closed;	  /* the target holds no descriptor of ours */
	struct file_cache *files; /* the caller's, or own_files */
	struct file_cache own_files;
	struct resolver res;  /* names in the process, as its dynamic linker sees them */
	enum scan_scope scan; /* where suspended stacks are looked for */
	int mem_fd;
	int memfd; /* opus's own handle on the target's memfd */
	struct proc_maps maps;
	struct registry reg;
	struct threads ts;
	struct inject_gadgets gadgets;
	struct seccomp_filters filters; /* of the thread that runs injected syscalls */
	uint64_t base, size;
	/* The stub that runs injected syscalls in one resume (inject_batch),
	 * in the process's executable memory; 0: none, one at a time. */
	uint64_t batch_stub;
	bool mapped;
	bool stubs_left; /* an exit stub may still be in use: never unmap (exits.h) */
	/* The mapping is this transaction's own and no stub has been planted
	 * in it yet: none can be armed, and the stops need not read them. */
	bool stubs_unused;
	bool table_writable; /* the dispatchers' table is mapped rw- (transition.c) */
	/* The commit unmaps [base, base + size): no pointer into it may be
	 * left (scan_dangling). */
	bool unmaps;
	size_t sites_written;
	struct reg_entry entry;
	struct addr_range *ranges;
	size_t nranges, ranges_cap;
	struct live_stats *st;
	struct boost boost; /* opus real-time from the first stop (boost.h) */
	uint64_t t0;
	uint64_t resumed; /* when the committing stop ended, 0 before */
	/* A per-thread transition (transition.c), chosen before the stop:
	 * the threads its stop found inside, in table order, and their stubs
	 * (0 once seen used). */
	bool per_thread;
	bool can_list;	    /* apply: the entries lead to the dispatchers */
	char busy_msg[256]; /* what that stop found inside ("thread T is inside F") */
	pid_t *listed;
	uint64_t *switch_stubs;
	size_t nlisted;
	pid_t unlisted; /* the thread that kept this stop from listing, or 0 */
	/* A per-thread revert's first stop may put the entries back while
	 * threads it cannot list are in the patch's code, or a register
	 * points into it: once no entry leads there they leave, and the code
	 * is unmapped in a later stop (revert.c). may: asked; later: done. */
	bool may_unmap_later, unmap_later;
};

/* txn.c: the transaction itself. txn_open locks the process and reads its
 * maps, registry and link map; txn_close lets go of everything (every
 * thread resumed) and records the total time in st. */
int txn_open(struct txn *t, pid_t pid, const struct live_opts *o, struct live_stats *st);
void txn_close(struct txn *t);
/* No thread may be in [lo, hi) when the commit runs. */
int txn_add_range(struct txn *t, uint64_t lo, uint64_t hi, const char *name);
/* The earlier patches' versions of the function whose old entry is at,
 * one at a time: the next from pos (registry entry, function; start at
 * {0, 0}) on, or NULL. The entry of the one returned is t->reg.v[pos[0]]. */
const struct reg_func *txn_next_version(const struct txn *t, uint64_t at, size_t pos[2]);
/* t->entry's exit stubs (exits.h), and no thread in them at the commit. */
struct exits_area txn_exits(const struct txn *t);
int txn_guard_exits(struct txn *t);
/* Those ranges become t->entry's mapped code and its exit stubs: what a
 * revert, or the taking out of an apply, must find no thread in. */
int txn_guard_entry(struct txn *t);
/* A stopped thread to run syscalls in, its seccomp filters asked first. */
int txn_injector(struct txn *t, struct injector *in);
int txn_remote(struct txn *t, long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
	       uint64_t a4, uint64_t a5, long *ret);
/* calls[0..n) in order in the injector in (from txn_injector, which has
 * what was pushed for them), until one fails: in one resume of the thread
 * through t->batch_stub where there is one, one at a time otherwise.
 * rets[i] for each of the *ran calls that ran. */
int txn_remote_calls(struct txn *t, struct injector *in, const struct inject_call *calls, size_t n,
		     long *rets, size_t *ran);
/* Unmap the patch mapped at t->base, if it is. Where code of the patch
 * may have run (t->unmaps), refused while a signal handler leads into it
 * (sighand_check_outside). */
int txn_unmap(struct txn *t);
/* Write the entry's jumps from t->sites_written on; txn_unwrite_sites
 * puts back what was written. */
int txn_write_sites(struct txn *t);
void txn_unwrite_sites(struct txn *t);
/* Put back every site's saved bytes, newest first, so that overlapping
 * sites end up as they began. */
int txn_restore_sites_backwards(struct txn *t);
/* 0 if every site still holds its jump; -EINVAL naming the first that
 * does not. */
int txn_check_jumps(struct txn *t);
/* Stop the world until no thread is in a range, then run commit with every
 * thread stopped; -EBUSY once o->timeout_s has passed. Per thread, a stop
 * that finds threads inside lists them instead (transition_begin), or
 * ends with -EREMCHG, every thread running, if they cannot be listed yet. */
int txn_stop_and_commit(struct txn *t, const struct live_opts *o, int (*commit)(struct txn *t));

/* transition.c: in the committing stop, list the threads exits names as
 * busy (NULL: none) in t->entry.table and plant their switch stubs; then,
 * with the threads running, wait until each has switched and empty the
 * table. -ENOTSUP from begin: not for these threads now (wait for them as
 * a stop-world apply does; t->per_thread cleared if never for this
 * process); -EREMCHG: threads are inside but !t->can_list (the entries do
 * not lead to the dispatchers yet). Either way nothing was changed. */
int transition_begin(struct txn *t, const struct exit_site *exits);
/* dispatched: the entries lead to the dispatchers (an apply), so a listed
 * thread that ends before it switches fails the wait; a revert's first
 * stop put the old entries back, so one that ends has left. */
int transition_wait(struct txn *t, const struct live_opts *o, bool dispatched);
/* Before the stop that lists threads, with them running: which of
 * t->ranges have code that may jump into the bytes of a jump written at an
 * entry, past its first (addr_range.reenters). A thread that stays inside
 * one would run that jump from its middle: begin does not list it. The
 * bytes are not decoded, so a false match only keeps a thread waiting. */
int transition_mark_reentries(struct txn *t);
/* In the same stop, after begin: its stubs and table taken back. */
void transition_abort(struct txn *t);
/* The transitions of the patches applied (a killed apply leaves its own
 * to finish by itself): those finished have their tables emptied; the
 * first that is not is named, with how many threads it still waits for. */
int transition_settle(struct txn *t, const char **unfinished, unsigned *left);

/* sighand.c: 0 if no signal handler the kernel holds for the process
 * leads into the patch [base, base + size); -EADDRINUSE naming the signal
 * otherwise. Run in a stop: no thread can install one meanwhile. */
int sighand_check_outside(struct txn *t);

/* revert.c: the commit of a revert (the jumps put back, the patch
 * unmapped), also what undoes a transition that did not finish. */
int revert_commit(struct txn *t);

/* place.c: a memfd mapped within reach of obj, holding the image laid out
 * in l; then the image, its registry record first, written into it. */
int place_patch(struct txn *t, const struct proc_object *obj, const struct opatch *p,
		const struct layout *l);
int place_write_image(struct txn *t, struct layout *l);
/* The record alone again, after its jumps changed (before any is written). */
int place_rewrite_record(struct txn *t, struct layout *l);

/* recover.c: take out the applies opus left unfinished (killed mid-way).
 * recover_newest returns 1 if it took out the newest entry, 0 if that entry
 * is complete. */
int recover_unfinished(struct txn *t, const struct live_opts *o, struct live_recovery *rec);
int recover_newest(struct txn *t, const struct live_opts *o, struct live_recovery *rec);

#endif
