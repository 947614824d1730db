#include "unwind.h"
#include "util/err.h"

#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES 1024

struct unwinder {
	Dwfl *dwfl;
	pid_t pid;
};

static char *debuginfo_path;

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

int unwind_open(pid_t pid, struct unwinder **out)
{
	struct unwinder *u = calloc(1, sizeof(*u));
	int r;

	if (!u)
		return -ENOMEM;
	u->pid = pid;
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
};

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
	for (size_t i = 0; i < w->nranges; i++)
		if (pc >= w->ranges[i].lo && pc < w->ranges[i].hi) {
			w->hit = &w->ranges[i];
			return DWARF_CB_ABORT;
		}
	return ++w->depth < MAX_FRAMES ? DWARF_CB_OK : DWARF_CB_ABORT;
}

int unwind_check(struct unwinder *u, const struct threads *ts, const struct addr_range *ranges,
		 size_t nranges)
{
	for (size_t i = 0; i < ts->n; i++) {
		struct walk w = {.ranges = ranges, .nranges = nranges};

		/* An unwind that ends early (no CFI past some frame) has still
		 * checked every frame it reached. */
		dwfl_getthread_frames(u->dwfl, ts->v[i].tid, on_frame, &w);
		if (w.hit)
			return opus_err(-EBUSY, "process %d: thread %d is inside %s", (int)u->pid,
					(int)ts->v[i].tid, w.hit->name);
	}
	return 0;
}
