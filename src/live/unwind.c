#include "unwind.h"
#include "mem.h"
#include "proc.h"
#include "util/err.h"

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
	r = dwfl_linux_proc_report(u->dwfl, pid);
	if (r == 0 && dwfl_report_end(u->dwfl, NULL, NULL) == 0 &&
	    dwfl_linux_proc_attach(u->dwfl, pid, true) == 0) {
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

struct walk {
	const struct addr_range *ranges;
	size_t nranges;
	const struct addr_range *hit;
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
	w->hit = find_range(w, pc);
	if (w->hit)
		return DWARF_CB_ABORT;
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
static const struct addr_range *scan_stack(const struct unwinder *u, const struct walk *w)
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
			free(buf);
			return r;
		}
	}
	free(buf);
	return NULL;
}

int unwind_check(struct unwinder *u, const struct threads *ts, const struct addr_range *ranges,
		 size_t nranges)
{
	for (size_t i = 0; i < ts->n; i++) {
		struct walk w = {.ranges = ranges, .nranges = nranges};
		int r = dwfl_getthread_frames(u->dwfl, ts->v[i].tid, on_frame, &w);

		/* A thread that died under us (the process was killed) leaves
		 * libdwfl's per-thread state behind: ask it nothing more. */
		if (r < 0 && proc_thread_dead(ts->v[i].tid))
			return opus_err(-ESRCH,
					"process %d: thread %d exited during the stack check",
					(int)u->pid, (int)ts->v[i].tid);

		opus_info("thread %d: %d frames, unwind %s%s", (int)ts->v[i].tid, w.depth,
			  r == 0 ? "complete" : "stopped: ", r == 0 ? "" : dwfl_errmsg(-1));

		if (!w.hit && r < 0 && !w.scan_from)
			w.scan_from = w.sp;
		if (!w.hit && w.scan_from)
			w.hit = scan_stack(u, &w);
		if (w.hit)
			return opus_err(-EBUSY, "process %d: thread %d is inside %s", (int)u->pid,
					(int)ts->v[i].tid, w.hit->name);
	}
	return 0;
}
