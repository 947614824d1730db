/* live_recover: finish off what a killed opus left: applies cut short are
 * undone, stray descriptors on opus memfds closed. */
#include "txn.h"
#include "exits.h"
#include "mem.h"
#include "util/err.h"
#include "util/fault.h"
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Undo a commit cut short: restore the sites that hold this entry's jump. */
static int commit_undo(struct txn *t)
{
	for (size_t i = t->entry.nsites; i-- > 0;) {
		const struct reg_site *s = &t->entry.sites[i];
		uint8_t now[JUMP_SIZE];
		int ret = mem_read(t->mem_fd, s->addr, now, JUMP_SIZE);

		if (!ret && !memcmp(now, s->jump, JUMP_SIZE))
			ret = mem_write(t->mem_fd, s->addr, s->saved, JUMP_SIZE);
		if (ret)
			return ret;
	}
	return 0;
}

struct stray_fds {
	struct txn *t;
	unsigned closed;
};

/* Close fd if it is on an opus memfd that an apply began here. */
static int close_if_stray(void *ctx, int fd, const char *target)
{
	struct stray_fds *s = ctx;
	char id[OPATCH_ID_MAX + 1], nonce[REGISTRY_NONCE_LEN + 1];
	long r;
	int ret;

	if (!registry_path_parse(target, id, nonce) || !target_journal_has(&s->t->lock, nonce))
		return 0; /* not a memfd an opus began here */
	ret = txn_remote(s->t, SYS_close, (uint64_t)fd, 0, 0, 0, 0, 0, &r);
	s->closed += !ret;
	return ret;
}

/* Close the target's descriptors on an opus memfd: an apply closes its own
 * before it returns, so any left is from one cut short. Its nonce was
 * journaled before the memfd existed: with the journal empty there is
 * none, and the descriptors (6 us each to list) are not read. */
static int close_stray_fds(struct txn *t, unsigned *closed)
{
	struct stray_fds s = {t, 0};
	int ret = t->lock.n ? proc_each_fd(t->pid, close_if_stray, &s) : 0;

	*closed += s.closed;
	return ret;
}

/* The function whose entry is at addr, for a message. */
static const char *site_name(const struct reg_entry *e, uint64_t addr)
{
	for (size_t i = 0; i < e->nfuncs; i++)
		if (e->funcs[i].old_addr == addr)
			return e->funcs[i].name;
	return "no function of the patch";
}

/* A site that holds neither its jump nor the bytes it saved was written
 * by something other than opus (another tool, the program itself): name
 * it, rather than take the entry for an apply cut short. */
static int check_sites_are_ours(const struct txn *t, const struct reg_entry *e)
{
	for (size_t k = 0; k < e->nsites; k++) {
		const struct reg_site *s = &e->sites[k];
		uint8_t now[JUMP_SIZE];

		if (mem_read(t->mem_fd, s->addr, now, JUMP_SIZE) ||
		    !memcmp(now, s->jump, JUMP_SIZE) || !memcmp(now, s->saved, JUMP_SIZE))
			continue;
		return opus_err(-EBUSY,
				"process %d: patch %s: the entry of %s at 0x%" PRIx64
				" holds bytes opus did not write (changed by another tool?); "
				"nothing done: put its jump back, or restart the process",
				(int)t->pid, e->id, site_name(e, s->addr), s->addr);
	}
	return 0;
}

/* Takes out the newest entry if an apply left it unfinished. Returns 1 if
 * it did, 0 if that entry is complete. */
int recover_newest(struct txn *t, const struct live_opts *o, struct live_recovery *rec)
{
	struct reg_entry *e = &t->reg.v[t->reg.n - 1];
	int ret;

	if (!e->blank && e->written == e->nsites && e->nsites)
		return 0;
	if ((ret = check_sites_are_ours(t, e)))
		return ret;
	/* Unfinished, but not begun by an opus on this process (its journal
	 * would say): a child forked in the middle of an apply. Not ours to
	 * take apart. */
	if (!target_journal_has(&t->lock, e->nonce))
		return opus_err(-EBUSY,
				"process %d: patch %s is half applied, and no opus began it here "
				"(a child forked during an apply?): revert it, or leave it",
				(int)t->pid, e->id);
	t->entry = *e;
	memset(e, 0, sizeof(*e));
	t->reg.n--;
	t->base = t->entry.base;
	t->size = t->entry.size;
	t->mapped = true;
	if (t->entry.written || t->entry.exits) {
		/* Some jumps are in, or an exit stub may be planted: threads
		 * may be in the new code, or on their way to a stub. */
		ret = txn_guard_entry(t);
		if (!ret)
			ret = txn_stop_and_commit(t, o, commit_undo);
		if (ret)
			return ret;
	}
	if (t->entry.written)
		rec->undone++;
	else
		rec->dropped++;
	threads_detach(&t->ts);
	ret = txn_unmap(t);
	snprintf(rec->last_id, sizeof(rec->last_id), "%s", t->entry.id);
	registry_entry_free(&t->entry);
	return ret ? ret : 1;
}

/* Unfinished transactions can only be the newest: every apply and revert
 * takes them out before it does anything else. */
int recover_unfinished(struct txn *t, const struct live_opts *o, struct live_recovery *rec)
{
	int ret = 0;

	memset(rec, 0, sizeof(*rec));
	while (!ret && t->reg.n && (ret = recover_newest(t, o, rec)) == 1)
		ret = 0;
	if (!ret)
		ret = close_stray_fds(t, &rec->fds_closed);
	/* Every transaction begun before is settled now. */
	if (!ret)
		ret = target_journal_clear(&t->lock);
	t->nranges = 0;
	return ret;
}

int live_recover(pid_t pid, const struct live_opts *o, struct live_recovery *rec)
{
	struct live_stats st;
	const char *switching = NULL;
	struct txn t;
	int ret = txn_open(&t, pid, o, &st);

	memset(rec, 0, sizeof(*rec));
	if (!ret)
		ret = recover_unfinished(&t, o, rec);
	if (!ret)
		ret = transition_settle(&t, &switching, &rec->switching_left);
	if (switching)
		snprintf(rec->switching_id, sizeof(rec->switching_id), "%s", switching);
	rec->remaining = (unsigned)t.reg.n;
	txn_close(&t);
	return ret;
}
