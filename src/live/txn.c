/* The transaction: the lock, what is read about the process, syscalls run
 * inside it, jump sites written and undone, and the stop that commits. */
#include "txn.h"
#include "exits.h"
#include "held.h"
#include "mem.h"
#include "unwind.h"
#include "util/file.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/fault.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RETRY_NS   (10 * 1000 * 1000)
#define FILES_KEPT 64 /* files kept open from one process to the next */
/* Beyond this, an l_tls_offset read is not one. */
#define MAX_STATIC_TLS (16u << 20)

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

/* The largest offset below the thread pointer of a loaded object's static
 * TLS block (glibc's link_map.l_tls_offset, found the way thread_db finds
 * it), 0 if unknown. No TLS is 0 there; a block placed dynamically is -1. */
static uint64_t static_tls_below(struct txn *t)
{
	uint32_t field[3];
	uint64_t a, off, below = 0;

	if (!resolver_find_object(&t->res, "_thread_db_link_map_l_tls_offset", &a) ||
	    mem_read(t->mem_fd, a, field, sizeof(field)) || field[0] != 64 || field[1] != 1)
		return 0;
	for (size_t i = 0; i < t->res.n; i++)
		if (t->res.libs[i].link_map &&
		    !mem_read(t->mem_fd, t->res.libs[i].link_map + field[2], &off, sizeof(off)) &&
		    off < MAX_STATIC_TLS && off > below)
			below = off;
	return below;
}

/* glibc's thread descriptor, from what glibc keeps for debuggers: the
 * size as one number, the tid as {size in bits, count, offset}. Zeros
 * where they are not found (another C library): the scan then reads the
 * stacks of exited threads too. */
static struct pthread_layout pthread_layout(struct txn *t)
{
	struct pthread_layout pl = {0};
	uint32_t size, tid[3];
	uint64_t a, b;

	if (!resolver_find_object(&t->res, "_thread_db_sizeof_pthread", &a) ||
	    !resolver_find_object(&t->res, "_thread_db_pthread_tid", &b) ||
	    mem_read(t->mem_fd, a, &size, sizeof(size)) || mem_read(t->mem_fd, b, tid, sizeof(tid)))
		return pl;
	if (tid[0] == 32 && tid[1] == 1 && size <= 1u << 16 && tid[2] + 4 <= size)
		pl = (struct pthread_layout){size, tid[2], static_tls_below(t)};
	return pl;
}

/* The time since *now, which becomes now. */
static uint64_t lap(uint64_t *now)
{
	uint64_t t = opus_now_ns(), d = t - *now;

	*now = t;
	return d;
}

int txn_open(struct txn *t, pid_t pid, const struct live_opts *o, struct live_stats *st)
{
	uint64_t now;
	int ret;

	memset(t, 0, sizeof(*t));
	memset(st, 0, sizeof(*st));
	t->pid = pid;
	t->memfd = -1;
	t->lock.fd = -1;
	t->st = st;
	t->files = o->files ? o->files : &t->own_files;
	if (o->background)
		boost_background(&t->boost);
	file_cache_trim(t->files, FILES_KEPT);
	t->t0 = now = opus_now_ns();
	threads_init(&t->ts, pid);
	/* The lock first: another opus tracing the process is no debugger. */
	if ((ret = target_lock(pid, o->timeout_s, &t->lock)))
		return ret;
	st->lock_ns = lap(&now);
	if ((ret = proc_view_pin(pid)) || (ret = proc_check_patchable(pid)))
		return ret;
	t->mem_fd = mem_open(pid);
	if (t->mem_fd < 0)
		return t->mem_fd;
	if ((ret = proc_maps_read(pid, &t->maps)))
		return ret;
	st->procfs_ns = lap(&now);
	if ((ret = registry_read(pid, t->mem_fd, &t->maps, &t->lock, &t->reg)))
		return ret;
	st->registry_ns = lap(&now);
	if ((ret = resolver_init(&t->res, t->files, pid, t->mem_fd, &t->maps)))
		return ret;
	t->scan = o->scan_memory	     ? SCAN_ALL
		  : switches_stacks(&t->res) ? SCAN_BESIDE_THREADS
					     : SCAN_NONE;
	st->linkmap_ns = lap(&now);
	ret = inject_find_gadgets(t->files, t->pid, t->mem_fd, &t->maps, &t->gadgets);
	boost_plan(&t->boost, threads_count(&t->ts));
	st->gadgets_ns = lap(&now);
	return ret;
}

void txn_close(struct txn *t)
{
	seccomp_free(&t->filters);
	threads_detach(&t->ts);
	t->st->longest_hold_ns = t->ts.longest_hold_ns;
	boost_leave(&t->boost);
	t->st->background_ns = t->boost.background_ns;
	if (t->memfd >= 0)
		close(t->memfd);
	if (t->mem_fd > 0)
		close(t->mem_fd);
	proc_maps_free(&t->maps);
	registry_free(&t->reg);
	registry_entry_free(&t->entry);
	resolver_free(&t->res);
	file_cache_free(&t->own_files);
	free(t->ranges);
	free(t->listed);
	free(t->switch_stubs);
	target_unlock(&t->lock);
	proc_view_unpin();
	t->st->total_ns = opus_now_ns() - t->t0;
	if (t->resumed)
		t->st->close_ns = opus_now_ns() - t->resumed;
}

int txn_add_range(struct txn *t, uint64_t lo, uint64_t hi, const char *name)
{
	if (OPUS_PUSH(t->ranges, t->nranges, t->ranges_cap))
		return -ENOMEM;
	t->ranges[t->nranges++] = (struct addr_range){.lo = lo, .hi = hi, .name = name};
	return 0;
}

const struct reg_func *txn_next_version(const struct txn *t, uint64_t at, size_t pos[2])
{
	for (; pos[0] < t->reg.n; pos[0]++, pos[1] = 0)
		for (; pos[1] < t->reg.v[pos[0]].nfuncs; pos[1]++)
			if (t->reg.v[pos[0]].funcs[pos[1]].old_addr == at)
				return &t->reg.v[pos[0]].funcs[pos[1]++];
	return NULL;
}

struct exits_area txn_exits(const struct txn *t)
{
	return exits_of(t->entry.exits, t->entry.table);
}

int txn_guard_exits(struct txn *t)
{
	struct exits_area a = txn_exits(t);

	return a.at ? txn_add_range(t, a.at, a.at + a.size, "an exit stub") : 0;
}

int txn_guard_entry(struct txn *t)
{
	int ret;

	t->nranges = 0;
	t->unmaps = true;
	ret = txn_add_range(t, t->entry.text_lo, t->entry.text_hi, t->entry.id);
	return ret ? ret : txn_guard_exits(t);
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

/* opus real-time until txn_close, as boost_plan found, before it stops
 * one thread (for syscalls) or every thread (all_threads). */
static void txn_boost(struct txn *t, bool all_threads)
{
	boost_enter(&t->boost, all_threads);
	t->st->realtime = t->boost.on;
}

/* Some thread of the process, stopped, to run syscalls in; its seccomp
 * filters read and asked first. */
int txn_injector(struct txn *t, struct injector *in)
{
	int ret;

	txn_boost(t, false);
	ret = threads_stop_one(&t->ts);

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

int txn_remote(struct txn *t, long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
	       uint64_t a4, uint64_t a5, long *ret)
{
	struct injector in = {0};
	uint64_t args[6] = {a0, a1, a2, a3, a4, a5};
	int r = txn_injector(t, &in);

	if (!r)
		r = inject_syscall(&in, nr, args, ret);
	return r ? r : opus_fault("an injected syscall");
}

/* One at a time, each argument taken from an earlier result filled in. */
static int remote_one_by_one(struct injector *in, const struct inject_call *calls, size_t n,
			     long *rets, size_t *ran)
{
	int ret = 0;

	for (*ran = 0; !ret && *ran < n; (*ran)++) {
		const struct inject_call *c = &calls[*ran];
		uint64_t args[6];

		for (int k = 0; k < 6; k++)
			args[k] = c->from[k] > 0 && (size_t)c->from[k] <= *ran
				      ? (uint64_t)rets[c->from[k] - 1]
				      : c->args[k];
		if ((ret = inject_syscall(in, c->nr, args, &rets[*ran])))
			break;
		if (inject_failed(rets[*ran])) {
			(*ran)++;
			break;
		}
	}
	return ret;
}

int txn_remote_calls(struct txn *t, struct injector *in, const struct inject_call *calls, size_t n,
		     long *rets, size_t *ran)
{
	int r = inject_batch(in, t->batch_stub, calls, n, rets, ran);

	if (r == -ENOTSUP)
		r = remote_one_by_one(in, calls, n, rets, ran);
	return r ? r : opus_fault("injected syscalls");
}

/* Whether anything is mapped at addr in the process now. */
static bool still_mapped(pid_t pid, uint64_t addr)
{
	struct proc_maps maps;
	bool found = true; /* when in doubt, assume it is */

	if (proc_maps_read(pid, &maps))
		return found;
	found = proc_map_at(&maps, addr) != NULL;
	proc_maps_free(&maps);
	return found;
}

int txn_unmap(struct txn *t)
{
	long r = -1;
	int ret;

	if (!t->mapped)
		return 0;
	if (t->stubs_left)
		return opus_err(
		    -EBUSY,
		    "process %d: the patch at 0x%" PRIx64 " stays mapped: a thread may "
		    "still return through one of its exit stubs (opus recover takes it out)",
		    (int)t->pid, t->base);
	/* A handler the new code installed would be left dangling. */
	if (t->unmaps && (ret = sighand_check_outside(t)))
		return ret;
	ret = txn_remote(t, SYS_munmap, t->base, t->size, 0, 0, 0, 0, &r);
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

#define SITE_PAGE(s) ((s).addr / 4096)

/* The end of the run of sites from `from` on that start on the page
 * sites[from] starts on. */
static size_t page_run_end(const struct reg_entry *e, size_t from)
{
	size_t to = from + 1;

	while (to < e->nsites && SITE_PAGE(e->sites[to]) == SITE_PAGE(e->sites[from]))
		to++;
	return to;
}

/* The start of the run of sites before `end` that start on the page
 * sites[end - 1] starts on. */
static size_t page_run_start(const struct reg_entry *e, size_t end)
{
	size_t from = end - 1;

	while (from > 0 && SITE_PAGE(e->sites[from - 1]) == SITE_PAGE(e->sites[end - 1]))
		from--;
	return from;
}

/* The bytes [*lo, *lo + len) that sites s[0..n) (all starting on one
 * page) cover, read into buf: one read for the run, inside the pause,
 * instead of one a site. */
static int read_span(int mem_fd, const struct reg_site *s, size_t n, uint8_t *buf, uint64_t *lo,
		     size_t *len)
{
	uint64_t hi = s[0].addr + JUMP_SIZE;

	*lo = s[0].addr;
	for (size_t k = 1; k < n; k++) {
		*lo = s[k].addr < *lo ? s[k].addr : *lo;
		hi = s[k].addr + JUMP_SIZE > hi ? s[k].addr + JUMP_SIZE : hi;
	}
	*len = (size_t)(hi - *lo);
	return mem_read(mem_fd, *lo, buf, *len);
}

/* Sites s[0..n), all starting on one page, written with one read and one
 * write of the span they cover, each site's bytes (saved if restore, else
 * its jump) put into the copy in array order, or in reverse if backwards:
 * where sites overlap, what one write each in that order would leave. The
 * bytes between them are written back as they were, with every thread
 * stopped. */
static int write_span(int mem_fd, const struct reg_site *s, size_t n, bool restore, bool backwards)
{
	uint8_t buf[4096 + JUMP_SIZE];
	uint64_t lo;
	size_t len;
	int ret;

	if (n == 1)
		return mem_write(mem_fd, s->addr, restore ? s->saved : s->jump, JUMP_SIZE);
	if ((ret = read_span(mem_fd, s, n, buf, &lo, &len)))
		return ret;
	for (size_t k = 0; k < n; k++) {
		const struct reg_site *x = &s[backwards ? n - 1 - k : k];

		memcpy(buf + (x->addr - lo), restore ? x->saved : x->jump, JUMP_SIZE);
	}
	return mem_write(mem_fd, lo, buf, len);
}

int txn_write_sites(struct txn *t)
{
	while (t->sites_written < t->entry.nsites) {
		size_t from = t->sites_written, to = page_run_end(&t->entry, from);
		int ret = write_span(t->mem_fd, t->entry.sites + from, to - from, false, false);

		/* Counted even if the write failed part-way: the rollback puts
		 * back each site's saved bytes, which an unwritten one holds. */
		t->sites_written = to;
		if (!ret)
			ret = opus_fault("writing a jump");
		if (ret)
			return ret;
	}
	return 0;
}

int txn_restore_sites_backwards(struct txn *t)
{
	for (size_t end = t->entry.nsites; end > 0;) {
		size_t from = page_run_start(&t->entry, end);
		int ret = write_span(t->mem_fd, t->entry.sites + from, end - from, true, true);

		if (!ret)
			ret = opus_fault("restoring an entry");
		if (ret)
			return ret;
		end = from;
	}
	return 0;
}

int txn_check_jumps(struct txn *t)
{
	uint8_t buf[4096 + JUMP_SIZE];

	for (size_t from = 0, to; from < t->entry.nsites; from = to) {
		const struct reg_site *s = t->entry.sites;
		uint64_t lo;
		size_t len;
		int ret;

		to = page_run_end(&t->entry, from);
		if ((ret = read_span(t->mem_fd, s + from, to - from, buf, &lo, &len)))
			return ret;
		for (size_t k = from; k < to; k++)
			if (memcmp(buf + (s[k].addr - lo), s[k].jump, JUMP_SIZE))
				return opus_err(-EINVAL,
						"process %d: the jump at 0x%" PRIx64 " was changed "
						"by someone else; not reverting",
						(int)t->pid, s[k].addr);
	}
	return 0;
}

void txn_unwrite_sites(struct txn *t)
{
	while (t->sites_written > 0) {
		const struct reg_site *s = &t->entry.sites[--t->sites_written];

		mem_write(t->mem_fd, s->addr, s->saved, JUMP_SIZE);
	}
}

struct early {
	struct unwinder *u;
	const struct range_set *rs;
};

static void check_early(void *ctx, struct thread *th, const struct user_regs_struct *regs)
{
	struct early *e = ctx;

	unwind_check_early(e->u, e->rs, th, regs);
}

/* When the pause that began at start may go on: 0 without --max-pause. */
static uint64_t pause_deadline(const struct live_opts *o, uint64_t start)
{
	return o->max_pause_ms > 0 ? start + (uint64_t)(o->max_pause_ms * 1e6) : 0;
}

/* -ETIME if the pause has passed --max-pause, what took it named: the
 * caller then resumes every thread having changed nothing. */
static int check_pause(const struct txn *t, const struct live_opts *o, uint64_t start,
		       const char *what)
{
	uint64_t now = opus_now_ns(), end = pause_deadline(o, start);

	if (!end || now <= end)
		return 0;
	return opus_err(-ETIME,
			"process %d: %s took the pause to %.1f ms, past --max-pause %g ms; "
			"every thread resumed, nothing changed",
			(int)t->pid, what, (double)(now - start) / 1e6, o->max_pause_ms);
}

/* What a scan of memory read, counted in the stop's figures; a scan cut
 * short by the deadline (-ETIME) is the limit of --max-pause reached,
 * named with what it was reading for and how much it had read. */
static int scan_ended(struct txn *t, const struct live_opts *o, uint64_t start, int ret,
		      const char *looking_for, uint64_t bytes)
{
	char what[128];

	t->st->scan_bytes += bytes;
	if (ret != -ETIME)
		return ret;
	snprintf(what, sizeof(what), "reading its memory for %s (%.1f MiB so far)", looking_for,
		 (double)bytes / (1 << 20));
	return check_pause(t, o, start, what);
}

/* The scan for suspended stacks, within what is left of --max-pause. */
static int scan_within_limit(struct txn *t, const struct scanner *sc, const struct range_set *rs,
			     const struct live_opts *o, uint64_t start)
{
	struct scan_tally tally = {0};
	int ret = scan_suspended(sc, &t->ts, rs, t->scan, pause_deadline(o, start), &tally);

	t->st->dead_stacks = tally.dead_stacks;
	return scan_ended(t, o, start, ret, "suspended stacks", tally.bytes);
}

#define POINTER_TARGETS 6

/* The parts of the patch's mapping the program can hold a pointer into:
 * its code and constants, its exit stubs while one is planted, and what
 * of the mapping is writable (its data), as the process maps it rather
 * than as this opus lays a patch out: an older opus laid it out
 * otherwise. Not the registry record, nor stubs none of which is planted,
 * nor the rest: no code of the program points there, so a word that does
 * is not the patch's. glibc's ld.so keeps one such word (dl-cache.c's
 * cache_new, left pointing where it mapped /etc/ld.so.cache before
 * unmapping it), and a patch placed in that hole could never be
 * reverted. A record without these addresses: all of it. planted: a stub
 * is planted now (txn_stop_and_commit knows it without reading them: only
 * an opus holding the process's lock plants or takes one out). */
static size_t pointer_targets(const struct txn *t, bool planted,
			      struct addr_range out[POINTER_TARGETS])
{
	const struct reg_entry *e = &t->entry;
	struct exits_area a = txn_exits(t);
	uint64_t end = t->base + t->size;
	size_t n = 0;

	if (!e->text_lo)
		goto whole;
	out[n++] = (struct addr_range){.lo = e->text_lo, .hi = e->text_hi, .name = e->id};
	if (a.at && planted)
		out[n++] = (struct addr_range){.lo = a.at, .hi = a.at + a.size, .name = e->id};
	for (size_t i = 0; i < t->maps.n; i++) {
		const struct proc_map *m = &t->maps.v[i];

		if (m->start < t->base || m->end > end || m->perms[1] != 'w')
			continue;
		if (n == POINTER_TARGETS)
			goto whole;
		out[n++] = (struct addr_range){.lo = m->start, .hi = m->end, .name = e->id};
	}
	return n;
whole:
	out[0] = (struct addr_range){.lo = t->base, .hi = end, .name = e->id};
	return 1;
}

/* Of the threads whose live frames hold a word into rs (hold), one whose
 * frame keeps it for a caller (unwind_kept_pointers): -EBUSY, or -EAGAIN
 * if the unwind tables are needed and not loaded. */
static int frames_keep(struct txn *t, struct unwinder *u, const struct range_set *rs,
		       const struct range_set *unwound, const bool *hold)
{
	int ret = 0;

	for (size_t k = 0; !ret && k < t->ts.n; k++)
		if (hold[k])
			ret = unwind_kept_pointers(u, t->ts.v[k].tid, rs, unwound);
	return ret;
}

/* Before the patch is unmapped: no pointer into it left, within what is
 * left of --max-pause; unwound is the code the stack check unwound,
 * epolls the process's epoll descriptors, listed before the stop,
 * planted whether an exit stub is. */
static int dangling_within_limit(struct txn *t, const struct scanner *sc, struct unwinder *u,
				 const struct range_set *unwound, const struct held_epolls *epolls,
				 bool planted, const struct live_opts *o, uint64_t start)
{
	struct addr_range parts[POINTER_TARGETS];
	struct scan_tally tally = {0};
	bool *hold = calloc(t->ts.n + 1, sizeof(*hold));
	struct range_set rs;
	int ret = hold ? range_set_init(&rs, parts, pointer_targets(t, planted, parts)) : -ENOMEM;

	if (!ret) {
		ret =
		    scan_dangling(sc, &t->ts, &rs, unwound, pause_deadline(o, start), hold, &tally);
		if (!ret)
			ret = frames_keep(t, u, &rs, unwound, hold);
		if (!ret)
			ret = held_check(&t->ts, epolls, &rs);
		range_set_free(&rs);
	}
	free(hold);
	return scan_ended(t, o, start, ret, "pointers into the patch", tally.bytes);
}

/* A per-thread revert's first stop that found, in or pointing into the
 * patch's code, what it cannot wait for by listing (a thread in a
 * dispatcher, whose frame has no unwind table; a register left holding an
 * address of the patch): it puts the entries back all the same, and the
 * unmap waits for them in a stop of its own. Retrying the whole revert
 * instead found one such thread at nearly every stop beside 64 busy
 * callers of the reverted function. */
static int unmap_later(struct txn *t, const char *why)
{
	opus_info("%s; the entries go back now, the code is unmapped once it has left", why);
	t->unmap_later = true;
	return 0;
}

/* The busy thread to catch as it leaves: the one that kept a per-thread
 * stop from listing (the others could be listed), else the first whose
 * exit the stack check found; NULL if none's is known. */
static const struct exit_site *exit_to_catch(const struct exit_site *exits, size_t n,
					     pid_t unlisted)
{
	const struct exit_site *first = NULL;

	for (size_t i = 0; i < n; i++) {
		if (!exits[i].slot)
			continue;
		if (unlisted && exits[i].tid == unlisted)
			return &exits[i];
		if (!first)
			first = &exits[i];
	}
	return first;
}

/* Room in *exits for one site per thread of n (and an end), kept in *cap.
 * Called before the stop, then again after it: threads created while it
 * stopped the others are in n by then. */
static int exits_fit(struct exit_site **exits, size_t *cap, size_t n)
{
	struct exit_site *e;

	if (n + 1 <= *cap)
		return 0;
	if (!(e = calloc(n + 1, sizeof(*e))))
		return -ENOMEM;
	free(*exits);
	*exits = e;
	*cap = n + 1;
	return 0;
}

/* The stop's "thread T is inside F", without the process, for a
 * per-thread transition to name if T never leaves. */
static void keep_busy_msg(struct txn *t)
{
	const char *m = opus_errmsg(), *colon = strstr(m, ": ");

	snprintf(t->busy_msg, sizeof(t->busy_msg), "%s",
		 !strncmp(m, "process ", 8) && colon ? colon + 2 : m);
}

/* Stop the world until no thread is in a guarded range, then run commit
 * with everything stopped. Busy: resume, wait, retry until the deadline. */
int txn_stop_and_commit(struct txn *t, const struct live_opts *o, int (*commit)(struct txn *t))
{
	uint64_t deadline = opus_now_ns() + (uint64_t)(o->timeout_s * 1e9), t1 = opus_now_ns();
	struct live_stats *st = t->st;
	uint64_t cfi_later = 0; /* unwind tables read between stops */
	uint64_t fds_ns = 0;	/* epoll descriptors listed before each stop */
	/* A transaction may stop more than once (a transition's second stop,
	 * a revert's later unmap): this call's figures add to the earlier. */
	uint64_t retry0 = t->st->retry_ns, seize0 = t->st->seize_ns;
	struct exit_site *exits = NULL;
	size_t nexits = 0;
	const struct exit_site *exit;
	/* Stubs left planted by a catch cut short (a killed opus) */
	bool armed = t->entry.exits && !t->stubs_unused && exits_armed(t->mem_fd, txn_exits(t));
	struct unwinder *u = NULL;
	struct scanner sc = {0};
	struct held_epolls epolls = {0};
	struct range_set rs;
	int ret = range_set_init(&rs, t->ranges, t->nranges);

	uint64_t *entries = calloc(t->entry.nsites + 1, sizeof(*entries));

	if (!ret && !entries)
		ret = -ENOMEM;
	if (!ret)
		ret = unwind_open(t->pid, t->mem_fd, t->gadgets.restore_rt, &t->maps, &u);
	if (!ret && (t->scan != SCAN_NONE || t->unmaps)) {
		struct pthread_layout pl = pthread_layout(t);

		ret = scanner_open(&sc, t->pid, t->mem_fd, &pl);
	}
	for (size_t i = 0; !ret && i < t->entry.nsites; i++)
		entries[i] = t->entry.sites[i].addr;
	if (!ret) {
		unwind_set_entries(u, entries, t->entry.nsites);
		unwind_set_patches(u, &t->reg, &t->entry);
	}
	st->cfi_ns = lap(&t1);
	txn_boost(t, true);
	while (!ret) {
		uint64_t seize, start, stopped, unwound, checked, written;
		bool busy;

		/* Listed with the threads running: it takes 6 us a descriptor. */
		seize = opus_now_ns();
		if (t->unmaps && (ret = held_list_epolls(t->pid, &epolls)))
			break;
		fds_ns += lap(&seize);
		/* Seizing stops nothing: done first, it stays out of the pause. */
		if ((ret = threads_seize_all(&t->ts)))
			break;
		unwind_reserve(u, t->ts.n);
		if ((ret = exits_fit(&exits, &nexits, t->ts.n)))
			break;
		start = opus_now_ns();
		st->scan_bytes = 0; /* what this stop reads */
		st->seize_ns += start - seize;
		/* Earlier attempts and the waits after them, less their seizing
		 * and the unwind tables read between them. */
		st->retry_ns = retry0 + (seize - t1) - (st->seize_ns - seize0 - (start - seize)) -
			       cfi_later - fds_ns;
		st->attempts++;
		if (!st->prepare_ns)
			st->prepare_ns = start - t->t0;
		/* Planted return addresses are put back after the stop: the
		 * stacks are read early only if none is planted. */
		ret = threads_stop_all(&t->ts, armed ? NULL : check_early,
				       &(struct early){.u = u, .rs = &rs});
		if (ret == -EINPROGRESS) {
			/* A thread waits for its vfork child, whose code runs in
			 * this memory: try again later, as for a busy thread. */
			threads_resume(&t->ts);
			ret = -EBUSY;
			if (opus_now_ns() >= deadline)
				break;
			nanosleep(&(struct timespec){0, RETRY_NS}, NULL);
			ret = 0;
			continue;
		}
		if (!ret)
			ret = opus_fault("stopping every thread");
		/* ...hide returns into the guarded code: put them back first. */
		if (!ret && armed && !(ret = exits_disarm(t->mem_fd, txn_exits(t))))
			armed = false;
		stopped = opus_now_ns();
		if (!ret)
			ret = check_pause(t, o, start, "stopping every thread");
		/* No thread can clone now: a child sharing the memory cloned
		 * since the first look is found for good. */
		for (size_t k = 0; !ret && k < t->ts.n; k++)
			ret = proc_check_vm_child(t->pid, t->ts.v[k].tid, t->ts.v[k].children);
		if (!ret)
			ret = exits_fit(&exits, &nexits, t->ts.n);
		if (!ret)
			ret = unwind_check(u, &t->ts, &rs, exits);
		/* Per-thread, the threads inside switch as they leave. */
		busy = ret == -EBUSY && t->per_thread;
		if (busy) {
			keep_busy_msg(t);
			ret = 0;
		}
		if (!ret)
			ret = check_pause(t, o, start, "checking the threads' stacks");
		unwound = opus_now_ns();
		if (!ret && t->scan != SCAN_NONE)
			ret = scan_within_limit(t, &sc, &rs, o, start);
		if (!ret && t->unmaps) {
			ret = dangling_within_limit(t, &sc, u, &rs, &epolls, armed, o, start);
			/* A register: it lets go once no call leads there. */
			if (ret == -EBUSY && t->may_unmap_later)
				ret = unmap_later(t, opus_errmsg());
		}
		if (!ret && t->per_thread)
			ret = transition_begin(t, busy ? exits : NULL);
		/* transition.c says why in stop_world_why, not as an error. */
		if (ret == -ENOTSUP && t->may_unmap_later)
			ret = unmap_later(t, t->st->stop_world_why);
		if (ret == -ENOTSUP)
			ret = -EBUSY; /* not that way: wait for them, as stop-world does */
		if (ret == -EREMCHG) {
			threads_resume(&t->ts);
			break;
		}
		checked = opus_now_ns();
		if (!ret) {
			ret = commit(t);
			if (ret && t->nlisted)
				transition_abort(t);
			written = opus_now_ns();
			if (!ret) {
				st->threads = (unsigned)t->ts.n;
				threads_detach(&t->ts);
				st->pause_ns = opus_now_ns() - start;
				st->stop_ns = stopped - start;
				st->unwind_ns = unwound - stopped;
				st->scan_ns = checked - unwound;
				st->write_ns = written - checked;
				st->resume_ns = start + st->pause_ns - written;
				t->resumed = start + st->pause_ns;
			}
			break;
		}
		if (ret == -EAGAIN) {
			/* A stack needs DWARF: its tables are read with every
			 * thread running, then the stop begins again. */
			uint64_t c0;

			threads_resume(&t->ts);
			c0 = opus_now_ns();
			ret = unwind_load_cfi(u);
			cfi_later += lap(&c0);
			continue;
		}
		if (ret != -EBUSY || opus_now_ns() >= deadline)
			break;
		/* Catch the busy thread as it leaves, rather than hope to find
		 * it out on a later stop: then stop the rest and check again. */
		exit = exit_to_catch(exits, t->ts.n, t->per_thread ? t->unlisted : 0);
		t->stubs_unused = false;
		ret =
		    exit ? exits_catch(&t->ts, t->mem_fd, txn_exits(t), exit, deadline) : -ENOTSUP;
		st->exits_caught += ret == 1;
		armed = ret != -ENOTSUP;
		if (ret >= 0) {
			ret = 0;
			continue;
		}
		if (ret != -ENOTSUP)
			break;
		threads_resume(&t->ts);
		nanosleep(&(struct timespec){0, RETRY_NS}, NULL);
		ret = 0;
	}
	st->cfi_ns += cfi_later;
	st->procfs_ns += fds_ns;
	/* Left with a stub planted (the stop after a catch failed): put it
	 * back in a stop of its own, or keep the mapping it leads into. */
	if (armed &&
	    (threads_stop_all(&t->ts, NULL, NULL) || exits_disarm(t->mem_fd, txn_exits(t))))
		t->stubs_left = true;
	if (ret == -EBUSY && t->per_thread && st->stop_world_why[0])
		opus_err_wrap(ret, "gave up after %.1f s (%u attempts; not per thread: %s)",
			      o->timeout_s, st->attempts, st->stop_world_why);
	else if (ret == -EBUSY)
		opus_err_wrap(ret, "gave up after %.1f s (%u attempts)", o->timeout_s,
			      t->st->attempts);
	unwind_close(u);
	scanner_close(&sc);
	held_epolls_free(&epolls);
	free(exits);
	free(entries);
	range_set_free(&rs);
	return ret;
}
