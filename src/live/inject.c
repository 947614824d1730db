#include "inject.h"
#include "mem.h"
#include "util/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>

#define RED_ZONE   128
#define SCAN_MAX   (4u << 20)
#define SCAN_CHUNK (16u << 10)

/* The first syscall instruction in [lo, hi), read a chunk at a time (libc's
 * has one in its first pages: no need to copy megabytes per process). */
static int scan_for_syscall(int mem_fd, uint64_t lo, uint64_t hi, uint64_t *addr)
{
	uint8_t buf[SCAN_CHUNK];

	for (uint64_t at = lo; at + 1 < hi; at += sizeof(buf) - 1) {
		size_t len = hi - at < sizeof(buf) ? hi - at : sizeof(buf);
		uint8_t *hit;

		if (mem_read(mem_fd, at, buf, len))
			return -EIO;
		/* Chunks overlap by a byte: an instruction may straddle two. */
		if ((hit = memmem(buf, len, "\x0f\x05", 2))) {
			*addr = at + (uint64_t)(hit - buf);
			return 0;
		}
	}
	return -ENOENT;
}

int inject_find_syscall(int mem_fd, const struct proc_maps *maps, uint64_t *addr)
{
	/* Prefer libc's text: always mapped, always executable. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < maps->n; i++) {
			const struct proc_map *m = &maps->v[i];
			uint64_t hi = m->end - m->start < SCAN_MAX ? m->end : m->start + SCAN_MAX;

			if (m->perms[2] != 'x' || (pass == 0 && !strstr(m->path, "/libc")) ||
			    !strcmp(m->path, "[vsyscall]"))
				continue;
			if (scan_for_syscall(mem_fd, m->start, hi, addr) == 0)
				return 0;
		}
	}
	return opus_err(-ENOENT, "no syscall instruction found in the target's code");
}

int inject_syscall(struct injector *in, long nr, const uint64_t args[6], long *ret)
{
	struct user_regs_struct saved, regs;
	pid_t tid = in->t->tid;
	int r;

	if (ptrace(PTRACE_GETREGS, tid, NULL, &saved) < 0)
		return opus_err(-errno, "thread %d: cannot read registers: %s", (int)tid,
				strerror(errno));
	regs = saved;
	regs.rax = (uint64_t)nr;
	regs.orig_rax = (uint64_t)-1; /* not inside a syscall: no restart logic */
	regs.rdi = args[0];
	regs.rsi = args[1];
	regs.rdx = args[2];
	regs.r10 = args[3];
	regs.r8 = args[4];
	regs.r9 = args[5];
	regs.rip = in->syscall_insn;
	if (ptrace(PTRACE_SETREGS, tid, NULL, &regs) < 0)
		return opus_err(-errno, "thread %d: cannot set registers: %s", (int)tid,
				strerror(errno));
	do {
		if (ptrace(PTRACE_SINGLESTEP, tid, NULL, NULL) < 0) {
			r = -errno;
			break;
		}
		r = thread_wait_trap(in->t);
	} while (r == -EAGAIN);
	if (r == 0 && ptrace(PTRACE_GETREGS, tid, NULL, &regs) < 0)
		r = -errno;
	if (r == 0 && regs.rip != in->syscall_insn + 2)
		r = -EFAULT;
	if (r == -ESRCH)
		return opus_err(r, "thread %d exited during an injected syscall", (int)tid);
	if (ptrace(PTRACE_SETREGS, tid, NULL, &saved) < 0 && !r)
		r = -errno;
	if (!r)
		r = thread_repark(in->t);
	if (r)
		return opus_err(r, "thread %d: injected syscall %ld failed: %s", (int)tid, nr,
				strerror(-r));
	*ret = (long)regs.rax;
	return 0;
}

int inject_push_string(struct injector *in, const char *s, uint64_t *addr)
{
	struct user_regs_struct regs;
	size_t len = strlen(s) + 1;

	if (ptrace(PTRACE_GETREGS, in->t->tid, NULL, &regs) < 0)
		return opus_err(-errno, "thread %d: cannot read registers", (int)in->t->tid);
	*addr = (regs.rsp - RED_ZONE - len - 64) & ~(uint64_t)15;
	return mem_write(in->mem_fd, *addr, s, len);
}
