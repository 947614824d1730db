/* live_revert and live_list: the newest patch taken out, its old entries
 * restored in one stop with no thread inside its new code (or, per
 * thread, restored first and the code unmapped once the threads inside
 * it have left); what is applied. */
#include "txn.h"
#include "exits.h"
#include "mem.h"
#include "util/err.h"
#include "util/fault.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The entries put back (every thread stopped): from here on every call
 * goes to the old code. Written again if that fails part-way. */
static int revert_entries(struct txn *t)
{
	int ret = txn_check_jumps(t);

	if (!ret && (ret = txn_restore_sites_backwards(t))) {
		t->sites_written = 0;
		txn_write_sites(t);
	}
	return ret;
}

/* No thread is left in the patch's code: it goes. */
static int revert_unmap(struct txn *t)
{
	t->mapped = true;
	return txn_unmap(t);
}

/* Both in one stop, the jumps written again if the unmap fails. A
 * per-thread revert runs them in two stops, the threads inside the
 * patch's code let leave it between them. */
int revert_commit(struct txn *t)
{
	int ret = revert_entries(t);

	if (!ret && (ret = revert_unmap(t))) {
		t->sites_written = 0;
		txn_write_sites(t);
	}
	return ret;
}

/* The first stop of a per-thread revert: with no thread inside the
 * patch's code it is the whole revert; otherwise the entries only. */
static int revert_first_stop(struct txn *t)
{
	int ret = 0;

	/* Asked now, while the jumps may stay: in the second stop a handler
	 * found could only keep the patch mapped, the jumps out. */
	if (t->nlisted || t->unmap_later)
		ret = sighand_check_outside(t);
	if (ret)
		return ret;
	return t->nlisted || t->unmap_later ? revert_entries(t) : revert_commit(t);
}

/* What no thread may be in when a revert's jumps go back in: the code
 * they lead away from (each old function, and every earlier patch's
 * version of it), as for an apply, and the exit stubs. */
static int guard_old_code(struct txn *t)
{
	int ret = 0;

	t->nranges = 0;
	t->unmaps = false; /* the jumps go back in: the patch stays */
	for (size_t i = 0; !ret && i < t->entry.nfuncs; i++) {
		const struct reg_func *f = &t->entry.funcs[i], *v;

		ret = txn_add_range(t, f->old_addr, f->old_addr + f->old_size, f->name);
		for (size_t pos[2] = {0, 0}; !ret && (v = txn_next_version(t, f->old_addr, pos));)
			ret = txn_add_range(t, v->new_addr, v->new_addr + v->new_size, f->name);
	}
	return ret ? ret : txn_guard_exits(t);
}

/* The jumps back in, the dispatchers' table empty first (the threads the
 * revert listed stay on the patch, as every thread is again). */
static int rewrite_jumps(struct txn *t)
{
	int ret = mem_write(t->mem_fd, t->entry.table, &(uint64_t){0}, 8);

	t->sites_written = 0;
	if (!ret && (ret = txn_write_sites(t)))
		txn_unwrite_sites(t);
	return ret;
}

/* A thread inside the patch's code did not leave it in time: the jumps
 * go back in, in a stop with no thread in the old code (the stop puts the
 * switch stubs' return addresses back, as any planted), and the process is
 * as before the revert. */
static int undo_revert(struct txn *t, const struct live_opts *o)
{
	int ret;

	t->per_thread = false;
	t->nlisted = 0;
	ret = guard_old_code(t);
	return ret ? ret : txn_stop_and_commit(t, o, rewrite_jumps);
}

/* The entries are back but the code cannot go yet: it stays mapped,
 * journaled, for recover to take out once nothing is in it. */
static int left_half(struct txn *t, int ret)
{
	return opus_err_wrap(ret,
			     "process %d: patch %s's jumps are taken out, but its code stays "
			     "mapped until no thread is in it (opus recover takes it out then)",
			     (int)t->pid, t->entry.id);
}

/* ret ended the revert after its entries went back: the jumps go back in
 * (undo_revert), and the process is as before; or, if that fails too, the
 * patch is left half out. */
static int undo_after(struct txn *t, const struct live_opts *o, int ret, bool *half)
{
	char why[1024];

	snprintf(why, sizeof(why), "%s", opus_errmsg());
	if (!undo_revert(t, o)) {
		*half = false;
		opus_err(ret, "%s", why);
		return opus_err_wrap(ret, "process %d left unchanged (the revert was undone)",
				     (int)t->pid);
	}
	opus_err_wrap(ret, "%s; the revert could not be undone", why);
	return left_half(t, ret);
}

/* A per-thread revert (the default, for a patch applied per thread: its
 * build judged the mixed period safe). Once the first stop has restored
 * the entries there is no going back to the patch for the threads that
 * left it, so a failure after that is undone (the jumps back in, in a
 * stop with no thread in the old code); where it cannot be, the jumps
 * stay out and the code mapped for recover (journaled) to take out when
 * the threads have left it. */
static int revert_per_thread(struct txn *t, const struct live_opts *o, bool *half)
{
	int ret;

	t->per_thread = t->can_list = t->may_unmap_later = true;
	ret = txn_stop_and_commit(t, o, revert_first_stop);
	t->may_unmap_later = false;
	t->st->switched_late = (unsigned)t->nlisted;
	if (ret)
		return opus_err_wrap(ret, "process %d left unchanged", (int)t->pid);
	if (!t->nlisted && !t->unmap_later)
		return 0;
	*half = true;
	if (!(ret = transition_wait(t, o, false))) {
		t->per_thread = false;
		t->nlisted = 0;
		if (!(ret = txn_stop_and_commit(t, o, revert_unmap))) {
			*half = false;
			return 0;
		}
		/* Every listed thread has left: what is still in it came later. */
		if (!t->unmap_later)
			return left_half(t, ret);
	}
	return undo_after(t, o, ret, half);
}

static int pick_entry(struct txn *t, const char *id)
{
	struct reg_entry *e, *newest;

	if (!t->reg.n)
		return opus_err(-ENOENT, "process %d has no opus patch applied", (int)t->pid);
	newest = &t->reg.v[t->reg.n - 1];
	e = id ? registry_find(&t->reg, id) : newest;
	if (!e)
		return opus_err(-ENOENT, "patch %s is not applied to process %d", id, (int)t->pid);
	if (e != newest)
		return opus_err(-EBUSY, "patch %s was applied after %s; revert it first",
				newest->id, e->id);
	t->entry = *e;
	memset(e, 0, sizeof(*e)); /* ownership moves to t->entry */
	t->reg.n--;
	t->base = t->entry.base;
	t->size = t->entry.size;
	return 0;
}

int live_revert(pid_t pid, const char *id, const struct live_opts *o, struct live_stats *st,
		char reverted_id[OPATCH_ID_MAX + 1])
{
	struct live_recovery rec;
	bool half = false;
	struct txn t;
	int ret = txn_open(&t, pid, o, st);

	/* Reverting an apply that was cut short is taking it out. */
	if (!ret && t.reg.n && (ret = recover_newest(&t, o, &rec)) == 1) {
		snprintf(reverted_id, OPATCH_ID_MAX + 1, "%s", rec.last_id);
		txn_close(&t);
		return 0;
	}
	if (!ret)
		ret = pick_entry(&t, id);
	/* Journaled until its memfd is gone: a revert cut short leaves a
	 * record without jumps that the next opus may take out. */
	if (!ret)
		ret = target_journal_add(&t.lock, t.entry.nonce);
	if (!ret) {
		snprintf(reverted_id, OPATCH_ID_MAX + 1, "%s", t.entry.id);
		ret = txn_guard_entry(&t);
	}
	st->per_thread = !ret && t.entry.active && !o->stop_world && t.entry.table;
	if (!st->per_thread)
		snprintf(st->stop_world_why, sizeof(st->stop_world_why), "%s",
			 o->stop_world ? "--stop-world asked for it"
				       : "the patch was applied with every thread stopped");
	if (st->per_thread) {
		ret = revert_per_thread(&t, o, &half);
		st->unmapped_later = !ret && t.unmap_later;
		st->per_thread = t.per_thread || st->switched_late || st->unmapped_later;
	} else {
		if (!ret && !t.entry.active) {
			/* No jump leads into it: unmapping is the whole revert. */
			ret = revert_unmap(&t);
		} else if (!ret) {
			ret = txn_stop_and_commit(&t, o, revert_commit);
		}
		if (ret)
			opus_err_wrap(ret, "process %d left unchanged", (int)pid);
	}
	/* Settled either way when opus gets here: unmapped, or whole again
	 * (a failed revert writes its jumps back). Only a killed one stays,
	 * and a per-thread one left half done. */
	if (t.entry.nonce[0] && !half)
		target_journal_end(&t.lock, t.entry.nonce);
	st->base = t.base;
	txn_close(&t);
	return ret;
}

int live_list(pid_t pid, struct registry *out)
{
	struct proc_maps maps;
	int mem_fd, ret = proc_check_alive(pid);

	if (ret)
		return ret;
	mem_fd = mem_open(pid);
	if (mem_fd < 0)
		return mem_fd;
	struct target_lock journal;

	ret = proc_maps_read(pid, &maps);
	if (!ret)
		ret = target_journal_peek(pid, &journal);
	if (!ret)
		ret = registry_read(pid, mem_fd, &maps, &journal, out);
	free(journal.nonces);
	proc_maps_free(&maps);
	close(mem_fd);
	return ret;
}
