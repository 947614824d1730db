#include "scan.h"
#include "mem.h"
#include "proc.h"
#include "registry.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/file.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <unistd.h>

#define PAGE		4096u
#define CHUNK_PAGES	(SCAN_CHUNK_BYTES / PAGE)
#define PM_PRESENT	(1ull << 63)  /* /proc/PID/pagemap: in memory */
#define PM_SWAPPED	(1ull << 62)  /* or in swap: a stack may be there */
#define MAX_SCAN_EXTENT (64ull << 30) /* larger mappings are refused */
/* Below 32 MiB in scope, mostly the pages of a small heap, starting a
 * thread costs more than it saves; above, reading memory is most of the
 * pause and each CPU reads its share (1 GiB: 200 -> 100 ms on 2 CPUs).
 * Counted in bytes, not chunks: each thread's frames and TLS blocks are
 * chunks of a few KiB. */
#define PARALLEL_MIN_BYTES (32ull << 20)
#define MAX_SCAN_HELPERS   15u

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

/* From k on (a multiple of 8), the first block of 8 words of which one,
 * less d, falls in the hull [lo, lo + span), plain or (guarded)
 * demangled; the start of the last partial block (or n) if none. d is 1
 * for return addresses (the call is before the address), 0 for pointers.
 * Nearly every block fails, and a scan of a large heap is mostly this
 * loop: written as the smallest distance above lo over each block, with
 * no branch per word, it vectorises, and a clone for AVX-512 (whose
 * unsigned minimum and rotate it needs) tests a word in 0.3-0.5 ns where
 * a test per word took 1.1 ns: nginx's 1.1 MB, inside the stop, 150 ->
 * 50 us. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static size_t
next_block_in_hull(const uint64_t *w, size_t k, size_t n, uint64_t lo, uint64_t span,
		   uint64_t guard, bool guarded, uint64_t d)
{
	/* Unguarded, the demangled distance is made the largest: never the
	 * minimum. */
	uint64_t off = guarded ? 0 : UINT64_MAX;

	for (; k + 8 <= n; k += 8) {
		uint64_t m = UINT64_MAX;

		for (int j = 0; j < 8; j++) {
			uint64_t plain = w[k + j] - d - lo;
			uint64_t demangled = (demangle(w[k + j], guard) - d - lo) | off;

			m = plain < m ? plain : m;
			m = demangled < m ? demangled : m;
		}
		if (m < span)
			return k;
	}
	return k;
}

const struct addr_range *scan_words(int mem_fd, const struct range_set *rs, const uint64_t *words,
				    size_t n, const uint64_t *guard, size_t *i)
{
	uint64_t lo = rs->lo, span = rs->hi - rs->lo, g = guard ? *guard : 0;

	for (size_t k = *i; k < n; k++) {
		const struct addr_range *r = NULL;
		uint64_t d;

		if (k % 8 == 0 && (k = next_block_in_hull(words, k, n, lo, span, g, guard, 1)) >= n)
			break;
		/* A word of a block that has one, or of the ends. */
		d = demangle(words[k], g);
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

/* As scan_words, for any word that points into rs, plain or demangled
 * (glibc mangles the function pointers it keeps: atexit's, setjmp's). */
static const struct addr_range *scan_pointers(const struct range_set *rs, const uint64_t *words,
					      size_t n, const uint64_t *guard, size_t *i)
{
	uint64_t lo = rs->lo, span = rs->hi - rs->lo, g = guard ? *guard : 0;

	for (size_t k = *i; k < n; k++) {
		const struct addr_range *r = NULL;

		if (k % 8 == 0 && (k = next_block_in_hull(words, k, n, lo, span, g, guard, 0)) >= n)
			break;
		r = range_set_find(rs, words[k]);
		if (!r && guard)
			r = range_set_find(rs, demangle(words[k], g));
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

int scanner_open(struct scanner *sc, pid_t pid, int mem_fd, const struct pthread_layout *pl)
{
	char path[64];

	sc->pid = pid;
	sc->mem_fd = mem_fd;
	sc->pthread = *pl;
	sc->buf = malloc(SCAN_CHUNK_BYTES);
	if (!sc->buf)
		return -ENOMEM;
	memset(sc->buf, 0, SCAN_CHUNK_BYTES);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)proc_view_id(pid));
	sc->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	return 0;
}

void scanner_close(struct scanner *sc)
{
	if (sc->buf && sc->pagemap_fd >= 0)
		close(sc->pagemap_fd);
	free(sc->buf);
	memset(sc, 0, sizeof(*sc));
}

/* A part of one mapping that never crosses a multiple of SCAN_CHUNK_BYTES:
 * what one worker reads and scans at a time. */
struct chunk {
	uint64_t lo, hi;
	/* 1 + the index in ts of the thread whose live frames these are; 0:
	 * memory */
	size_t frames_of;
};

/* One scan of the stopped process, shared by its workers: each takes the
 * next chunk until none is left or one of them found a return address. */
struct scan {
	const struct scanner *sc;
	pid_t view_pid; /* the pid process_vm_readv knows the process by */
	const struct range_set *rs;
	const uint64_t *guard; /* the pointer guard, when it could be read */
	uint64_t deadline;     /* opus_now_ns() past which no chunk is begun; 0: none */
	struct chunk *v;
	size_t n, cap;
	uint64_t planned; /* the bytes of v, touched or not */
	atomic_size_t next;
	atomic_bool late; /* a chunk was left for the deadline */
	_Atomic(const struct addr_range *) hit;
	bool pointers; /* any pointer into rs, not return addresses */
	/* In live frames, a return address into these is not counted (the
	 * stack check unwound them); NULL: every word counts. */
	const struct range_set *unwound;
	uint64_t hit_at, hit_word; /* written by the worker that set hit */
	bool hit_mangled;	   /* hit_word is the word demangled */
	/* Per thread of ts: its live frames hold a word into rs (scan_dangling's
	 * frames_hold); NULL when not asked. */
	atomic_bool *frames_hold;
	atomic_uint_fast64_t bytes;
	unsigned dead_stacks; /* exited threads' stacks left alone */
};

/* Pages [at, at + npages) that were ever touched, as a bit per page; all
 * of them when the pagemap cannot tell. */
static void touched_pages(const struct scan *s, uint64_t at, size_t npages, bool *touched)
{
	uint64_t entries[CHUNK_PAGES];
	ssize_t got = -1;

	if (s->sc->pagemap_fd >= 0)
		got = pread(s->sc->pagemap_fd, entries, npages * 8, (off_t)(at / PAGE * 8));
	for (size_t i = 0; i < npages; i++)
		touched[i] = got != (ssize_t)(npages * 8) || entries[i] & (PM_PRESENT | PM_SWAPPED);
}

/* The touched parts of c, as spans of the process; how many. */
static size_t touched_spans(const struct scan *s, const struct chunk *c, struct iovec *spans)
{
	uint64_t first = c->lo / PAGE * PAGE;
	size_t npages = (c->hi - first + PAGE - 1) / PAGE, k = 0;
	bool touched[CHUNK_PAGES];

	touched_pages(s, first, npages, touched);
	for (size_t p = 0; p < npages;) {
		size_t run = 0;

		while (p + run < npages && touched[p + run])
			run++;
		if (run) {
			uint64_t lo = first + p * PAGE > c->lo ? first + p * PAGE : c->lo;
			uint64_t hi =
			    first + (p + run) * PAGE < c->hi ? first + (p + run) * PAGE : c->hi;

			spans[k++] = (struct iovec){(void *)(uintptr_t)lo, hi - lo};
		}
		p += run ? run : 1;
	}
	return k;
}

/* A span into buf: process_vm_readv copies once where the memory file
 * copies twice. False if it cannot be read whole (a page no one can read
 * holds no stack anyone runs on). */
static bool read_span(const struct scan *s, const struct iovec *span, void *buf)
{
	bool whole;

	return mem_read_spans(s->view_pid, s->sc->mem_fd, span, 1, buf, &whole) == 1;
}

/* As scan_pointers, in a thread's live frames: a word that returns into
 * the code the stack check unwound is left out. A live frame there is
 * that check's to find (unwound exactly), and unused slots of live frames
 * keep stale return addresses for good (nginx's master kept one of a
 * function main had called); any other word may be a live pointer: a
 * register a callee saved (keeper's), or a local. */
static const struct addr_range *scan_frame_pointers(const struct scan *s, const uint64_t *words,
						    size_t n, size_t *i)
{
	const struct addr_range *r;

	while ((r = scan_pointers(s->rs, words, n, s->guard, i)) && s->unwound &&
	       returns_into(s->sc->mem_fd, s->unwound, words[*i]))
		(*i)++;
	return r;
}

/* Each span read into the start of buf and scanned at once, while what
 * was read is in the cache (reading a whole chunk first and then scanning
 * it was slower on nginx's 160 touched pages). */
static void scan_chunk(struct scan *s, const struct chunk *c, uint64_t *buf)
{
	struct iovec spans[CHUNK_PAGES / 2 + 1];
	size_t k = touched_spans(s, c, spans);
	uint64_t bytes = 0;

	for (size_t j = 0; j < k && !atomic_load(&s->hit); j++) {
		const struct addr_range *r, *none = NULL;
		size_t i = 0;

		if (!read_span(s, &spans[j], buf))
			continue;
		bytes += spans[j].iov_len;
		if (c->frames_of) {
			/* A candidate only: noted, and the scan goes on. */
			if (scan_frame_pointers(s, buf, spans[j].iov_len / 8, &i))
				atomic_store(&s->frames_hold[c->frames_of - 1], true);
			continue;
		}
		if (s->pointers)
			r = scan_pointers(s->rs, buf, spans[j].iov_len / 8, s->guard, &i);
		else
			r = scan_words(s->sc->mem_fd, s->rs, buf, spans[j].iov_len / 8, s->guard,
				       &i);
		if (r && atomic_compare_exchange_strong(&s->hit, &none, r)) {
			s->hit_at = (uint64_t)(uintptr_t)spans[j].iov_base + i * 8;
			s->hit_word = buf[i];
			if (s->pointers && s->guard && !range_set_find(s->rs, buf[i])) {
				s->hit_word = demangle(buf[i], *s->guard);
				s->hit_mangled = true;
			}
		}
	}
	atomic_fetch_add(&s->bytes, bytes);
}

/* Take chunks until none is left, a return address was found or the
 * deadline has passed. */
static void scan_chunks(struct scan *s, uint64_t *buf)
{
	size_t i;

	while (!atomic_load(&s->hit) && !atomic_load(&s->late) &&
	       (i = atomic_fetch_add(&s->next, 1)) < s->n) {
		if (s->deadline && opus_now_ns() > s->deadline) {
			atomic_store(&s->late, true);
			break;
		}
		scan_chunk(s, &s->v[i], buf);
	}
}

static void *scan_helper(void *arg)
{
	struct scan *s = arg;
	uint64_t *buf = malloc(SCAN_CHUNK_BYTES);

	if (buf)
		scan_chunks(s, buf);
	free(buf);
	return NULL;
}

/* Helpers for a large scan: the process is stopped, so every CPU opus may
 * run on is free. They run at normal priority, whatever opus's own: a long
 * scan must not starve the rest of the machine. */
static size_t start_helpers(struct scan *s, pthread_t *th, size_t max)
{
	cpu_set_t cpus;
	pthread_attr_t attr;
	size_t n = 0, want;

	if (s->planned < PARALLEL_MIN_BYTES || sched_getaffinity(0, sizeof(cpus), &cpus))
		return 0;
	want = (size_t)CPU_COUNT(&cpus) - 1;
	if (want > max)
		want = max;
	if (pthread_attr_init(&attr))
		return 0;
	pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&attr, SCHED_OTHER);
	pthread_attr_setschedparam(&attr, &(struct sched_param){0});
	while (n < want && !pthread_create(&th[n], &attr, scan_helper, s))
		n++;
	pthread_attr_destroy(&attr);
	return n;
}

uint64_t scan_red_zone(const struct user_regs_struct *regs)
{
	const uint64_t red_zone = 128; /* bytes: the ABI's */

	return (int64_t)regs->orig_rax < 0 && regs->rsp >= red_zone ? red_zone : 0;
}

/* Each thread's stack pointer, then its thread pointer (0 if
 * unreadable), then where its live frames begin (scan_red_zone below
 * the first). Read once: every mapping is compared with all of
 * them, inside the stop. */
static uint64_t *stack_pointers(const struct threads *ts)
{
	uint64_t *sp = calloc(3 * ts->n + 1, sizeof(*sp));
	struct user_regs_struct regs;

	for (size_t k = 0; sp && k < ts->n; k++)
		if (ptrace(PTRACE_GETREGS, ts->v[k].tid, NULL, &regs) == 0) {
			sp[k] = (regs.rsp + 7) & ~7ull;
			sp[ts->n + k] = regs.fs_base;
			sp[2 * ts->n + k] = sp[k] - scan_red_zone(&regs);
		}
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

/* Is m, above the guard page below, the stack of a thread that has
 * exited, kept by glibc for the next one? glibc puts a thread's descriptor
 * at the end of each stack it allocates, aligned down to the static TLS's
 * alignment (a power of two, tried from 64 bytes to a page). There it
 * points at itself twice (tcb and self) and says whether the stack is in
 * use the way glibc itself asks (FREE_P in its stack cache): a tid of 0
 * or less is a thread gone, whose frames nothing runs again. A live
 * thread's own stack is never taken for one, wherever that thread runs
 * now: its tid is its id. The guard, which glibc maps below each stack it
 * allocates, says that m is that stack alone, not merged with memory
 * below that may hold a coroutine's stack. */
static bool dead_threads_stack(const struct scanner *sc, const struct proc_map *guard,
			       const struct proc_map *m)
{
	const struct pthread_layout *pl = &sc->pthread;

	if (!pl->size || !guard || guard->end != m->start || strncmp(guard->perms, "---p", 4) ||
	    m->end - m->start < pl->size + PAGE)
		return false;
	for (uint64_t align = 64; align <= PAGE; align *= 2) {
		uint64_t pd = (m->end - pl->size) & ~(align - 1), head[3];
		int32_t tid;

		/* pread, not mem_read: a miss here is no error to report. */
		if (pread(sc->mem_fd, head, sizeof(head), (off_t)pd) != sizeof(head) ||
		    head[0] != pd || head[2] != pd)
			continue;
		return pread(sc->mem_fd, &tid, sizeof(tid), (off_t)(pd + pl->tid)) == sizeof(tid) &&
		       tid <= 0;
	}
	return false;
}

/* [lo, hi) of m cut into chunks, appended to s; frames_of as in struct
 * chunk. */
static int add_chunks(struct scan *s, pid_t pid, const struct proc_map *m, uint64_t lo,
		      uint64_t hi_end, size_t frames_of)
{
	if (m->end - lo > MAX_SCAN_EXTENT)
		return opus_err(-E2BIG,
				"process %d: the mapping at 0x%" PRIx64 "-0x%" PRIx64
				" (%s) is too large to scan for suspended stacks (%" PRIu64 " GiB)",
				(int)pid, m->start, m->end, *m->path ? m->path : "anonymous",
				(m->end - m->start) >> 30);
	while (lo < hi_end) {
		uint64_t hi = (lo / SCAN_CHUNK_BYTES + 1) * SCAN_CHUNK_BYTES;

		if (OPUS_PUSH(s->v, s->n, s->cap))
			return -ENOMEM;
		s->v[s->n++] = (struct chunk){lo, hi < hi_end ? hi : hi_end, frames_of};
		s->planned += s->v[s->n - 1].hi - lo;
		lo = hi;
	}
	return 0;
}

/* In a mapping m that threads run on, what of it pointers may live in:
 * each such thread's live frames (when s->frames_hold asks for them),
 * from its stack pointer (its red zone, stopped in its own code) up to
 * its static TLS blocks, or to m's end where
 * its thread pointer is not in m (the main thread's, one on a coroutine's
 * stack); and those blocks and glibc's descriptor (its thread-specific
 * data), just below and above its thread pointer. Below a stack pointer
 * is dead. */
static int add_thread_parts(struct scan *s, pid_t pid, const struct proc_map *m, const uint64_t *sp,
			    const struct threads *ts)
{
	const struct pthread_layout *pl = &s->sc->pthread;
	int ret = 0;

	for (size_t k = 0; !ret && k < ts->n; k++) {
		uint64_t tp = sp[ts->n + k], live = sp[2 * ts->n + k], top = m->end;
		bool own = tp > sp[k] && tp < m->end;

		if (sp[k] < m->start || sp[k] >= m->end)
			continue;
		if (own)
			top = tp - pl->tls_below > sp[k] ? tp - pl->tls_below : sp[k];
		if (s->frames_hold)
			ret = add_chunks(s, pid, m, live > m->start ? live : m->start, top, k + 1);
		if (!ret && own && pl->size && pl->tls_below)
			ret = add_chunks(s, pid, m, top & ~7ull,
					 tp + pl->size < m->end ? tp + pl->size : m->end, 0);
	}
	return ret;
}

/* Every chunk of the stopped process in scope, in maps order. */
static int plan_chunks(struct scan *s, pid_t pid, const struct threads *ts, enum scan_scope scope)
{
	uint64_t *sp = stack_pointers(ts);
	struct proc_maps maps;
	int ret = sp ? proc_maps_read(pid, &maps) : -ENOMEM;

	if (ret) {
		free(sp);
		return ret;
	}
	for (size_t i = 0; !ret && i < maps.n; i++) {
		const struct proc_map *m = &maps.v[i];
		uint64_t lo = may_hold_a_stack(m) ? live_start(m, sp, ts->n, scope) : m->end;

		if (lo == m->start && dead_threads_stack(s->sc, i ? m - 1 : NULL, m))
			s->dead_stacks++;
		else if (lo < m->end)
			ret = add_chunks(s, pid, m, lo, m->end, 0);
		else if (s->pointers && may_hold_a_stack(m))
			ret = add_thread_parts(s, pid, m, sp, ts);
	}
	proc_maps_free(&maps);
	free(sp);
	return ret;
}

/* The scan of s's chunks in scope, shared with helper threads; 0,
 * -EBUSY (s->hit set, no message) or -ETIME. */
static int run_scan(struct scan *s, const struct threads *ts, enum scan_scope scope,
		    struct scan_tally *tally)
{
	pthread_t helpers[MAX_SCAN_HELPERS];
	uint64_t guard;
	size_t nhelpers;
	int ret = plan_chunks(s, s->sc->pid, ts, scope);

	if (!ret && !pointer_guard(s->sc->mem_fd, ts, &guard))
		s->guard = &guard;
	if (!ret) {
		nhelpers = start_helpers(s, helpers, MAX_SCAN_HELPERS);
		scan_chunks(s, s->sc->buf);
		for (size_t i = 0; i < nhelpers; i++)
			pthread_join(helpers[i], NULL);
	}
	free(s->v);
	s->guard = NULL;
	tally->bytes = atomic_load(&s->bytes);
	tally->dead_stacks = s->dead_stacks;
	if (!ret && s->hit)
		return -EBUSY;
	return !ret && s->late ? -ETIME : ret;
}

int scan_suspended(const struct scanner *sc, const struct threads *ts, const struct range_set *rs,
		   enum scan_scope scope, uint64_t deadline, struct scan_tally *tally)
{
	struct scan s = {
	    .sc = sc, .view_pid = proc_view_id(sc->pid), .rs = rs, .deadline = deadline};
	int ret = run_scan(&s, ts, scope, tally);

	if (ret == -EBUSY)
		ret = opus_err(-EBUSY,
			       "process %d: a stack no thread is running (a suspended coroutine?) "
			       "holds a return address into %s, at 0x%" PRIx64,
			       (int)sc->pid, s.hit->name, s.hit_at);
	return ret;
}

/* The registers register_pointers reads, in its order: those a function
 * keeps across calls, a syscall's arguments, then the rest. */
enum { KEPT_REGS = 6, SYSCALL_ARGS = 6, NREGS = 15 };
static const char *const reg_names[NREGS] = {"rbx", "rbp", "r12", "r13", "r14", "r15", "rdi", "rsi",
					     "rdx", "r10", "r8",  "r9",	 "rax", "rcx", "r11"};

/* Where the XSAVE area (and FXSAVE's, its first 512 bytes) keeps xmm0,
 * after the x87 state; what ptrace gives of it at most (AVX-512's whole
 * state is 2688 bytes). */
#define XSAVE_XMM_AT  160
#define XSAVE_XMM_END 416
#define XSAVE_MAX     4096

/* A vector register of a thread in its own code that points into rs,
 * any 64-bit lane of xmm, ymm or zmm (GCC's -O2 builds a pair of
 * pointers in one, movq and punpcklqdq, before it stores both), named in
 * name; NULL if none. Without XSAVE, the xmm registers alone. */
static const struct addr_range *vector_pointer(pid_t tid, const struct range_set *rs, char name[64])
{
	uint64_t area[XSAVE_MAX / 8];
	struct iovec iov = {area, sizeof(area)};

	if (ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &iov) < 0) {
		iov.iov_len = sizeof(struct user_fpregs_struct);
		if (ptrace(PTRACE_GETFPREGS, tid, NULL, area) < 0)
			return NULL;
	}
	for (size_t i = XSAVE_XMM_AT / 8; i < iov.iov_len / 8; i++) {
		const struct addr_range *hit = range_set_find(rs, area[i]);

		if (!hit)
			continue;
		if (i < XSAVE_XMM_END / 8)
			snprintf(name, 64, "xmm%zu", (i * 8 - XSAVE_XMM_AT) / 16);
		else
			snprintf(name, 64, "a vector register's upper lanes");
		return hit;
	}
	return NULL;
}

/* A register of a stopped thread that points into rs: those a function
 * keeps across calls; in a syscall, its arguments too (the kernel reads
 * the buffer of a blocked write as room frees up, and restarts the
 * syscall with them), not the scratch registers it clobbers; in the
 * thread's own code, every one, the vector registers too (not in a
 * syscall: its wrapper is a call, across which the caller keeps nothing
 * in them). */
static int register_pointers(const struct scanner *sc, const struct threads *ts,
			     const struct range_set *rs)
{
	struct user_regs_struct r;
	char name[64];

	for (size_t k = 0; k < ts->n; k++) {
		const struct addr_range *hit = NULL;
		bool in_syscall;
		size_t i = 0, n;

		/* An io_uring worker's are a stale copy of its maker's. */
		if (ptrace(PTRACE_GETREGS, ts->v[k].tid, NULL, &r) < 0 ||
		    proc_thread_io_worker(ts->v[k].tid, &r))
			continue;
		const uint64_t v[NREGS] = {r.rbx, r.rbp, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi,
					   r.rdx, r.r10, r.r8,	r.r9,  r.rax, r.rcx, r.r11};
		in_syscall = (int64_t)r.orig_rax >= 0;
		n = in_syscall ? KEPT_REGS + SYSCALL_ARGS : NREGS;
		while (i < n && !(hit = range_set_find(rs, v[i])))
			i++;
		if (hit)
			snprintf(name, sizeof(name), "%s%s", reg_names[i],
				 in_syscall && i >= KEPT_REGS
				     ? ", an argument of the syscall it is in"
				     : "");
		else if (!in_syscall)
			hit = vector_pointer(ts->v[k].tid, rs, name);
		if (hit)
			return opus_err(-EBUSY,
					"process %d: a register of thread %d points into %s (%s): "
					"unmapping it would leave that pointer dangling",
					(int)sc->pid, (int)ts->v[k].tid, hit->name, name);
	}
	return 0;
}

/* The mapping addr is in, as /proc/PID/maps shows it: where a pointer
 * was found, for the message that names it. */
static const char *mapping_name(pid_t pid, uint64_t addr, char out[256])
{
	struct proc_maps maps;
	const struct proc_map *m;

	snprintf(out, 256, "a mapping now gone");
	if (proc_maps_read(pid, &maps))
		return out;
	if ((m = proc_map_at(&maps, addr)))
		snprintf(out, 256, "in 0x%" PRIx64 "-0x%" PRIx64 " %s %s", m->start, m->end,
			 m->perms, *m->path ? m->path : "anonymous");
	proc_maps_free(&maps);
	return out;
}

int scan_dangling(const struct scanner *sc, const struct threads *ts, const struct range_set *rs,
		  const struct range_set *unwound, uint64_t deadline, bool *frames_hold,
		  struct scan_tally *tally)
{
	char where[256];
	atomic_bool *hold = frames_hold ? calloc(ts->n + 1, sizeof(*hold)) : NULL;
	struct scan s = {.sc = sc,
			 .view_pid = proc_view_id(sc->pid),
			 .rs = rs,
			 .unwound = unwound,
			 .frames_hold = hold,
			 .deadline = deadline,
			 .pointers = true};
	int ret = frames_hold && !hold ? -ENOMEM : register_pointers(sc, ts, rs);

	if (!ret)
		ret = run_scan(&s, ts, SCAN_BESIDE_THREADS, tally);
	for (size_t k = 0; hold && k < ts->n; k++)
		frames_hold[k] = atomic_load(&hold[k]);
	free(hold);
	/* Unlike a register, memory seldom lets go of a pointer in the time
	 * a retry waits (a freed block keeps it until reused): no retry. */
	if (ret == -EBUSY && s.hit)
		ret = opus_err(-EADDRINUSE,
			       "process %d: memory at 0x%" PRIx64 " (%s) holds a pointer into %s "
			       "(0x%" PRIx64 "%s: a function or constant only the patch has?): "
			       "unmapping it would leave that pointer dangling",
			       (int)sc->pid, s.hit_at, mapping_name(sc->pid, s.hit_at, where),
			       s.hit->name, s.hit_word,
			       s.hit_mangled ? ", mangled with glibc's pointer guard" : "");
	return ret;
}
