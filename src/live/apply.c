#include "inject.h"
#include "layout.h"
#include "lock.h"
#include "live.h"
#include "mem.h"
#include "proc.h"
#include "ptrace.h"
#include "resolve.h"
#include "seccomp.h"
#include "tls.h"
#include "unwind.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/fault.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/sha256.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define REACH	     ((1ull << 31) - (1ull << 20))
#define MIN_ADDR     0x10000ull
#define RETRY_NS     (10 * 1000 * 1000)
#define MFD_CLOEXEC_ 1u

struct txn {
	pid_t pid;
	struct target_lock lock; /* one opus at a time; the journal of memfds begun */
	bool memfd_closed;	 /* the target holds no descriptor of ours */
	struct resolver res;	 /* names in the process, as its dynamic linker sees them */
	enum scan_scope scan;	 /* where suspended stacks are looked for */
	int mem_fd;
	int memfd; /* opus's own handle on the target's memfd */
	struct proc_maps maps;
	struct registry reg;
	struct threads ts;
	struct inject_gadgets gadgets;
	struct seccomp_filters filters; /* of the thread that runs injected syscalls */
	uint64_t base, size;
	bool mapped;
	size_t sites_written;
	struct reg_entry entry;
	struct addr_range *ranges;
	size_t nranges, ranges_cap;
	struct live_stats *st;
	uint64_t t0;
};

/* Can the process switch stacks? Coroutines built on ucontext switch with
 * swapcontext or setcontext, those built on setjmp with longjmp; either
 * way their suspended stacks must be scanned. A switcher written in
 * assembly imports neither: --scan-memory asks for the scan. */
static bool switches_stacks(const struct resolver *res)
{
	static const char *const switchers[] = {
	    "makecontext", "swapcontext", "setcontext",	   "longjmp",
	    "_longjmp",	   "siglongjmp",  "__longjmp_chk",
	};

	return resolver_imports(res, switchers, sizeof(switchers) / sizeof(switchers[0]));
}

static int txn_open(struct txn *t, pid_t pid, const struct live_opts *o, struct live_stats *st)
{
	int ret;

	memset(t, 0, sizeof(*t));
	memset(st, 0, sizeof(*st));
	t->pid = pid;
	t->memfd = -1;
	t->lock.fd = -1;
	t->st = st;
	t->t0 = opus_now_ns();
	threads_init(&t->ts, pid);
	/* The lock first: another opus tracing the process is no debugger. */
	if ((ret = target_lock(pid, o->timeout_s, &t->lock)) || (ret = proc_check_patchable(pid)))
		return ret;
	t->mem_fd = mem_open(pid);
	if (t->mem_fd < 0)
		return t->mem_fd;
	if ((ret = proc_maps_read(pid, &t->maps)) ||
	    (ret = registry_read(pid, t->mem_fd, &t->maps, &t->lock, &t->reg)) ||
	    (ret = resolver_init(&t->res, pid, t->mem_fd, &t->maps)))
		return ret;
	t->scan = o->scan_memory	     ? SCAN_ALL
		  : switches_stacks(&t->res) ? SCAN_BESIDE_THREADS
					     : SCAN_NONE;
	return inject_find_gadgets(t->mem_fd, &t->maps, &t->gadgets);
}

static void txn_close(struct txn *t)
{
	seccomp_free(&t->filters);
	threads_detach(&t->ts);
	if (t->memfd >= 0)
		close(t->memfd);
	if (t->mem_fd > 0)
		close(t->mem_fd);
	proc_maps_free(&t->maps);
	registry_free(&t->reg);
	registry_entry_free(&t->entry);
	resolver_free(&t->res);
	free(t->ranges);
	target_unlock(&t->lock);
	t->st->total_ns = opus_now_ns() - t->t0;
}

static int add_range(struct txn *t, uint64_t lo, uint64_t hi, const char *name)
{
	if (OPUS_PUSH(t->ranges, t->nranges, t->ranges_cap))
		return -ENOMEM;
	t->ranges[t->nranges++] = (struct addr_range){lo, hi, name};
	return 0;
}

/* Every syscall opus may inject, as it will: the thread's seccomp filters
 * are asked about all of them before the first is run. */
static int check_planned_syscalls(struct txn *t)
{
	static const uint64_t prots[] = {PROT_READ, PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE};
	uint64_t ip = t->gadgets.syscall_ret + 2, fd = 3, addr = MIN_ADDR << 8;
	int ret =
	    seccomp_check(&t->filters, SYS_memfd_create, (uint64_t[6]){addr, MFD_CLOEXEC_}, ip);

	for (size_t i = 0; !ret && i < sizeof(prots) / sizeof(prots[0]); i++)
		ret = seccomp_check(&t->filters, SYS_mmap,
				    (uint64_t[6]){addr, LAYOUT_PAGE, prots[i],
						  MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0},
				    ip);
	if (!ret)
		ret = seccomp_check(&t->filters, SYS_munmap, (uint64_t[6]){addr, LAYOUT_PAGE}, ip);
	if (!ret)
		ret = seccomp_check(&t->filters, SYS_close, (uint64_t[6]){fd}, ip);
	/* What restores the thread should opus die half-way. */
	if (!ret)
		ret = seccomp_check(&t->filters, SYS_rt_sigreturn, (uint64_t[6]){0}, ip);
	return ret ? opus_err_wrap(ret, "process %d", (int)t->pid) : 0;
}

/* Some thread of the process, stopped, to run syscalls in; its seccomp
 * filters read and asked first. */
static int injector(struct txn *t, struct injector *in)
{
	int ret = threads_stop_one(&t->ts);

	if (ret || (ret = opus_fault("stopping a thread for a syscall")))
		return ret;
	for (size_t i = 0; i < t->ts.n; i++)
		if (t->ts.v[i].stopped) {
			in->t = &t->ts.v[i];
			break;
		}
	if (t->filters.tid != in->t->tid) {
		seccomp_free(&t->filters);
		ret = seccomp_load(in->t->tid, &t->filters);
		if (!ret)
			ret = check_planned_syscalls(t);
		if (ret) {
			seccomp_free(&t->filters);
			return ret;
		}
	}
	in->g = t->gadgets;
	in->filters = &t->filters;
	in->mem_fd = t->mem_fd;
	return 0;
}

static int remote(struct txn *t, long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
		  uint64_t a4, uint64_t a5, long *ret)
{
	struct injector in = {0};
	uint64_t args[6] = {a0, a1, a2, a3, a4, a5};
	int r = injector(t, &in);

	if (!r)
		r = inject_syscall(&in, nr, args, ret);
	return r ? r : opus_fault("an injected syscall");
}

/* Whether anything is mapped at addr in the process now. */
static bool still_mapped(pid_t pid, uint64_t addr)
{
	struct proc_maps maps;
	bool found = true; /* when in doubt, assume it is */

	if (proc_maps_read(pid, &maps))
		return found;
	found = false;
	for (size_t i = 0; i < maps.n && !found; i++)
		found = maps.v[i].start <= addr && addr < maps.v[i].end;
	proc_maps_free(&maps);
	return found;
}

static int remote_unmap(struct txn *t)
{
	long r = -1;
	int ret;

	if (!t->mapped)
		return 0;
	ret = remote(t, SYS_munmap, t->base, t->size, 0, 0, 0, 0, &r);
	/* A step after the syscall may fail: the map says whether it ran. */
	if (ret && !still_mapped(t->pid, t->base))
		ret = 0, r = 0;
	if (ret)
		return opus_err_wrap(ret, "process %d: unmapping the patch at 0x%" PRIx64,
				     (int)t->pid, t->base);
	if (r)
		return opus_err((int)r, "process %d: cannot unmap the patch at 0x%" PRIx64,
				(int)t->pid, t->base);
	t->mapped = false;
	return 0;
}

/* ---- placement ---- */

static bool in_reach(const struct proc_object *o, uint64_t cand, uint64_t size)
{
	uint64_t lo = cand < o->lo ? cand : o->lo;
	uint64_t hi = cand + size > o->hi ? cand + size : o->hi;

	return hi - lo <= REACH;
}

/* The free gaps nearest the object, below it first: above a [heap] is where
 * brk grows, so that gap is never used. Candidates are written to out. */
static size_t find_holes(const struct proc_maps *m, const struct proc_object *o, uint64_t size,
			 uint64_t *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i <= m->n && n < max; i++) {
		uint64_t g0 = i ? m->v[i - 1].end : MIN_ADDR;
		uint64_t g1 = i < m->n ? m->v[i].start : 0x7ffffffff000ull, cand;

		if (g0 < MIN_ADDR)
			g0 = MIN_ADDR;
		if (g1 <= g0 || g1 - g0 < size + 2 * LAYOUT_PAGE)
			continue;
		if (i && !strcmp(m->v[i - 1].path, "[heap]"))
			continue;
		cand = g1 <= o->lo ? (g1 - size - LAYOUT_PAGE) & ~(uint64_t)(LAYOUT_PAGE - 1)
				   : g0 + LAYOUT_PAGE;
		if (in_reach(o, cand, size))
			out[n++] = cand;
	}
	/* Nearest first. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0; j--) {
			uint64_t dj = out[j] < o->lo ? o->lo - out[j] : out[j] - o->hi;
			uint64_t dk = out[j - 1] < o->lo ? o->lo - out[j - 1] : out[j - 1] - o->hi;
			uint64_t tmp = out[j];

			if (dj >= dk)
				break;
			out[j] = out[j - 1];
			out[j - 1] = tmp;
		}
	return n;
}

static int map_region(struct txn *t, int fd, uint64_t base, const struct layout *l)
{
	const struct {
		size_t off, len;
		int prot;
	} parts[] = {
	    {0, l->reg_size, PROT_READ},
	    {l->text_off, l->text_size, PROT_READ | PROT_EXEC},
	    {l->data_off, l->data_size, PROT_READ | PROT_WRITE},
	};
	long r;
	int ret;

	t->base = base;
	for (size_t i = 0; i < 3; i++) {
		uint64_t want = base + parts[i].off;

		if (!parts[i].len)
			continue;
		r = -1;
		ret = remote(t, SYS_mmap, want, parts[i].len, (uint64_t)parts[i].prot,
			     MAP_PRIVATE | MAP_FIXED_NOREPLACE, (uint64_t)fd, parts[i].off, &r);
		/* Mapped, even if a later step of the call failed: record it so
		 * the rollback takes it out. */
		if (r == (long)want) {
			t->size = parts[i].off + parts[i].len;
			t->mapped = true;
		}
		if (!ret && r == (long)want)
			continue;
		/* A kernel without MAP_FIXED_NOREPLACE may place it elsewhere. */
		if (!ret && r > 0)
			remote(t, SYS_munmap, (uint64_t)r, parts[i].len, 0, 0, 0, 0, &r);
		remote_unmap(t); /* only the parts mapped so far */
		if (ret)
			return ret;
		if (r == -EEXIST || r > 0)
			return -EEXIST;
		/* The kernel said no (a memory limit, a policy): say what. */
		return opus_err(
		    (int)r, "process %d: mapping %zu bytes of patch at 0x%" PRIx64 " failed: %s",
		    (int)t->pid, parts[i].len, want, strerror((int)-r));
	}
	return 0;
}

/* memfd_create in the target, reopened by opus through /proc/PID/fd. Its
 * nonce is journaled first: a killed opus's memfd is told from any other. */
static int create_memfd(struct txn *t, const char *id, size_t size, long *fd)
{
	struct injector in = {0};
	char name[OPATCH_ID_MAX + 64], path[64];
	uint64_t args[6] = {0, MFD_CLOEXEC_}, name_addr;
	int ret = target_journal_begin(&t->lock, t->entry.nonce);

	registry_memfd_name(id, t->entry.nonce, name, sizeof(name));
	if (ret || (ret = injector(t, &in)) || (ret = inject_push_string(&in, name, &name_addr)))
		return ret;
	args[0] = name_addr;
	if ((ret = inject_syscall(&in, SYS_memfd_create, args, fd)))
		return ret;
	if (*fd >= 0 && (ret = opus_fault("memfd_create")))
		return ret;
	if (*fd < 0)
		return opus_err((int)*fd, "process %d: memfd_create failed: %s", (int)t->pid,
				strerror((int)-*fd));
	snprintf(path, sizeof(path), "/proc/%d/fd/%ld", (int)proc_view_id(t->pid), *fd);
	t->memfd = open(path, O_RDWR | O_CLOEXEC);
	if (t->memfd < 0 || ftruncate(t->memfd, (off_t)size) < 0)
		return opus_err(-errno, "process %d: cannot open its memfd: %s", (int)t->pid,
				strerror(errno));
	return 0;
}

static int place(struct txn *t, const struct proc_object *obj, const struct opatch *p,
		 const struct layout *l)
{
	uint64_t cands[64];
	size_t n = find_holes(&t->maps, obj, l->total, cands, 64);
	long fd = -1, r;
	int ret = create_memfd(t, p->id, l->total, &fd);

	for (size_t i = 0; !ret && i < n; i++) {
		ret = map_region(t, (int)fd, cands[i], l);
		if (ret == -EEXIST)
			ret = i + 1 < n ? 0 : -EEXIST;
		else
			break;
	}
	/* The target must not keep the memfd open: a failed close fails the
	 * apply (and is tried once more, for the rollback's sake). */
	if (fd >= 0 && remote(t, SYS_close, (uint64_t)fd, 0, 0, 0, 0, 0, &r)) {
		int err = opus_err_wrap(-EIO, "process %d: closing its memfd", (int)t->pid);

		t->memfd_closed = !remote(t, SYS_close, (uint64_t)fd, 0, 0, 0, 0, 0, &r);
		if (!ret)
			ret = err;
	} else {
		t->memfd_closed = true;
	}
	if (!ret && !n)
		ret = -ENOSPC;
	if (ret == -ENOSPC || ret == -EEXIST)
		return opus_err(-ENOSPC, "process %d: no free address range within 2 GiB of %s",
				(int)t->pid, obj->name);
	return ret;
}

/* ---- apply ---- */

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
	int ret = objs && mods && done && tls ? injector(t, &in) : -ENOMEM;

	if (!ret)
		ret = thread_fs_base(in.t, &fs_base);
	for (size_t i = 0; i < res->n; i++)
		objs[i] = (struct tls_object){res->libs[i].name, res->libs[i].e.elf,
					      res->libs[i].bias, res->libs[i].main_program};
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

/* Redirect each old function, and every earlier patch's version of it, so
 * the newest code wins wherever a call lands. */
static int plan_sites(struct txn *t, const struct opatch *p, const struct proc_object *obj,
		      const uint64_t *sym_addr)
{
	struct reg_entry *e = &t->entry;
	int ret = 0;

	for (size_t i = 0; !ret && i < p->nfuncs; i++) {
		const struct opatch_func *f = &p->funcs[i];
		struct reg_func rf = {.old_addr = obj->bias + f->old_addr,
				      .old_size = f->old_size,
				      .new_addr = sym_addr[f->new_sym],
				      .new_size = p->syms[f->new_sym].size,
				      .cold = f->cold};

		snprintf(rf.name, sizeof(rf.name), "%s", f->name);
		if (OPUS_PUSH(e->funcs, e->nfuncs, e->funcs_cap))
			return -ENOMEM;
		e->funcs[e->nfuncs++] = rf;
		ret = add_range(t, rf.old_addr, rf.old_addr + rf.old_size, f->name);
		if (!ret && !f->cold)
			ret = add_site(t, rf.old_addr, rf.new_addr);
		for (size_t r = 0; !ret && r < t->reg.n; r++)
			for (size_t k = 0; !ret && k < t->reg.v[r].nfuncs; k++) {
				const struct reg_func *old = &t->reg.v[r].funcs[k];

				if (old->old_addr != rf.old_addr)
					continue;
				ret = add_range(t, old->new_addr, old->new_addr + old->new_size,
						f->name);
				if (!ret && !f->cold)
					ret = add_site(t, old->new_addr, rf.new_addr);
			}
	}
	return ret;
}

static void fill_entry(struct txn *t, const struct opatch *p, const struct layout *l)
{
	struct reg_entry *e = &t->entry;

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
	/* What the record vouches for: the code as it will be mapped. */
	opus_sha256(l->image + l->text_off, l->text_size, e->text_sha256);
}

static int write_image(struct txn *t, struct layout *l)
{
	struct opus_buf reg = {0};
	int ret = registry_format(&t->entry, &reg);

	if (!ret && reg.len >= l->reg_size)
		ret = opus_err(-E2BIG, "registry record too large");
	if (!ret) {
		memcpy(l->image, reg.data, reg.len);
		if (pwrite(t->memfd, l->image, l->total, 0) != (ssize_t)l->total)
			ret =
			    opus_err(-EIO, "process %d: cannot write the patch image", (int)t->pid);
		else
			ret = opus_fault("writing the image and its registry record");
	}
	opus_buf_free(&reg);
	return ret;
}

static int write_sites(struct txn *t, bool restore)
{
	for (; t->sites_written < t->entry.nsites; t->sites_written++) {
		const struct reg_site *s = &t->entry.sites[t->sites_written];
		int ret = mem_write(t->mem_fd, s->addr, restore ? s->saved : s->jump, JUMP_SIZE);

		if (ret)
			return ret;
		if ((ret = opus_fault(restore ? "restoring an entry" : "writing a jump"))) {
			t->sites_written++; /* it was written: the rollback must see it */
			return ret;
		}
	}
	return 0;
}

static void unwrite_sites(struct txn *t)
{
	while (t->sites_written > 0) {
		const struct reg_site *s = &t->entry.sites[--t->sites_written];

		mem_write(t->mem_fd, s->addr, s->saved, JUMP_SIZE);
	}
}

/* Stop the world until no thread is in a guarded range, then run commit
 * with everything stopped. Busy: resume, wait, retry until the deadline. */
static int stop_and_commit(struct txn *t, const struct live_opts *o, int (*commit)(struct txn *t))
{
	uint64_t deadline = opus_now_ns() + (uint64_t)(o->timeout_s * 1e9), t1 = opus_now_ns();
	struct live_stats *st = t->st;
	struct unwinder *u = NULL;
	struct range_set rs;
	int ret = range_set_init(&rs, t->ranges, t->nranges);

	if (!ret)
		ret = unwind_open(t->pid, t->mem_fd, &u);

	st->cfi_ns = opus_now_ns() - t1;
	while (!ret) {
		uint64_t start = opus_now_ns(), stopped, checked, written;

		st->attempts++;
		if (!st->prepare_ns)
			st->prepare_ns = start - t->t0;
		ret = threads_stop_all(&t->ts);
		if (!ret)
			ret = opus_fault("stopping every thread");
		stopped = opus_now_ns();
		if (!ret)
			ret = unwind_check(u, &t->ts, &rs);
		if (!ret && t->scan != SCAN_NONE)
			ret = scan_suspended(t->pid, t->mem_fd, &t->ts, &rs, t->scan);
		checked = opus_now_ns();
		if (!ret) {
			ret = commit(t);
			written = opus_now_ns();
			if (!ret) {
				st->threads = (unsigned)t->ts.n;
				threads_detach(&t->ts);
				st->pause_ns = opus_now_ns() - start;
				st->stop_ns = stopped - start;
				st->unwind_ns = checked - stopped;
				st->write_ns = written - checked;
				st->resume_ns = start + st->pause_ns - written;
			}
			break;
		}
		if (ret != -EBUSY || opus_now_ns() >= deadline)
			break;
		threads_resume(&t->ts);
		nanosleep(&(struct timespec){0, RETRY_NS}, NULL);
		ret = 0;
	}
	if (ret == -EBUSY)
		opus_err_wrap(ret, "gave up after %.1f s (%u attempts)", o->timeout_s,
			      t->st->attempts);
	unwind_close(u);
	range_set_free(&rs);
	return ret;
}

static int commit_apply(struct txn *t)
{
	int ret = write_sites(t, false);

	if (ret)
		unwrite_sites(t);
	return ret;
}

/* Unfinished applies (opus killed mid-way) are taken out first, newest
 * first; one buried under later patches cannot be, and is refused. */
static int recover_unfinished(struct txn *t, const struct live_opts *o, struct live_recovery *rec);
static int recover_newest(struct txn *t, const struct live_opts *o, struct live_recovery *rec);

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
	if (proc_find_object(t->pid, &t->maps, p->build_id, p->build_id_len, obj))
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

	if (!ret && (!sym_addr || !sym_lib))
		ret = -ENOMEM;

	if (!ret)
		ret = recover_unfinished(&t, o, &rec);
	if (!ret)
		ret = check_buried(&t, p->id);
	if (!ret)
		ret = check_target(&t, p, &obj);
	if (!ret)
		ret = check_stack(&t, p, &obj);
	if (!ret)
		ret = check_old_code(&t, p, &obj);
	uint64_t t1 = opus_now_ns();

	if (!ret)
		ret = resolve_syms(p, &obj, &t.res, sym_addr, sym_lib);
	if (!ret)
		ret = layout_plan(&l, p);
	st->resolve_ns = opus_now_ns() - t1;
	t1 = opus_now_ns();
	if (!ret)
		ret = place(&t, &obj, p, &l);
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
		ret = plan_sites(&t, p, &obj, sym_addr);
	if (!ret)
		ret = write_image(&t, &l);
	st->link_ns = opus_now_ns() - t1;
	if (!ret)
		ret = stop_and_commit(&t, o, commit_apply);
	if (ret && t.mapped) {
		threads_detach(&t.ts);
		remote_unmap(&t);
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

/* ---- revert ---- */

static int commit_revert(struct txn *t)
{
	int ret = 0;

	for (size_t i = 0; i < t->entry.nsites; i++) {
		uint8_t now[JUMP_SIZE];

		ret = mem_read(t->mem_fd, t->entry.sites[i].addr, now, JUMP_SIZE);
		if (!ret && memcmp(now, t->entry.sites[i].jump, JUMP_SIZE))
			ret = opus_err(-EINVAL,
				       "process %d: the jump at 0x%" PRIx64 " was changed "
				       "by someone else; not reverting",
				       (int)t->pid, t->entry.sites[i].addr);
		if (ret)
			return ret;
	}
	/* Restore newest-first so overlapping sites end up as they began. */
	for (size_t i = t->entry.nsites; i-- > 0;) {
		ret = mem_write(t->mem_fd, t->entry.sites[i].addr, t->entry.sites[i].saved,
				JUMP_SIZE);
		if (!ret)
			ret = opus_fault("restoring an entry");
		if (ret)
			break;
	}
	if (ret) {
		t->sites_written = 0;
		write_sites(t, false);
		return ret;
	}
	t->mapped = true;
	ret = remote_unmap(t);
	if (ret) {
		t->sites_written = 0;
		write_sites(t, false);
	}
	return ret;
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
		ret = add_range(&t, t.entry.text_lo, t.entry.text_hi, t.entry.id);
	}
	if (!ret && !t.entry.active) {
		/* No jump leads into it: unmapping is the whole revert. */
		t.mapped = true;
		ret = remote_unmap(&t);
	} else if (!ret)
		ret = stop_and_commit(&t, o, commit_revert);
	if (ret)
		opus_err_wrap(ret, "process %d left unchanged", (int)pid);
	/* Settled either way when opus gets here: unmapped, or whole again
	 * (a failed revert writes its jumps back). Only a killed one stays. */
	if (t.entry.nonce[0])
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

/* ---- recover ---- */

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

/* Close the target's descriptors on an opus memfd: an apply closes its own
 * before it returns, so any left is from one cut short. */
static int close_stray_fds(struct txn *t, unsigned *closed)
{
	char dir[64], link[384], target[256], id[OPATCH_ID_MAX + 1], nonce[REGISTRY_NONCE_LEN + 1];
	struct dirent *d;
	DIR *dh;
	int ret = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)proc_view_id(t->pid));
	if (!(dh = opendir(dir)))
		return opus_err(-errno, "process %d: %s: %s", (int)t->pid, dir, strerror(errno));
	while (!ret && (d = readdir(dh))) {
		ssize_t n;
		long r;

		snprintf(link, sizeof(link), "%s/%s", dir, d->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (!registry_path_parse(target, id, nonce) || !target_journal_has(&t->lock, nonce))
			continue; /* not a memfd an opus began here */
		ret = remote(t, SYS_close, strtoull(d->d_name, NULL, 10), 0, 0, 0, 0, 0, &r);
		*closed += !ret;
	}
	closedir(dh);
	return ret;
}

/* Takes out the newest entry if an apply left it unfinished. Returns 1 if
 * it did, 0 if that entry is complete. */
static int recover_newest(struct txn *t, const struct live_opts *o, struct live_recovery *rec)
{
	struct reg_entry *e = &t->reg.v[t->reg.n - 1];
	int ret;

	if (!e->blank && e->written == e->nsites && e->nsites)
		return 0;
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
	if (t->entry.written) {
		/* Some jumps are in: threads may be in the new code. */
		t->nranges = 0;
		ret = add_range(t, t->entry.text_lo, t->entry.text_hi, t->entry.id);
		if (!ret)
			ret = stop_and_commit(t, o, commit_undo);
		if (ret)
			return ret;
		rec->undone++;
	} else
		rec->dropped++;
	threads_detach(&t->ts);
	ret = remote_unmap(t);
	snprintf(rec->last_id, sizeof(rec->last_id), "%s", t->entry.id);
	registry_entry_free(&t->entry);
	return ret ? ret : 1;
}

/* Unfinished transactions can only be the newest: every apply and revert
 * takes them out before it does anything else. */
static int recover_unfinished(struct txn *t, const struct live_opts *o, struct live_recovery *rec)
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
	struct txn t;
	int ret = txn_open(&t, pid, o, &st);

	memset(rec, 0, sizeof(*rec));
	if (!ret)
		ret = recover_unfinished(&t, o, rec);
	rec->remaining = (unsigned)t.reg.n;
	txn_close(&t);
	return ret;
}
