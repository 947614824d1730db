/* live_apply: check the process and the patch against each other, place and
 * link the new code while the process runs, then write the jumps in one
 * stop with no thread inside a replaced function. */
#include "txn.h"
#include "dispatch.h"
#include "exits.h"
#include "mem.h"
#include "tls.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/fault.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/sha256.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every TARGET and EXTERN symbol's address; a thread-local one's offset in
 * its block, and in sym_lib the object whose block that is. */
static int resolve_syms(const struct opatch *p, const struct proc_object *obj, struct resolver *res,
			uint64_t *sym_addr, size_t *sym_lib)
{
	size_t target = resolver_find_lib(res, obj->name, obj->bias);
	int ret = 0;

	for (size_t i = 0; !ret && i < p->nsyms; i++) {
		const struct opatch_sym *s = &p->syms[i];

		if (s->kind == OPATCH_SYM_TARGET && s->type == STT_TLS) {
			sym_addr[i] = s->value;
			sym_lib[i] = target;
			if (target == res->n)
				ret = opus_err(-ENOENT, "%s is not in the process's link map",
					       obj->name);
		} else if (s->kind == OPATCH_SYM_TARGET && s->type == STT_GNU_IFUNC) {
			/* The implementation the loader put in the object's GOT. */
			if (mem_read(res->mem_fd, obj->bias + s->value, &sym_addr[i], 8))
				ret = opus_err(-EIO, "%s: cannot read the GOT entry of IFUNC %s",
					       obj->name, s->name);
		} else if (s->kind == OPATCH_SYM_TARGET) {
			sym_addr[i] = obj->bias + s->value;
		} else if (s->kind == OPATCH_SYM_EXTERN && s->type == STT_TLS) {
			ret = resolver_lookup_tls(res, s->name, &sym_lib[i], &sym_addr[i]);
		} else if (s->kind == OPATCH_SYM_EXTERN) {
			ret = resolver_lookup(res, s->name, &sym_addr[i]);
		}
	}
	return ret;
}

/* Where each thread-local symbol's block is, found with a thread stopped
 * (its thread pointer leads to the TLS vector). */
static int locate_tls(struct txn *t, const struct opatch *p, const struct resolver *res,
		      const size_t *sym_lib, struct layout_tls **out)
{
	struct tls_object *objs = calloc(res->n + 1, sizeof(*objs));
	struct tls_module *mods = calloc(res->n + 1, sizeof(*mods));
	bool *done = calloc(res->n + 1, sizeof(*done));
	struct layout_tls *tls = calloc(p->nsyms + 1, sizeof(*tls));
	struct injector in = {0};
	uint64_t fs_base = 0;
	int ret = objs && mods && done && tls ? txn_injector(t, &in) : -ENOMEM;

	if (!ret)
		ret = thread_fs_base(in.t, &fs_base);
	for (size_t i = 0; i < res->n; i++)
		objs[i] = (struct tls_object){res->libs[i].name, res->libs[i].f->e.elf,
					      files_dynsym(res->libs[i].f), res->libs[i].bias,
					      res->libs[i].main_program};
	for (size_t i = 0; !ret && i < p->nsyms; i++) {
		size_t m = sym_lib[i];

		if (p->syms[i].type != STT_TLS)
			continue;
		if (!done[m] && !(ret = tls_locate(t->mem_fd, objs, res->n, m, fs_base, &mods[m])))
			done[m] = true;
		tls[i] = (struct layout_tls){true, mods[m].modid, mods[m].tpoff, mods[m].has_tpoff};
	}
	free(objs);
	free(mods);
	free(done);
	if (ret)
		free(tls);
	else
		*out = tls;
	return ret;
}

static int add_site(struct txn *t, uint64_t at, uint64_t to)
{
	struct reg_site s = {.addr = at};
	int64_t rel = (int64_t)to - (int64_t)(at + JUMP_SIZE);
	int32_t rel32 = (int32_t)rel;
	int ret;

	if (rel != rel32)
		return opus_err(-ERANGE, "jump from 0x%" PRIx64 " to 0x%" PRIx64 " is out of reach",
				at, to);
	/* Two names of one function (an alias, or code the compiler folded)
	 * take one jump: the first one's new code, the same as the other's. A
	 * second jump there would read as a record half written. */
	for (size_t i = 0; i < t->entry.nsites; i++)
		if (t->entry.sites[i].addr == at)
			return 0;
	if ((ret = mem_read(t->mem_fd, at, s.saved, JUMP_SIZE)))
		return ret;
	s.jump[0] = 0xe9;
	memcpy(s.jump + 1, &rel32, 4);
	if (OPUS_PUSH(t->entry.sites, t->entry.nsites, t->entry.sites_cap))
		return -ENOMEM;
	t->entry.sites[t->entry.nsites++] = s;
	return 0;
}

/* Where replaced function f's entry leads: its new code, or in a
 * per-thread transition with threads inside its dispatcher. Two test hooks: with
 * OPUS_TEST_OLD_COPIES set, the entry leads to the patch's copy of the old
 * code (the process then runs as before, through every redirected entry);
 * with OPUS_TEST_DISPATCH, to the dispatcher (test_dispatch_table lists
 * the threads not yet switched). */
static uint64_t entry_target(const struct txn *t, const struct opatch *p, size_t f,
			     const struct layout *l, const uint64_t *sym_addr)
{
	int32_t old = p->funcs[f].old_sym;

	if (l->dispatch_off[f] >= 0 && (t->can_list || getenv("OPUS_TEST_DISPATCH")))
		return t->base + (uint64_t)l->dispatch_off[f];
	if (old >= 0 && getenv("OPUS_TEST_OLD_COPIES"))
		return sym_addr[old];
	return sym_addr[p->funcs[f].new_sym];
}

/* OPUS_TEST_DISPATCH=TP[,TP...]: the thread pointers (pthread_self() in
 * glibc) of the threads the dispatchers send to the old code. */
static void test_dispatch_table(struct layout *l)
{
	uint64_t *table = (uint64_t *)(void *)(l->image + l->table_off);
	const char *at = getenv("OPUS_TEST_DISPATCH");
	size_t n = 0;
	char *end;

	while (at && *at && n + 1 < LAYOUT_PAGE / sizeof(*table)) {
		table[n++] = strtoull(at, &end, 16);
		at = *end == ',' ? end + 1 : "";
	}
}

/* Redirect each old function, and every earlier patch's version of it, so
 * the newest code wins wherever a call lands. */
static int plan_sites(struct txn *t, const struct opatch *p, const struct proc_object *obj,
		      const struct layout *l, const uint64_t *sym_addr)
{
	struct reg_entry *e = &t->entry;
	int ret = 0;

	for (size_t i = 0; !ret && i < p->nfuncs; i++) {
		const struct opatch_func *f = &p->funcs[i];
		const struct reg_func *old;
		struct reg_func rf = {
		    .old_addr = obj->bias + f->old_addr, .old_size = f->old_size, .cold = f->cold};

		uint64_t to = entry_target(t, p, i, l, sym_addr);

		rf.new_addr = sym_addr[f->new_sym];
		rf.new_size = p->syms[f->new_sym].size;

		snprintf(rf.name, sizeof(rf.name), "%s", f->name);
		if (OPUS_PUSH(e->funcs, e->nfuncs, e->funcs_cap))
			return -ENOMEM;
		e->funcs[e->nfuncs++] = rf;
		ret = txn_add_range(t, rf.old_addr, rf.old_addr + rf.old_size, f->name);
		if (!ret && !f->cold)
			ret = add_site(t, rf.old_addr, to);
		for (size_t pos[2] = {0, 0};
		     !ret && (old = txn_next_version(t, rf.old_addr, pos));) {
			ret =
			    txn_add_range(t, old->new_addr, old->new_addr + old->new_size, f->name);
			if (!ret && !f->cold)
				ret = add_site(t, old->new_addr, to);
		}
	}
	return ret;
}

static void fill_entry(struct txn *t, const struct opatch *p, const struct layout *l)
{
	struct reg_entry *e = &t->entry;
	int cfi;

	snprintf(e->id, sizeof(e->id), "%s", p->id);
	snprintf(e->description, sizeof(e->description), "%s",
		 p->description ? p->description : "");
	for (char *c = e->description; *c; c++)
		if (*c == '\n')
			*c = ' ';
	opus_hex_encode(p->build_id, p->build_id_len, e->build_id);
	snprintf(e->target, sizeof(e->target), "%s", p->target_name);
	e->seq = 1;
	for (size_t i = 0; i < t->reg.n; i++)
		if (!t->reg.v[i].blank && t->reg.v[i].seq >= e->seq)
			e->seq = t->reg.v[i].seq + 1;
	e->base = t->base;
	e->size = l->total;
	e->text_lo = t->base + l->text_off;
	e->text_hi = t->base + l->text_off + l->text_size;
	e->exits = t->base + l->exits_off;
	e->table = t->per_thread ? t->base + l->table_off : 0;
	cfi = opatch_find_section(p, OPATCH_CFI_SECTION);
	if (cfi >= 0 && p->sections[cfi].size && !(p->sections[cfi].flags & SHF_WRITE)) {
		e->cfi = t->base + l->sec_off[cfi];
		e->cfi_size = p->sections[cfi].size;
	}
	e->code_pointers = layout_makes_code_pointers(p);
	/* What the record vouches for: the code as it will be mapped. */
	opus_sha256(l->image + l->text_off, l->text_size, e->text_sha256);
}

static int commit_apply(struct txn *t)
{
	int ret = txn_write_sites(t);

	if (ret)
		txn_unwrite_sites(t);
	return ret;
}

/* An earlier per-thread apply still switching threads: a later patch now
 * could change a function under a thread still on the old code. */
static int check_settled(struct txn *t, const char *id)
{
	const char *unfinished;
	unsigned left;
	int ret = transition_settle(t, &unfinished, &left);

	if (!ret && unfinished)
		ret = opus_err(-EBUSY,
			       "process %d: patch %s is still switching threads (%u inside its "
			       "replaced code); patch %s waits until they leave it, or revert %s",
			       (int)t->pid, unfinished, left, id, unfinished);
	return ret;
}

static int check_buried(struct txn *t, const char *id)
{
	struct reg_entry *e = registry_find(&t->reg, id);

	if (e && !e->active)
		return opus_err(-EBUSY,
				"process %d: patch %s has an inactive record (its jumps were never "
				"written) under later patches; revert those first",
				(int)t->pid, id);
	return 0;
}

/* Are the bytes at addr in the process the code of p's function f, but
 * for the fields its relocations fill? */
static bool code_is(struct txn *t, const struct opatch *p, const struct opatch_func *f,
		    uint64_t addr)
{
	const struct opatch_sym *s = &p->syms[f->new_sym];
	const struct opatch_section *sec = &p->sections[s->section];
	uint8_t *have = malloc(s->size + 1), *want = malloc(s->size + 1);
	bool same = have && want && sec->data && s->value + s->size <= sec->size &&
		    !mem_read(t->mem_fd, addr, have, s->size);

	if (same) {
		memcpy(want, sec->data + s->value, s->size);
		for (size_t k = 0; k < sec->nrelas; k++)
			for (unsigned b = 0; b < opatch_rela_width(sec->relas[k].type); b++)
				if (sec->relas[k].offset + b >= s->value &&
				    sec->relas[k].offset + b < s->value + s->size)
					want[sec->relas[k].offset + b - s->value] =
					    have[sec->relas[k].offset + b - s->value];
		same = !memcmp(have, want, s->size);
	}
	free(have);
	free(want);
	return same;
}

/* Patch p is in force through record e: each old entry leads to the new
 * function e records, and that is p's code. A record, even a verified
 * one, is not enough: the code says. */
static bool in_force(struct txn *t, const struct opatch *p, const struct proc_object *obj,
		     const struct reg_entry *e)
{
	if (!e->active || e->written != e->nsites)
		return false;
	for (size_t i = 0; i < p->nfuncs; i++) {
		const struct reg_func *rf = NULL;

		for (size_t k = 0; k < e->nfuncs; k++)
			if (e->funcs[k].old_addr == obj->bias + p->funcs[i].old_addr &&
			    !strcmp(e->funcs[k].name, p->funcs[i].name))
				rf = &e->funcs[k];
		if (!rf || (!p->funcs[i].cold && !code_is(t, p, &p->funcs[i], rf->new_addr)))
			return false;
	}
	return true;
}

static int check_target(struct txn *t, const struct opatch *p, struct proc_object *obj)
{
	char hex[2 * OPUS_BUILD_ID_MAX + 1];
	const struct reg_entry *e;

	opus_hex_encode(p->build_id, p->build_id_len, hex);
	if (files_find_object(t->files, t->pid, &t->maps, p->build_id, p->build_id_len, obj))
		return opus_err(-ENOENT, "process %d does not map %s with build-id %s", (int)t->pid,
				p->target_name, hex);
	if (!(e = registry_find(&t->reg, p->id)))
		return 0;
	if (in_force(t, p, obj, e))
		return opus_err(-EALREADY, "patch %s is already applied to process %d", p->id,
				(int)t->pid);
	return opus_err(-EEXIST,
			"process %d has a patch %s whose code is not this file's (another build "
			"with the same id?): revert it first",
			(int)t->pid, p->id);
}

static const char *next_line(const char *l)
{
	const char *nl = strchr(l, '\n');

	return nl ? nl + 1 : l + strlen(l);
}

/* Is id one of the lines of lines? */
static bool listed(const char *lines, const char *id)
{
	size_t n = strlen(id);

	for (const char *l = lines ? lines : ""; *l; l = next_line(l))
		if (!strncmp(l, id, n) && (l[n] == '\n' || !l[n]))
			return true;
	return false;
}

/* A patch built on top of others applies only over them; and it must not
 * silently take a function from an applied patch it knows nothing of (its
 * code would drop that patch's fix). */
static int check_stack(struct txn *t, const struct opatch *p, const struct proc_object *obj)
{
	for (const char *l = p->after ? p->after : ""; *l; l = next_line(l)) {
		char id[OPATCH_ID_MAX + 1];
		const struct reg_entry *e;

		snprintf(id, sizeof(id), "%.*s", (int)strcspn(l, "\n"), l);
		e = registry_find(&t->reg, id);
		if (!e || !e->active)
			return opus_err(-ENOENT,
					"patch %s was built on top of patch %s, which process %d "
					"does not have",
					p->id, id, (int)t->pid);
	}
	for (size_t i = 0; i < p->nfuncs; i++)
		for (size_t r = 0; r < t->reg.n; r++)
			for (size_t k = 0; k < t->reg.v[r].nfuncs; k++)
				if (t->reg.v[r].funcs[k].old_addr ==
					obj->bias + p->funcs[i].old_addr &&
				    !listed(p->after, t->reg.v[r].id))
					return opus_err(-EEXIST,
							"process %d: %s is replaced by patch %s, "
							"which patch %s was not built on top of "
							"(opus build --after)",
							(int)t->pid, p->funcs[i].name,
							t->reg.v[r].id, p->id);
	return 0;
}

/* The bytes an earlier patch's jumps hid in [addr, addr + len): the oldest
 * record's saved bytes are the code as loaded. */
static void unhide_sites(const struct registry *reg, uint64_t addr, uint8_t *code, size_t len)
{
	for (size_t r = reg->n; r-- > 0;)
		for (size_t k = 0; k < reg->v[r].nsites; k++) {
			const struct reg_site *s = &reg->v[r].sites[k];

			for (size_t b = 0; b < JUMP_SIZE; b++)
				if (s->addr + b >= addr && s->addr + b < addr + len)
					code[s->addr + b - addr] = s->saved[b];
		}
}

/* Each function the patch replaces is, in this process, the code it was
 * built against: same build-id is not proof (a binary rebuilt or altered
 * in place keeps its note). */
static int check_old_code(struct txn *t, const struct opatch *p, const struct proc_object *obj)
{
	for (size_t i = 0; i < p->nfuncs; i++) {
		const struct opatch_func *f = &p->funcs[i];
		uint64_t at = obj->bias + f->old_addr;
		uint8_t *code = malloc(f->old_size + 1), digest[OPUS_SHA256_LEN];
		int ret = code ? mem_read(t->mem_fd, at, code, f->old_size) : -ENOMEM;

		if (!ret) {
			unhide_sites(&t->reg, at, code, f->old_size);
			opus_sha256(code, f->old_size, digest);
			if (memcmp(digest, f->old_sha256, sizeof(digest)))
				ret = opus_err(-EINVAL,
					       "process %d: %s at 0x%" PRIx64
					       " in %s is not the code "
					       "patch %s was built against",
					       (int)t->pid, f->name, at, obj->name, p->id);
		} else if (ret != -ENOMEM) {
			ret = opus_err(ret, "process %d: cannot read %s at 0x%" PRIx64, (int)t->pid,
				       f->name, at);
		}
		free(code);
		if (ret)
			return ret;
	}
	return 0;
}

/* The kernel writes /proc/PID/mem a page at a time and stops between two
 * pages once opus is being killed: the five bytes of a jump across a page
 * boundary could be left half written, and the next call there would run
 * torn code. Compilers align entries at -O2, so none crosses one; an
 * entry that does (-Os code) is refused. */
static int check_entry_on_one_page(pid_t pid, const char *name, const char *where, uint64_t at)
{
	if (at / LAYOUT_PAGE == (at + JUMP_SIZE - 1) / LAYOUT_PAGE)
		return 0;
	return opus_err(-EINVAL,
			"process %d: the entry of %s at 0x%" PRIx64 " in %s crosses a page "
			"boundary: its jump could be left half written if opus were killed "
			"while writing it; not patched",
			(int)pid, name, at, where);
}

/* Every entry plan_sites will write: the old functions, and the copies of
 * them earlier patches put in their own mappings. */
static int check_entries_on_one_page(const struct txn *t, const struct opatch *p,
				     const struct proc_object *obj)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < p->nfuncs; i++) {
		const struct opatch_func *f = &p->funcs[i];
		uint64_t at = obj->bias + f->old_addr;
		const struct reg_func *old;

		if (f->cold)
			continue;
		ret = check_entry_on_one_page(t->pid, f->name, obj->name, at);
		for (size_t pos[2] = {0, 0}; !ret && (old = txn_next_version(t, at, pos));)
			ret = check_entry_on_one_page(t->pid, f->name, t->reg.v[pos[0]].id,
						      old->new_addr);
	}
	return ret;
}

/* A per-thread transition unless --stop-world, where the patch allows
 * it: its build found the mixed period safe (no stop_world reason), and
 * every function it redirects has a dispatcher (a copy of its old code).
 * A patch built before opus judged this (stop_world NULL) is not judged.
 * If not, why not, in st. */
static bool choose_per_thread(const struct opatch *p, const struct layout *l,
			      const struct live_opts *o, struct live_stats *st)
{
	const char *why = NULL;

	if (o->stop_world)
		why = "--stop-world asked for it";
	else if (!p->stop_world)
		why = "the patch was built before opus judged the mixed period";
	else if (*p->stop_world)
		why = p->stop_world;
	else if (getenv("OPUS_TEST_OLD_COPIES") || getenv("OPUS_TEST_DISPATCH"))
		why = "a test hook chose where the entries lead";
	for (size_t i = 0; !why && i < p->nfuncs; i++)
		if (!p->funcs[i].cold && l->dispatch_off[i] < 0)
			why = "a function has no copy of its old code";
	if (why)
		snprintf(st->stop_world_why, sizeof(st->stop_world_why), "%s", why);
	return !why;
}

/* The stop found threads inside a replaced function: from the next stop
 * on, the entries lead to the dispatchers, which keep each thread listed
 * there on the old code. The jumps are planned again and the record says
 * so before any is written (blank while it changes: recover would take
 * out an apply killed meanwhile). */
static int lead_to_dispatchers(struct txn *t, const struct opatch *p, const struct proc_object *obj,
			       struct layout *l, const uint64_t *sym_addr)
{
	int ret;

	t->can_list = true;
	t->entry.nfuncs = t->entry.nsites = 0;
	t->nranges = 0;
	ret = plan_sites(t, p, obj, l, sym_addr);
	if (!ret)
		ret = transition_mark_reentries(t);
	if (!ret)
		ret = place_rewrite_record(t, l);
	if (!ret)
		opus_info("process %d: a thread is inside the replaced code; the entries will "
			  "lead to the dispatchers",
			  (int)t->pid);
	return ret;
}

/* The committing stop; per thread, the entries lead straight to the new
 * code unless a thread is found inside, and then to the dispatchers. */
static int stop_and_commit(struct txn *t, const struct opatch *p, const struct proc_object *obj,
			   struct layout *l, const uint64_t *sym_addr, const struct live_opts *o)
{
	uint64_t t0 = opus_now_ns();
	int ret = txn_stop_and_commit(t, o, commit_apply);
	uint64_t first;

	if (ret != -EREMCHG)
		return ret;
	ret = lead_to_dispatchers(t, p, obj, l, sym_addr);
	/* That stop, its retries and the jumps planned again: all retry. */
	first = opus_now_ns() - t0 - t->st->retry_ns;
	if (!ret)
		ret = txn_stop_and_commit(t, o, commit_apply);
	t->st->retry_ns += first;
	return ret;
}

/* The transition did not finish: take the patch out as a revert would
 * (the threads not yet switched get their return addresses back in its
 * stop). If that cannot be done either, the patch stays whole, each thread
 * on its side, as if applied: opus revert can take it out later. */
static int undo_transition(struct txn *t, const struct live_opts *o, int why)
{
	char why_msg[1024];
	int ret;

	/* The undo's own stops may find a thread busy and say so: the user
	 * is told why the transition failed, not why its undo waited. */
	snprintf(why_msg, sizeof(why_msg), "%s", opus_errmsg());
	t->per_thread = false;
	t->nlisted = 0; /* their stubs are put back by the stop, as any planted */
	ret = txn_guard_entry(t);
	if (!ret)
		ret = txn_stop_and_commit(t, o, revert_commit);
	if (!ret) {
		opus_err(why, "%s", why_msg);
		return opus_err_wrap(why, "process %d left unchanged (the transition was undone)",
				     (int)t->pid);
	}
	t->mapped = false; /* applied, and left so */
	return opus_err_wrap(ret,
			     "process %d: the transition did not finish and could not be undone; "
			     "patch %s stays applied (threads not yet switched run the old code "
			     "until they leave it; opus revert takes it out)",
			     (int)t->pid, t->entry.id);
}

int live_apply(pid_t pid, const struct opatch *p, const struct live_opts *o, struct live_stats *st)
{
	struct live_recovery rec;
	struct proc_object obj;
	struct layout l = {0};
	struct layout_tls *tls = NULL;
	struct txn t;
	uint64_t *sym_addr = calloc(p->nsyms + 1, sizeof(*sym_addr));
	size_t *sym_lib = calloc(p->nsyms + 1, sizeof(*sym_lib));
	int ret = txn_open(&t, pid, o, st);
	uint64_t t1 = opus_now_ns();

	if (!ret && (!sym_addr || !sym_lib))
		ret = -ENOMEM;

	if (!ret)
		ret = recover_unfinished(&t, o, &rec);
	if (!ret)
		ret = check_settled(&t, p->id);
	if (!ret)
		ret = check_buried(&t, p->id);
	if (!ret)
		ret = check_target(&t, p, &obj);
	if (!ret)
		ret = check_stack(&t, p, &obj);
	if (!ret)
		ret = check_old_code(&t, p, &obj);
	if (!ret)
		ret = check_entries_on_one_page(&t, p, &obj);
	st->check_ns = opus_now_ns() - t1;
	t1 = opus_now_ns();

	if (!ret)
		ret = resolve_syms(p, &obj, &t.res, sym_addr, sym_lib);
	if (!ret)
		ret = layout_plan(&l, p);
	t.per_thread = !ret && choose_per_thread(p, &l, o, st);
	st->resolve_ns = opus_now_ns() - t1;
	t1 = opus_now_ns();
	if (!ret)
		ret = place_patch(&t, &obj, p, &l);
	if (!ret && layout_uses_tls(p))
		ret = locate_tls(&t, p, &t.res, sym_lib, &tls);
	/* New code is unreachable until the jumps exist: link, write and plan
	 * with the process running. */
	threads_detach(&t.ts);
	st->map_ns = opus_now_ns() - t1;
	t1 = opus_now_ns();
	if (!ret)
		ret = layout_link(&l, p, t.base, sym_addr, tls);
	if (!ret)
		fill_entry(&t, p, &l);
	if (!ret)
		ret = plan_sites(&t, p, &obj, &l, sym_addr);
	if (!ret)
		test_dispatch_table(&l);
	if (!ret)
		ret = place_write_image(&t, &l);
	st->link_ns = opus_now_ns() - t1;
	if (!ret)
		ret = stop_and_commit(&t, p, &obj, &l, sym_addr, o);
	st->per_thread = t.per_thread;
	st->switched_late = (unsigned)t.nlisted;
	if (!ret && t.nlisted && (ret = transition_wait(&t, o, true)))
		ret = undo_transition(&t, o, ret);
	if (ret && t.mapped) {
		threads_detach(&t.ts);
		txn_unmap(&t);
		opus_err_wrap(ret, "process %d left unchanged", (int)pid);
	}
	/* Settled: recorded whole, or taken out (the memfd closed by place). */
	if (t.entry.nonce[0] && (!ret || (!t.mapped && t.memfd_closed)))
		target_journal_end(&t.lock, t.entry.nonce);
	st->base = t.base;
	txn_close(&t);
	layout_free(&l);
	free(sym_addr);
	free(sym_lib);
	free(tls);
	return ret;
}
