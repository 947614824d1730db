#include "scan.h"
#include "mem.h"
#include "proc.h"
#include "registry.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <unistd.h>

#define PAGE		4096u
#define CHUNK_PAGES	256u	      /* a megabyte read at a time */
#define PM_PRESENT	(1ull << 63)  /* /proc/PID/pagemap: in memory */
#define PM_SWAPPED	(1ull << 62)  /* or in swap: a stack may be there */
#define MAX_SCAN_EXTENT (64ull << 30) /* larger mappings are refused */

static int by_lo(const void *a, const void *b)
{
	const struct addr_range *x = *(const struct addr_range *const *)a;
	const struct addr_range *y = *(const struct addr_range *const *)b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

int range_set_init(struct range_set *rs, const struct addr_range *ranges, size_t n)
{
	memset(rs, 0, sizeof(*rs));
	rs->v = calloc(n + 1, sizeof(*rs->v));
	rs->max_hi = calloc(n + 1, sizeof(*rs->max_hi));
	if (!rs->v || !rs->max_hi) {
		range_set_free(rs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		rs->v[i] = &ranges[i];
	qsort(rs->v, n, sizeof(*rs->v), by_lo);
	rs->n = n;
	rs->lo = n ? rs->v[0]->lo : 0;
	for (size_t i = 0; i < n; i++) {
		rs->max_hi[i] =
		    i && rs->max_hi[i - 1] > rs->v[i]->hi ? rs->max_hi[i - 1] : rs->v[i]->hi;
		rs->hi = rs->max_hi[i];
	}
	return 0;
}

void range_set_free(struct range_set *rs)
{
	free(rs->v);
	free(rs->max_hi);
	memset(rs, 0, sizeof(*rs));
}

const struct addr_range *range_set_find(const struct range_set *rs, uint64_t addr)
{
	size_t lo = 0, hi = rs->n;

	if (addr - rs->lo >= rs->hi - rs->lo)
		return NULL;
	while (lo < hi) { /* the first range starting above addr */
		size_t mid = lo + (hi - lo) / 2;

		if (rs->v[mid]->lo <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Back through those starting at or below it while one may reach. */
	for (size_t i = lo; i-- > 0 && rs->max_hi[i] > addr;)
		if (rs->v[i]->hi > addr)
			return rs->v[i];
	return NULL;
}

/* Does the code before ret look like a call instruction? */
static bool after_call(int mem_fd, uint64_t ret)
{
	uint8_t b[7];

	if (ret < sizeof(b) || mem_read(mem_fd, ret - sizeof(b), b, sizeof(b)))
		return false;
	if (b[2] == 0xe8) /* call rel32 */
		return true;
	/* call *r/m: ff /2, 2 to 7 bytes long */
	for (int len = 2; len <= 7; len++) {
		uint8_t op = b[7 - len], modrm = b[8 - len];

		if (op == 0xff && ((modrm >> 3) & 7) == 2)
			return true;
	}
	return false;
}

/* Is there an indirect call (ff /2) of exactly n bytes ending at the end
 * of b, whose ModRM byte says it is that long? */
static bool indirect_call(const uint8_t *b, size_t len, size_t n)
{
	uint8_t modrm, mod, rm;

	if (n < 2 || n > len || b[len - n] != 0xff)
		return false;
	modrm = b[len - n + 1];
	mod = modrm >> 6;
	rm = modrm & 7;
	if (((modrm >> 3) & 7) != 2)
		return false;
	switch (n) {
	case 2: /* call *%reg, call *(%reg) */
		return mod == 3 || (mod == 0 && rm != 4 && rm != 5);
	case 3: /* call *d8(%reg), call *(%reg,%idx,s) */
		return (mod == 1 && rm != 4) || (mod == 0 && rm == 4 && (b[len - 1] & 7) != 5);
	case 4: /* call *d8(%reg,%idx,s) */
		return mod == 1 && rm == 4;
	case 6: /* call *d32(%rip), call *d32(%reg) */
		return (mod == 0 && rm == 5) || (mod == 2 && rm != 4);
	case 7: /* call *d32(%reg,%idx,s), call *d32(,%idx,s) */
		return (mod == 2 && rm == 4) || (mod == 0 && rm == 4 && (b[len - 5] & 7) == 5);
	}
	return false;
}

int scan_call_before(int mem_fd, uint64_t ret, uint64_t *target)
{
	uint8_t b[7];
	int32_t rel;

	if (ret < sizeof(b) || mem_read(mem_fd, ret - sizeof(b), b, sizeof(b)))
		return 0;
	if (b[2] == 0xe8) {
		memcpy(&rel, b + 3, sizeof(rel));
		*target = ret + (uint64_t)(int64_t)rel;
		return 1;
	}
	for (size_t n = 2; n <= sizeof(b); n++)
		if (indirect_call(b, sizeof(b), n))
			return 2;
	return 0;
}

/* glibc's PTR_MANGLE undone: what setjmp stored of a program counter. */
static uint64_t demangle(uint64_t w, uint64_t guard)
{
	return ((w >> 0x11) | (w << (64 - 0x11))) ^ guard;
}

/* w is a return address into rs: the call before it is in a range, and
 * not its last instruction (the call of a function that never returns:
 * nothing resumes there, and it is where the next function starts, whose
 * address a program's tables hold; nginx's do). */
static const struct addr_range *returns_into(int mem_fd, const struct range_set *rs, uint64_t w)
{
	const struct addr_range *r = range_set_find(rs, w - 1);

	return r && w != r->hi && after_call(mem_fd, w) ? r : NULL;
}

const struct addr_range *scan_words(int mem_fd, const struct range_set *rs, const uint64_t *words,
				    size_t n, const uint64_t *guard, size_t *i)
{
	uint64_t lo = rs->lo, span = rs->hi - rs->lo;

	for (size_t k = *i; k < n; k++) {
		const struct addr_range *r = NULL;
		uint64_t d = guard ? demangle(words[k], *guard) : 0;

		/* The hull tests inline: nearly every word fails them. */
		if (words[k] - 1 - lo < span)
			r = returns_into(mem_fd, rs, words[k]);
		if (!r && guard && d - 1 - lo < span)
			r = returns_into(mem_fd, rs, d);
		if (r) {
			*i = k;
			return r;
		}
	}
	*i = n;
	return NULL;
}

/* Mappings a suspended stack may live in: private, writable, not opus's
 * own patch memory and not the kernel's pages. */
static bool may_hold_a_stack(const struct proc_map *m)
{
	return m->perms[1] == 'w' && m->perms[3] == 'p' &&
	       strncmp(m->path, REGISTRY_PATH_PREFIX, strlen(REGISTRY_PATH_PREFIX)) &&
	       strcmp(m->path, "[vvar]") && strcmp(m->path, "[vsyscall]");
}

struct scan {
	int mem_fd, pagemap_fd; /* pagemap -1: every page is read */
	const struct range_set *rs;
	const uint64_t *guard; /* the pointer guard, when it could be read */
	uint64_t *buf;
	const struct addr_range *hit;
	uint64_t hit_at;
};

/* Pages [at, at + npages) that were ever touched, as a bit per page; all
 * of them when the pagemap cannot tell. */
static void touched_pages(const struct scan *s, uint64_t at, size_t npages, bool *touched)
{
	uint64_t entries[CHUNK_PAGES];
	ssize_t got = -1;

	if (s->pagemap_fd >= 0)
		got = pread(s->pagemap_fd, entries, npages * 8, (off_t)(at / PAGE * 8));
	for (size_t i = 0; i < npages; i++)
		touched[i] = got != (ssize_t)(npages * 8) || entries[i] & (PM_PRESENT | PM_SWAPPED);
}

/* Scan the touched runs of [at, at + npages). */
static void scan_chunk(struct scan *s, uint64_t at, size_t npages)
{
	bool touched[CHUNK_PAGES];

	touched_pages(s, at, npages, touched);
	for (size_t p = 0; p < npages && !s->hit;) {
		size_t run = 0, i = 0;

		while (p + run < npages && touched[p + run])
			run++;
		if (run && !mem_read(s->mem_fd, at + p * PAGE, s->buf, run * PAGE) &&
		    (s->hit = scan_words(s->mem_fd, s->rs, s->buf, run * PAGE / 8, s->guard, &i)))
			s->hit_at = at + p * PAGE + i * 8;
		p += run ? run : 1;
	}
}

/* Each thread's stack pointer (0 if unreadable), read once: every mapping
 * is compared with all of them, inside the stop. */
static uint64_t *stack_pointers(const struct threads *ts)
{
	uint64_t *sp = calloc(ts->n + 1, sizeof(*sp));
	struct user_regs_struct regs;

	for (size_t k = 0; sp && k < ts->n; k++)
		if (ptrace(PTRACE_GETREGS, ts->v[k].tid, NULL, &regs) == 0)
			sp[k] = (regs.rsp + 7) & ~7ull;
	return sp;
}

/* glibc keeps the pointer guard in the thread control block, at
 * %fs:0x30 (tcbhead_t.pointer_guard), the same in every thread. setjmp
 * stores the program counter mangled with it: a coroutine suspended by
 * setjmp and longjmp resumes where its jmp_buf says, and nowhere else. */
static int pointer_guard(int mem_fd, const struct threads *ts, uint64_t *guard)
{
	struct user_regs_struct regs;

	if (!ts->n || ptrace(PTRACE_GETREGS, ts->v[0].tid, NULL, &regs) < 0 || !regs.fs_base)
		return -ENOENT;
	return mem_read(mem_fd, regs.fs_base + 0x30, guard, sizeof(*guard));
}

/* Where the part of m in scope starts: below a thread's stack pointer is
 * dead, and above it only SCAN_ALL looks (m->end: nothing to scan). */
static uint64_t live_start(const struct proc_map *m, const uint64_t *sp, size_t n,
			   enum scan_scope scope)
{
	uint64_t lo = m->start;

	for (size_t k = 0; k < n; k++) {
		if (sp[k] >= m->start && sp[k] < m->end && scope != SCAN_ALL)
			return m->end;
		if (sp[k] >= m->start && sp[k] < m->end && sp[k] > lo)
			lo = sp[k];
	}
	return lo;
}

static int scan_mapping(struct scan *s, pid_t pid, const struct proc_map *m, uint64_t lo)
{
	if (m->end - lo > MAX_SCAN_EXTENT)
		return opus_err(-E2BIG,
				"process %d: the mapping at 0x%" PRIx64 "-0x%" PRIx64
				" (%s) is too large to scan for suspended stacks (%" PRIu64 " GiB)",
				(int)pid, m->start, m->end, *m->path ? m->path : "anonymous",
				(m->end - m->start) >> 30);
	if (lo % PAGE) { /* the rest of a thread's page after its stack pointer */
		size_t len = PAGE - lo % PAGE, i = 0;

		if (!mem_read(s->mem_fd, lo, s->buf, len) &&
		    (s->hit = scan_words(s->mem_fd, s->rs, s->buf, len / 8, s->guard, &i)))
			s->hit_at = lo + i * 8;
		lo += len;
	}
	for (uint64_t at = lo; at < m->end && !s->hit; at += CHUNK_PAGES * PAGE) {
		uint64_t len = m->end - at < CHUNK_PAGES * PAGE ? m->end - at : CHUNK_PAGES * PAGE;

		scan_chunk(s, at, len / PAGE);
	}
	return 0;
}

int scan_suspended(pid_t pid, int mem_fd, const struct threads *ts, const struct range_set *rs,
		   enum scan_scope scope)
{
	char path[64];
	struct scan s = {.mem_fd = mem_fd, .rs = rs, .buf = malloc(CHUNK_PAGES * PAGE)};
	uint64_t guard, *sp = stack_pointers(ts);
	struct proc_maps maps;
	int ret = s.buf && sp ? proc_maps_read(pid, &maps) : -ENOMEM;

	if (ret) {
		free(s.buf);
		free(sp);
		return ret;
	}
	if (!pointer_guard(mem_fd, ts, &guard))
		s.guard = &guard;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	s.pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	for (size_t i = 0; !ret && !s.hit && i < maps.n; i++)
		if (may_hold_a_stack(&maps.v[i]))
			ret = scan_mapping(&s, pid, &maps.v[i],
					   live_start(&maps.v[i], sp, ts->n, scope));
	proc_maps_free(&maps);
	free(sp);
	if (s.pagemap_fd >= 0)
		close(s.pagemap_fd);
	free(s.buf);
	if (!ret && s.hit)
		ret = opus_err(-EBUSY,
			       "process %d: a stack no thread is running (a suspended coroutine?) "
			       "holds a return address into %s, at 0x%" PRIx64,
			       (int)pid, s.hit->name, s.hit_at);
	return ret;
}
