/* A per-thread transition (issue 15): the stop that writes the entries
 * lists, in the patch's dispatchers' table, each thread found inside a
 * replaced function, and sends the return address of its outermost frame
 * there to a stub that marks it switched (exits.h). The entries lead to
 * the dispatchers (dispatch.h), which keep a listed thread on the old code
 * and send every other, and every thread created later, to the new. So the
 * apply needs no moment at which no thread is inside: a thread inside
 * switches itself as it leaves, with opus there or not.
 *
 * The entries themselves are still written in one stop of every thread:
 * the entry of a function stays its dispatcher's, whose table, once every
 * thread has switched, is emptied (a word of data, written while the
 * threads run), so the dispatcher sends every call on to the new code. */
#include "txn.h"
#include "dispatch.h"
#include "exits.h"
#include "mem.h"
#include "reentry.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/fault.h"
#include "util/file.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <time.h>

#define TABLE_SLOTS (DISPATCH_TABLE_SIZE / 8)
#define POLL_NS	    (1000 * 1000)

/* No thread is listed this transaction, nor at any later stop (each would
 * find the same): why, kept for apply to say. */
__attribute__((format(printf, 2, 3))) static int not_per_thread(struct txn *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->st->stop_world_why, sizeof(t->st->stop_world_why), fmt, ap);
	va_end(ap);
	opus_info("process %d: %s; every thread is stopped at once instead", (int)t->pid,
		  t->st->stop_world_why);
	t->per_thread = false;
	return -ENOTSUP;
}

/* The dispatcher reads %fs:0 in every thread that calls a replaced
 * function: each thread's thread pointer must lead to itself, as the
 * x86-64 TLS ABI has it (a thread that set its own, or none, would fault
 * or be taken for another). */
static int check_thread_pointers(struct txn *t, uint64_t *tp, bool *in_stubs)
{
	*in_stubs = false;
	for (size_t i = 0; i < t->ts.n; i++) {
		struct user_regs_struct r;
		uint64_t self = 0;
		int ret = thread_regs(&t->ts.v[i], &r);

		if (ret)
			return ret;
		tp[i] = r.fs_base;
		*in_stubs |= r.rip - t->entry.exits < txn_exits(t).size;
		if (tp[i] <= DISPATCH_SWITCHED || mem_read(t->mem_fd, tp[i], &self, sizeof(self)) ||
		    self != tp[i])
			return not_per_thread(t,
					      "thread %d's thread pointer does not lead to itself, "
					      "as the dispatchers need",
					      (int)t->ts.v[i].tid);
	}
	return 0;
}

/* A switch stub marks its thread's slot in the table, which is mapped r-x
 * with the code (layout.h) until a stop first lists a thread: it is made
 * writable here, every thread stopped, before any stub is planted. A
 * table already writable (made so by an earlier stop, or mapped rw- by an
 * opus before 2026-12-04) is left as it is. */
static int make_table_writable(struct txn *t)
{
	const struct proc_map *m = proc_map_at(&t->maps, t->entry.table);
	long r = -1;
	int ret;

	if (t->table_writable || (m && m->perms[1] == 'w')) {
		t->table_writable = true;
		return 0;
	}
	ret = txn_remote(t, SYS_mprotect, t->entry.table, DISPATCH_TABLE_SIZE,
			 PROT_READ | PROT_WRITE, 0, 0, 0, &r);
	/* Refused by its seccomp filter, or by the kernel. */
	if (ret == -EPERM || (!ret && r < 0))
		return not_per_thread(t, "the dispatchers' table cannot be made writable: %s",
				      ret ? opus_errmsg() : strerror((int)-r));
	if (ret)
		return ret;
	t->table_writable = true;
	return opus_fault("making the dispatchers' table writable");
}

void transition_abort(struct txn *t)
{
	/* A stub that could not be taken back keeps the mapping (txn_unmap). */
	if (exits_disarm(t->mem_fd, txn_exits(t)))
		t->stubs_left = true;
	mem_write(t->mem_fd, t->entry.table, &(uint64_t){0}, 8);
	t->nlisted = 0;
}

/* Why thread tid cannot be listed at this stop, kept for apply to say if
 * no later stop lists it either (it then waits as stop-world does). */
__attribute__((format(printf, 3, 4))) static int not_listed(struct txn *t, pid_t tid,
							    const char *fmt, ...)
{
	size_t len = (size_t)snprintf(t->st->stop_world_why, sizeof(t->st->stop_world_why),
				      "thread %d: ", (int)tid);
	va_list ap;

	va_start(ap, fmt);
	if (len < sizeof(t->st->stop_world_why))
		vsnprintf(t->st->stop_world_why + len, sizeof(t->st->stop_world_why) - len, fmt,
			  ap);
	va_end(ap);
	t->unlisted = tid;
	opus_info("%s; no per-thread transition at this stop", t->st->stop_world_why);
	return -ENOTSUP;
}

static int list_thread(struct txn *t, const struct exit_site *x, uint64_t tp, bool reuse)
{
	uint64_t slot = t->entry.table + t->nlisted * 8;
	int ret;

	if (!x->slot)
		return not_listed(t, x->tid, "where it leaves the replaced code is not known");
	/* Listed, it would go on in the old code, which may jump back into
	 * the bytes of the jump written over an entry. */
	if (x->reenters)
		return not_listed(
		    t, x->tid,
		    "it is inside %s, whose code may jump back into the first bytes "
		    "of a replaced function, which the jump to its dispatcher overwrites",
		    x->reenters);
	/* Interrupted in the function's first instructions: it would run the
	 * jump written over them from its middle. It will have moved on by a
	 * later stop (the stop-world catch waits for it to leave). */
	if (x->mid_entry)
		return not_listed(t, x->tid,
				  "it was interrupted in the first instructions of %s, which the "
				  "jump to its dispatcher overwrites",
				  x->mid_entry);
	if (t->nlisted + 1 >= TABLE_SLOTS)
		return not_listed(t, x->tid, "the dispatchers' table is full");
	if ((ret = mem_write(t->mem_fd, slot, &tp, 8)) ||
	    (ret = mem_write(t->mem_fd, slot + 8, &(uint64_t){0}, 8)))
		return ret;
	t->stubs_unused = false;
	ret = exits_plant_switch(t->mem_fd, txn_exits(t), x, slot, reuse,
				 &t->switch_stubs[t->nlisted]);
	if (ret == -ENOTSUP)
		return not_listed(t, x->tid,
				  "its return cannot be sent to a switch stub (none left, a shadow "
				  "stack, or the return address moved)");
	if (!ret) {
		t->listed[t->nlisted++] = x->tid;
		opus_info(
		    "thread %d: inside the replaced code, switches as it returns to 0x%" PRIx64,
		    (int)x->tid, x->ret);
		ret = opus_fault("planting a switch stub");
	}
	return ret;
}

static bool code_reenters(const struct txn *t, const struct addr_range *r, const uint64_t *entries,
			  size_t n)
{
	size_t len = r->hi - r->lo;
	uint8_t *c = malloc(len);
	bool hit = !c || mem_read(t->mem_fd, r->lo, c, len) ||
		   reentry_code_may_jump(c, len, r->lo, entries, n);

	free(c);
	return hit;
}

int transition_mark_reentries(struct txn *t)
{
	uint64_t *entries = calloc(t->entry.nsites + 1, sizeof(*entries));

	if (!entries)
		return -ENOMEM;
	for (size_t i = 0; i < t->entry.nsites; i++)
		entries[i] = t->entry.sites[i].addr;
	qsort(entries, t->entry.nsites, sizeof(*entries), opus_cmp_u64);
	for (size_t i = 0; i < t->nranges; i++) {
		t->ranges[i].reenters = code_reenters(t, &t->ranges[i], entries, t->entry.nsites);
		if (t->ranges[i].reenters)
			opus_info("process %d: %s may jump into the first bytes of a replaced "
				  "function: a thread inside it is not listed",
				  (int)t->pid, t->ranges[i].name);
	}
	free(entries);
	return 0;
}

int transition_begin(struct txn *t, const struct exit_site *exits)
{
	uint64_t *tp = calloc(t->ts.n + 1, sizeof(*tp));
	int ret = tp ? 0 : -ENOMEM;
	bool in_stubs = true;

	free(t->listed);
	free(t->switch_stubs);
	t->nlisted = 0;
	t->unlisted = 0;
	t->listed = calloc(t->ts.n + 1, sizeof(*t->listed));
	t->switch_stubs = calloc(t->ts.n + 1, sizeof(*t->switch_stubs));
	if (!ret && (!t->listed || !t->switch_stubs))
		ret = -ENOMEM;
	/* No thread inside: no dispatcher reads a thread pointer. */
	if (!ret && !exits) {
		free(tp);
		return 0;
	}
	if (!ret)
		ret = check_thread_pointers(t, tp, &in_stubs);
	if (!ret && !t->can_list)
		ret = -EREMCHG;
	if (!ret)
		ret = make_table_writable(t);
	/* A stub already returned through may take a new thread, unless a
	 * thread is between its two instructions now. */
	for (size_t i = 0; !ret && i < t->ts.n; i++)
		if (exits[i].tid)
			ret = list_thread(t, &exits[i], tp[i], !in_stubs);
	if (ret && ret != -EREMCHG)
		transition_abort(t);
	free(tp);
	return ret;
}

/* Has every listed thread switched? The stubs of those that have are
 * retired as they are seen. */
static int all_switched(struct txn *t, uint64_t *slots, bool *done)
{
	int ret = mem_read(t->mem_fd, t->entry.table, slots, t->nlisted * 8);
	bool all = true;

	for (size_t k = 0; !ret && k < t->nlisted; k++) {
		if (slots[k] != DISPATCH_SWITCHED)
			all = false;
		else if (t->switch_stubs[k] && !(ret = exits_retire(t->mem_fd, t->switch_stubs[k])))
			t->switch_stubs[k] = 0;
	}
	*done = all;
	return ret;
}

/* Did listed thread k switch? Read again once it is seen dead: it may
 * have switched, then ended, after the slots were read. A dead thread
 * writes nothing more, so this second read is final. */
static int switched_before_it_ended(struct txn *t, size_t k, bool *switched)
{
	uint64_t slot;
	int ret = mem_read(t->mem_fd, t->entry.table + k * 8, &slot, 8);

	*switched = !ret && slot == DISPATCH_SWITCHED;
	return ret;
}

/* A revert's listed thread that has ended has left the patch's code,
 * whether or not it returned through its stub: the stub goes (its stack
 * may be a new thread's now), and its slot says switched. */
static int count_ended_as_left(struct txn *t, size_t k)
{
	int ret = 0;

	opus_info("thread %d: ended, out of the patch's code", (int)t->listed[k]);
	if (t->switch_stubs[k] && !(ret = exits_retire(t->mem_fd, t->switch_stubs[k])))
		t->switch_stubs[k] = 0;
	return ret ? ret
		   : mem_write(t->mem_fd, t->entry.table + k * 8, &(uint64_t){DISPATCH_SWITCHED},
			       8);
}

/* Listed threads that ended without switching. Beside the dispatchers
 * (an apply) one never will: its slot would send any thread that reused
 * its thread pointer to the old code. Otherwise (a revert) it has left. */
static int check_listed_alive(struct txn *t, const uint64_t *slots, bool dispatched)
{
	bool switched;
	int ret;

	for (size_t k = 0; k < t->nlisted; k++) {
		if (slots[k] == DISPATCH_SWITCHED || !proc_thread_dead(t->listed[k]))
			continue;
		if ((ret = switched_before_it_ended(t, k, &switched)))
			return ret;
		if (switched)
			continue;
		if (dispatched)
			return opus_err(-ESRCH,
					"process %d: thread %d ended inside the replaced code "
					"before it could switch",
					(int)t->pid, (int)t->listed[k]);
		if ((ret = count_ended_as_left(t, k)))
			return ret;
	}
	return 0;
}

static int name_late(const struct txn *t, const uint64_t *slots, const struct live_opts *o)
{
	size_t k = 0;

	while (k + 1 < t->nlisted && slots[k] == DISPATCH_SWITCHED)
		k++;
	return opus_err(-EBUSY,
			"process %d: thread %d did not leave the replaced code within %.1f s "
			"(a per-thread transition); at the stop, %s",
			(int)t->pid, (int)t->listed[k], o->timeout_s,
			t->busy_msg[0] ? t->busy_msg : "it was inside");
}

int transition_wait(struct txn *t, const struct live_opts *o, bool dispatched)
{
	uint64_t start = opus_now_ns(), deadline = start + (uint64_t)(o->timeout_s * 1e9);
	uint64_t *slots = calloc(t->nlisted + 1, sizeof(*slots));
	bool done = false;
	int ret = slots ? 0 : -ENOMEM;

	while (!ret && t->nlisted) {
		if ((ret = all_switched(t, slots, &done)) || done)
			break;
		if ((ret = opus_fault("waiting for threads to switch")))
			break;
		if ((ret = check_listed_alive(t, slots, dispatched)))
			break;
		if (opus_now_ns() >= deadline) {
			ret = name_late(t, slots, o);
			break;
		}
		nanosleep(&(struct timespec){0, POLL_NS}, NULL);
	}
	/* Every thread has switched: the table ends at its first slot. */
	if (!ret && t->nlisted)
		ret = mem_write(t->mem_fd, t->entry.table, &(uint64_t){0}, 8);
	t->st->transition_ns = opus_now_ns() - start;
	t->resumed = start + t->st->transition_ns; /* the close counts from here */
	free(slots);
	return ret;
}

/* Patch e's transition, if it had one: how many listed threads have not
 * switched yet. A table whose threads all have is emptied, as the apply
 * that began it would have done had it not been killed. */
static int settle_one(struct txn *t, const struct reg_entry *e, unsigned *left)
{
	uint64_t *slots;
	size_t n = 0;
	int ret;

	*left = 0;
	if (!e->table)
		return 0;
	if (!(slots = malloc(DISPATCH_TABLE_SIZE)))
		return -ENOMEM;
	ret = mem_read(t->mem_fd, e->table, slots, DISPATCH_TABLE_SIZE);
	for (; !ret && n < TABLE_SLOTS && slots[n]; n++)
		*left += slots[n] != DISPATCH_SWITCHED;
	if (!ret && n && !*left)
		ret = mem_write(t->mem_fd, e->table, &(uint64_t){0}, 8);
	if (!ret && n && !*left)
		opus_info("patch %s: every thread has switched; its transition is finished", e->id);
	free(slots);
	return ret;
}

int transition_settle(struct txn *t, const char **unfinished, unsigned *left)
{
	int ret = 0;

	*unfinished = NULL;
	*left = 0;
	for (size_t i = 0; !ret && i < t->reg.n; i++) {
		unsigned n = 0;

		if (!(ret = settle_one(t, &t->reg.v[i], &n)) && n && !*unfinished) {
			*unfinished = t->reg.v[i].id;
			*left = n;
		}
	}
	return ret;
}
