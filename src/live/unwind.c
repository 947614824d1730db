#include "unwind.h"
#include "mem.h"
#include "proc.h"
#include "util/err.h"
#include "registry.h"
#include <sys/user.h>
#include <sys/ptrace.h>
#include <inttypes.h>
#include "util/file.h"

#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES     1024
#define DWARF_REG_RSP  7
#define MAX_SCAN_BYTES (1u << 20)

struct unwinder {
	Dwfl *dwfl;
	pid_t pid;
	int mem_fd;
};

static char *debuginfo_path;

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

int unwind_open(pid_t pid, int mem_fd, struct unwinder **out)
{
	struct unwinder *u = calloc(1, sizeof(*u));
	int r;

	*out = NULL;
	if (!u)
		return -ENOMEM;
	u->pid = pid;
	u->mem_fd = mem_fd;
	u->dwfl = dwfl_begin(&callbacks);
	if (!u->dwfl) {
		free(u);
		return opus_err(-ENOMEM, "libdw: %s", dwfl_errmsg(-1));
	}
	/* Through a live thread when the main one has exited. */
	r = dwfl_linux_proc_report(u->dwfl, proc_view_id(pid));
	if (r == 0 && dwfl_report_end(u->dwfl, NULL, NULL) == 0 &&
	    dwfl_linux_proc_attach(u->dwfl, proc_view_id(pid), true) == 0) {
		*out = u;
		return 0;
	}
	opus_err(-EIO, "process %d: cannot prepare stack unwinding: %s", (int)pid,
		 r > 0 ? strerror(r) : dwfl_errmsg(-1));
	unwind_close(u);
	return -EIO;
}

void unwind_close(struct unwinder *u)
{
	if (!u)
		return;
	dwfl_end(u->dwfl);
	free(u);
}

/* The guarded functions found on the stacks, each once. */
struct busy {
	const char **names;
	size_t n, cap;
	pid_t first_tid;
};

static void note_busy(struct busy *b, const char *name, pid_t tid)
{
	for (size_t i = 0; i < b->n; i++)
		if (!strcmp(b->names[i], name))
			return;
	if (OPUS_PUSH(b->names, b->n, b->cap))
		return;
	if (!b->n)
		b->first_tid = tid;
	b->names[b->n++] = name;
}

struct walk {
	const struct addr_range *ranges;
	size_t nranges;
	struct busy *busy;
	pid_t tid;
	const struct addr_range *hit; /* the innermost hit */
	int depth;
	Dwarf_Word sp;	      /* stack pointer of the last frame reached */
	Dwarf_Word scan_from; /* stack pointer of the first frame in unknown code */
};

static const struct addr_range *find_range(const struct walk *w, uint64_t pc)
{
	for (size_t i = 0; i < w->nranges; i++)
		if (pc >= w->ranges[i].lo && pc < w->ranges[i].hi)
			return &w->ranges[i];
	return NULL;
}

static bool has_elf(Dwfl_Module *mod)
{
	Dwarf_Addr bias;

	return mod && dwfl_module_getelf(mod, &bias);
}

static int on_frame(Dwfl_Frame *frame, void *arg)
{
	struct walk *w = arg;
	const struct addr_range *r;
	bool activation;
	Dwarf_Addr pc;

	if (!dwfl_frame_pc(frame, &pc, &activation))
		return DWARF_CB_ABORT;
	/* A return address points after the call: the caller is at pc - 1. */
	if (!activation)
		pc--;
	dwfl_frame_reg(frame, DWARF_REG_RSP, &w->sp);
	/* Past code no module describes (an earlier patch), libdw can only
	 * guess; the stack from here up is scanned instead. */
	if (!w->scan_from &&
	    !has_elf(dwfl_addrmodule(dwfl_thread_dwfl(dwfl_frame_thread(frame)), pc)))
		w->scan_from = w->sp;
	/* Every hit, not just the first: the caller names them all. */
	if ((r = find_range(w, pc))) {
		note_busy(w->busy, r->name, w->tid);
		if (!w->hit)
			w->hit = r;
	}
	return ++w->depth < MAX_FRAMES ? DWARF_CB_OK : DWARF_CB_ABORT;
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

/* Where DWARF unwinding stops early (code without CFI, such as an earlier
 * patch), look at the rest of the stack conservatively: any word that is a
 * return address into a guarded range counts as a frame there. */
static const struct addr_range *scan_stack(const struct unwinder *u, struct walk *w)
{
	struct proc_maps maps;
	uint64_t *buf, end = 0;
	size_t len;

	/* Read afresh: the thread may be younger than any earlier read. */
	if (proc_maps_read(u->pid, &maps))
		return NULL;
	for (size_t i = 0; i < maps.n; i++)
		if (w->scan_from >= maps.v[i].start && w->scan_from < maps.v[i].end)
			end = maps.v[i].end;
	proc_maps_free(&maps);
	if (!end)
		return NULL;
	len = end - (w->scan_from & ~7ull);
	if (len > MAX_SCAN_BYTES)
		len = MAX_SCAN_BYTES;
	buf = malloc(len);
	if (!buf || mem_read(u->mem_fd, w->scan_from & ~7ull, buf, len)) {
		free(buf);
		return NULL;
	}
	for (size_t i = 0; i < len / 8; i++) {
		const struct addr_range *r = find_range(w, buf[i] - 1);

		if (r && after_call(u->mem_fd, buf[i])) {
			note_busy(w->busy, r->name, w->tid);
			if (!w->hit)
				w->hit = r;
		}
	}
	free(buf);
	return w->hit;
}

/* "thread T is inside F", and every other function seen busy. */
static int report_busy(pid_t pid, const struct busy *b)
{
	char more[2048] = "";
	size_t len = 0;

	for (size_t i = 1; i < b->n && len + 1 < sizeof(more); i++)
		len += (size_t)snprintf(more + len, sizeof(more) - len, "%s%s", i > 1 ? ", " : "",
					b->names[i]);
	return opus_err(-EBUSY, "process %d: thread %d is inside %s%s%s", (int)pid,
			(int)b->first_tid, b->names[0], b->n > 1 ? "; also on a stack: " : "",
			more);
}

int unwind_check(struct unwinder *u, const struct threads *ts, const struct addr_range *ranges,
		 size_t nranges)
{
	struct busy busy = {0};
	int ret = 0;

	for (size_t i = 0; i < ts->n && !ret; i++) {
		struct walk w = {
		    .ranges = ranges, .nranges = nranges, .busy = &busy, .tid = ts->v[i].tid};
		int r = dwfl_getthread_frames(u->dwfl, ts->v[i].tid, on_frame, &w);

		/* A thread that died under us (the process was killed) leaves
		 * libdwfl's per-thread state behind: ask it nothing more. */
		if (r < 0 && proc_thread_dead(ts->v[i].tid)) {
			ret =
			    opus_err(-ESRCH, "process %d: thread %d exited during the stack check",
				     (int)u->pid, (int)ts->v[i].tid);
			break;
		}

		opus_info("thread %d: %d frames, unwind %s%s", (int)ts->v[i].tid, w.depth,
			  r == 0 ? "complete" : "stopped: ", r == 0 ? "" : dwfl_errmsg(-1));

		if (r < 0 && !w.scan_from)
			w.scan_from = w.sp;
		if (w.scan_from)
			scan_stack(u, &w);
	}
	if (!ret && busy.n)
		ret = report_busy(u->pid, &busy);
	free(busy.names);
	return ret;
}

/* Where thread t's stack pointer is. */
static uint64_t thread_sp(const struct thread *t)
{
	struct user_regs_struct regs;

	return ptrace(PTRACE_GETREGS, t->tid, NULL, &regs) < 0 ? 0 : regs.rsp;
}

/* Mappings a suspended stack may live in: private, writable, not opus's
 * own patch memory and not the kernel's pages. */
static bool may_hold_a_stack(const struct proc_map *m)
{
	return m->perms[1] == 'w' && m->perms[3] == 'p' &&
	       strncmp(m->path, REGISTRY_PATH_PREFIX, strlen(REGISTRY_PATH_PREFIX)) &&
	       strcmp(m->path, "[vvar]") && strcmp(m->path, "[vsyscall]");
}

/* Scan [lo, hi) a megabyte at a time; the first hit goes to *hit. */
static int scan_region(const struct unwinder *u, struct walk *w, uint64_t lo, uint64_t hi,
		       uint64_t *hit)
{
	static const size_t chunk = 1u << 20;
	uint64_t *buf = malloc(chunk);

	if (!buf)
		return -ENOMEM;
	for (uint64_t at = lo & ~7ull; at < hi && !*hit; at += chunk) {
		size_t len = hi - at < chunk ? (size_t)(hi - at) & ~(size_t)7 : chunk;

		if (mem_read(u->mem_fd, at, buf, len))
			continue; /* a hole (guard page): nothing there */
		for (size_t i = 0; i < len / 8 && !*hit; i++) {
			const struct addr_range *r = find_range(w, buf[i] - 1);

			if (r && after_call(u->mem_fd, buf[i])) {
				w->hit = r;
				*hit = at + i * 8;
			}
		}
	}
	free(buf);
	return 0;
}

int unwind_scan_suspended(struct unwinder *u, const struct threads *ts,
			  const struct addr_range *ranges, size_t nranges)
{
	struct walk w = {.ranges = ranges, .nranges = nranges};
	struct proc_maps maps;
	uint64_t hit = 0;
	int ret = proc_maps_read(u->pid, &maps);

	for (size_t i = 0; !ret && !hit && i < maps.n; i++) {
		const struct proc_map *m = &maps.v[i];
		uint64_t lo = m->start;

		if (!may_hold_a_stack(m))
			continue;
		/* A thread's own stack: below its stack pointer is dead. */
		for (size_t k = 0; k < ts->n; k++) {
			uint64_t sp = thread_sp(&ts->v[k]);

			if (sp >= m->start && sp < m->end && sp > lo)
				lo = sp;
		}
		ret = scan_region(u, &w, lo, m->end, &hit);
	}
	proc_maps_free(&maps);
	if (!ret && hit)
		ret = opus_err(-EBUSY,
			       "process %d: a stack no thread is running (a suspended coroutine?) "
			       "holds a return address into %s, at 0x%" PRIx64,
			       (int)u->pid, w.hit->name, hit);
	return ret;
}
