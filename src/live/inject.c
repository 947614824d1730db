#include "inject.h"
#include "mem.h"
#include "proc.h"
#include "rseq.h"
#include "seccomp.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/fault.h"

#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <time.h>

#define RED_ZONE   128
#define SCAN_MAX   (4u << 20)
#define SCAN_CHUNK (16u << 10)
#define XSTATE_MAX (16u << 10)

/* The kernel's x86-64 signal frame (arch/x86/include/asm/sigframe.h and
 * uapi/asm/sigcontext.h); rt_sigreturn finds it 8 bytes below the stack
 * pointer, once `ret` has popped pretcode. */
struct k_sigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t di, si, bp, bx, dx, ax, cx, sp, ip, flags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2;
	uint64_t fpstate;
	uint64_t reserved1[8];
};

struct k_rt_sigframe {
	uint64_t pretcode;
	uint64_t uc_flags, uc_link;
	uint64_t ss_sp;
	int32_t ss_flags, ss_pad;
	uint64_t ss_size;
	struct k_sigcontext mc;
	uint64_t sigmask;
	uint8_t info[128];
};

_Static_assert(sizeof(struct k_sigcontext) == 256, "struct sigcontext is 256 bytes");
_Static_assert(offsetof(struct k_rt_sigframe, mc) == 48, "uc_mcontext follows uc_stack");

#define UC_FP_XSTATE	     0x1
#define UC_SIGCONTEXT_SS     0x2
#define UC_STRICT_RESTORE_SS 0x4
#define FP_XSTATE_MAGIC1     0x46505853u
#define FP_XSTATE_MAGIC2     0x46505845u
#define FX_SW_BYTES	     464 /* struct _fpx_sw_bytes in the fxsave area */

/* Where the kernel restarts an interrupted syscall (no handler runs). */
#define ERESTARTSYS_	       512
#define ERESTARTNOINTR_	       513
#define ERESTARTNOHAND_	       514
#define ERESTART_RESTARTBLOCK_ 516

static const uint8_t syscall_ret[] = {0x0f, 0x05, 0xc3};
static const uint8_t restore_rt[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};

/* The first occurrence of pat in [lo, hi), read a chunk at a time (libc
 * has its gadgets in its first pages: no need to copy megabytes). */
static int scan_for(int mem_fd, uint64_t lo, uint64_t hi, const uint8_t *pat, size_t n,
		    uint64_t *addr)
{
	uint8_t buf[SCAN_CHUNK];

	for (uint64_t at = lo; at + n <= hi; at += sizeof(buf) - (n - 1)) {
		size_t len = hi - at < sizeof(buf) ? hi - at : sizeof(buf);
		uint8_t *hit;

		if (mem_read(mem_fd, at, buf, len))
			return -EIO;
		/* Chunks overlap by n - 1 bytes: a pattern may straddle two. */
		if ((hit = memmem(buf, len, pat, n))) {
			*addr = at + (uint64_t)(hit - buf);
			return 0;
		}
	}
	return -ENOENT;
}

/* The first occurrence of pat in the file behind mapping m, found in the
 * file (no copy out of the target; libc is searched once per cache), where
 * the target holds the same bytes. */
static int scan_file(struct file_cache *c, pid_t pid, int mem_fd, const struct proc_map *m,
		     uint64_t hi, const uint8_t *pat, size_t n, uint64_t *addr)
{
	char path[4200];
	uint8_t have[16];
	struct cached_file *f;
	int64_t off;

	if (files_open_map(c, pid, m, path, sizeof(path), &f))
		return -ENOENT;
	off = files_find_bytes(f, pat, n, m->offset, hi - m->start);
	if (off < 0)
		return -ENOENT;
	*addr = m->start + (uint64_t)off - m->offset;
	return n <= sizeof(have) && !mem_read(mem_fd, *addr, have, n) && !memcmp(have, pat, n)
		   ? 0
		   : -ENOENT;
}

static int find_pattern(struct file_cache *c, pid_t pid, int mem_fd, const struct proc_maps *maps,
			const uint8_t *pat, size_t n, uint64_t *addr)
{
	/* Prefer libc's text: always mapped, always executable. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < maps->n; i++) {
			const struct proc_map *m = &maps->v[i];
			uint64_t hi = m->end - m->start < SCAN_MAX ? m->end : m->start + SCAN_MAX;

			if (m->perms[2] != 'x' || (pass == 0 && !strstr(m->path, "/libc")) ||
			    !strcmp(m->path, "[vsyscall]") || !strncmp(m->path, "/memfd:", 7))
				continue;
			if (scan_file(c, pid, mem_fd, m, hi, pat, n, addr) == 0 ||
			    scan_for(mem_fd, m->start, hi, pat, n, addr) == 0)
				return 0;
		}
	return -ENOENT;
}

int inject_find_gadgets(struct file_cache *c, pid_t pid, int mem_fd, const struct proc_maps *maps,
			struct inject_gadgets *g)
{
	if (find_pattern(c, pid, mem_fd, maps, syscall_ret, sizeof(syscall_ret), &g->syscall_ret))
		return opus_err(-ENOENT, "no 'syscall; ret' instruction pair in the target's code");
	if (find_pattern(c, pid, mem_fd, maps, restore_rt, sizeof(restore_rt), &g->restore_rt))
		return opus_err(-ENOENT, "no rt_sigreturn sequence (__restore_rt) in the target's "
					 "code: its threads could not be restored if opus died");
	return 0;
}

/* The FPU, SSE and AVX state as XSAVE would store it, with the software
 * bytes and trailing magic a signal frame carries; or, where the kernel
 * gives no XSAVE area, the legacy FXSAVE one. Returns its size. */
static int fpu_state(pid_t tid, uint8_t *buf, size_t cap, bool *xstate)
{
	struct iovec iov = {buf, cap - 4};
	uint32_t magic2 = FP_XSTATE_MAGIC2, sw[3];

	*xstate = false;
	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_X86_XSTATE, &iov) == 0 && iov.iov_len > 512) {
		memcpy(sw, buf + FX_SW_BYTES, sizeof(sw));
		if (sw[0] == FP_XSTATE_MAGIC1 && sw[1] == iov.iov_len + 4) {
			memcpy(buf + iov.iov_len, &magic2, 4);
			*xstate = true;
			return (int)iov.iov_len + 4;
		}
	}
	if (ptrace(PTRACE_GETFPREGS, tid, NULL, buf) < 0)
		return -errno;
	memset(buf + FX_SW_BYTES, 0, 512 - FX_SW_BYTES); /* no sw bytes: FXSAVE only */
	return 512;
}

/* The state rt_sigreturn is to restore: the thread as it was, an
 * interrupted syscall put on the path the kernel's restart would take. */
static void frame_regs(const struct user_regs_struct *r, struct k_sigcontext *mc)
{
	uint64_t ax = r->rax, ip = r->rip;
	int64_t err = (int64_t)r->rax;

	if ((int64_t)r->orig_rax >= 0 &&
	    (err == -ERESTARTSYS_ || err == -ERESTARTNOINTR_ || err == -ERESTARTNOHAND_ ||
	     err == -ERESTART_RESTARTBLOCK_)) {
		ax = err == -ERESTART_RESTARTBLOCK_ ? SYS_restart_syscall : r->orig_rax;
		ip -= 2;
	}
	*mc = (struct k_sigcontext){.r8 = r->r8,
				    .r9 = r->r9,
				    .r10 = r->r10,
				    .r11 = r->r11,
				    .r12 = r->r12,
				    .r13 = r->r13,
				    .r14 = r->r14,
				    .r15 = r->r15,
				    .di = r->rdi,
				    .si = r->rsi,
				    .bp = r->rbp,
				    .bx = r->rbx,
				    .dx = r->rdx,
				    .ax = ax,
				    .cx = r->rcx,
				    .sp = r->rsp,
				    .ip = ip,
				    .flags = r->eflags,
				    .cs = (uint16_t)r->cs,
				    .ss = (uint16_t)r->ss};
}

/* The thread's blocked set, as /proc shows it (SigBlk), without a read of
 * /proc. */
static int blocked_signals(pid_t tid, uint64_t *mask)
{
	return ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(*mask), mask) < 0 ? -errno : 0;
}

/* Block every signal in the thread for the injected syscalls that follow.
 * A signal taken meanwhile could not run its handler on the injection's
 * registers, and sent again later it would lose its siginfo (a POSIX
 * timer's sival_ptr: measured, the target's handler dereferenced NULL).
 * Blocked, it waits in the kernel as it came, or goes to another thread,
 * and is delivered once the thread has its own set back (real_mask, read
 * by write_frame; thread_end_injection). Done with the registers already
 * on the frame: were opus to die, rt_sigreturn restores the set the frame
 * holds. */
static int block_signals(struct thread *t)
{
	uint64_t all = ~0ull;

	if (t->masked)
		return 0;
	if (ptrace(PTRACE_SETSIGMASK, t->tid, (void *)sizeof(all), &all) < 0)
		return opus_err(-errno, "thread %d: cannot block its signals: %s", (int)t->tid,
				strerror(errno));
	t->masked = true;
	return 0;
}

/* Write the frame below the red zone (and below pushed data); returns the
 * stack pointer that leads rt_sigreturn to it. The thread's blocked set,
 * which the frame holds, is kept in its real_mask too. */
static int write_frame(struct injector *in, const struct user_regs_struct *saved, uint64_t *sp)
{
	uint8_t *fpu = aligned_alloc(64, XSTATE_MAX);
	struct k_rt_sigframe f = {0};
	uint64_t fp, frame;
	bool xstate = false;
	int size = fpu ? fpu_state(in->t->tid, fpu, XSTATE_MAX, &xstate) : -ENOMEM;
	int ret = size < 0 ? size : blocked_signals(in->t->tid, &in->t->real_mask);

	if (ret) {
		free(fpu);
		return opus_err(ret, "thread %d: cannot save its state: %s", (int)in->t->tid,
				strerror(-ret));
	}
	fp = (saved->rsp - RED_ZONE - in->pushed - (uint64_t)size) & ~63ull;
	frame = ((fp - sizeof(f)) & ~15ull) - 8;
	f.pretcode = in->g.restore_rt;
	f.uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | (xstate ? UC_FP_XSTATE : 0);
	/* An alternate stack of size 0 is refused: the thread's stays as is. */
	f.ss_sp = 0, f.ss_flags = 0, f.ss_size = 0;
	frame_regs(saved, &f.mc);
	f.mc.fpstate = fp;
	f.sigmask = in->t->real_mask;
	ret = mem_write(in->mem_fd, fp, fpu, (size_t)size);
	if (!ret)
		ret = mem_write(in->mem_fd, frame, &f, sizeof(f));
	free(fpu);
	if (ret)
		return opus_err(ret, "thread %d: no room on its stack below 0x%llx",
				(int)in->t->tid, (unsigned long long)saved->rsp);
	*sp = frame;
	return 0;
}

/* PTRACE_SYSCALL until the next syscall stop, passing over the others. */
static int to_syscall_stop(struct thread *t)
{
	int r;

	do {
		if (ptrace(PTRACE_SYSCALL, t->tid, NULL, NULL) < 0)
			return -ESRCH;
		r = thread_wait_syscall(t);
	} while (r == -EAGAIN);
	return r;
}

/* The first syscall of a run saves the thread's state in a signal frame;
 * the next ones reuse it (the thread has not run in between). */
static int begin_injection(struct injector *in)
{
	struct thread *t = in->t;
	int r;

	if (t->injecting)
		return 0;
	if (ptrace(PTRACE_GETREGS, t->tid, NULL, &t->real) < 0)
		return opus_err(-errno, "thread %d: cannot read registers: %s", (int)t->tid,
				strerror(errno));
	/* The frame, which restores the thread should opus die, holds the
	 * registers it goes on with. */
	rseq_abort_section(t->tid, in->mem_fd, &t->real);
	if ((r = write_frame(in, &t->real, &t->frame_sp)))
		return r;
	t->injecting = true;
	return 0;
}

/* Between two injected syscalls the thread is left at the second's
 * syscall-exit stop, about to run the gadget's ret into __restore_rt:
 * should opus die there, the frame restores it as it does mid-syscall.
 * thread_end_injection (ptrace.c) gives the registers back. */
int inject_syscall(struct injector *in, long nr, const uint64_t args[6], long *ret)
{
	struct user_regs_struct regs;
	pid_t tid = in->t->tid;
	int r;

	/* Never one the target's seccomp filters would kill or trap it for. */
	if (in->filters && (r = seccomp_check(in->filters, nr, args, in->g.syscall_ret + 2)))
		return r;
	if ((r = begin_injection(in)))
		return r;
	regs = in->t->real;
	regs.rax = (uint64_t)nr;
	regs.orig_rax = (uint64_t)-1; /* not inside a syscall: no restart logic */
	regs.rdi = args[0];
	regs.rsi = args[1];
	regs.rdx = args[2];
	regs.r10 = args[3];
	regs.r8 = args[4];
	regs.r9 = args[5];
	regs.rip = in->g.syscall_ret;
	regs.rsp = in->t->frame_sp;
	/* From here, were opus to die, the thread would run the syscall and
	 * return through __restore_rt to the frame: restored as it was. */
	if (ptrace(PTRACE_SETREGS, tid, NULL, &regs) < 0) {
		r = opus_err(-errno, "thread %d: cannot set registers: %s", (int)tid,
			     strerror(errno));
		thread_end_injection(in->t);
		return r;
	}
	in->t->parked_interrupted = false; /* it ends at a syscall stop */
	r = block_signals(in->t);
	if (!r)
		r = opus_fault("setting up an injected syscall");
	if (!r)
		r = to_syscall_stop(in->t); /* entry */
	if (!r)
		r = to_syscall_stop(in->t); /* exit */
	if (!r && ptrace(PTRACE_GETREGS, tid, NULL, &regs) < 0)
		r = -errno;
	if (!r && regs.rip != in->g.syscall_ret + 2)
		r = -EFAULT;
	if (!r) {
		*ret = (long)regs.rax;
		return 0;
	}
	if (r == -ESRCH) {
		in->t->injecting = in->t->masked = false;
		return opus_err(r, "thread %d exited during an injected syscall", (int)tid);
	}
	thread_end_injection(in->t);
	if (r == -EIO && strstr(opus_errmsg(), "injected fault"))
		return r;
	return opus_err(r, "thread %d: injected syscall %ld failed: %s", (int)tid, nr,
			strerror(-r));
}

int inject_push(struct injector *in, const void *data, size_t len, uint64_t *addr)
{
	struct user_regs_struct regs;

	if (ptrace(PTRACE_GETREGS, in->t->tid, NULL, &regs) < 0)
		return opus_err(-errno, "thread %d: cannot read registers", (int)in->t->tid);
	in->pushed += (len + 15) & ~(size_t)15;
	*addr = (regs.rsp - RED_ZONE - in->pushed) & ~(uint64_t)15;
	return mem_write(in->mem_fd, *addr, data, len);
}

int inject_push_string(struct injector *in, const char *s, uint64_t *addr)
{
	return inject_push(in, s, strlen(s) + 1, addr);
}

/* The batch stub: rbx = the batch (struct k_batch, from its n), r12 its
 * current call, r13 the index. Each call's arguments taken from earlier
 * results are filled in, the call made, its result stored and the count
 * of calls run raised; a failed call ends the batch. Then it waits in
 * select (no restart block of the thread's is touched) for opus, which
 * stops it there and gives it its own registers back; should opus be
 * gone, the wait times out and ret goes through __restore_rt to the
 * signal frame, as an injected syscall's does. */
static const uint8_t batch_code[] = {
    0x48, 0x89, 0xfb,			/* 00: mov %rdi, %rbx */
    0x4c, 0x8d, 0x63, 0x10,		/* 03: lea 16(%rbx), %r12 */
    0x45, 0x31, 0xed,			/* 07: xor %r13d, %r13d */
    0x4c, 0x3b, 0x2b,			/* 0a: next: cmp (%rbx), %r13 */
    0x73, 0x5f,				/* 0d: jae wait */
    0x31, 0xc9,				/* 0f: xor %ecx, %ecx */
    0x49, 0x8b, 0x44, 0xcc, 0x38,	/* 11: args: mov 56(%r12,%rcx,8), %rax: from[k] */
    0x48, 0x85, 0xc0,			/* 16: test %rax, %rax */
    0x78, 0x0e,				/* 19: js literal */
    0x48, 0x6b, 0xc0, 0x70,		/* 1b: imul $112, %rax, %rax */
    0x48, 0x8b, 0x44, 0x03, 0x78,	/* 1f: mov 120(%rbx,%rax), %rax: its result */
    0x49, 0x89, 0x44, 0xcc, 0x08,	/* 24: mov %rax, 8(%r12,%rcx,8) */
    0xff, 0xc1,				/* 29: literal: inc %ecx */
    0x83, 0xf9, 0x06,			/* 2b: cmp $6, %ecx */
    0x72, 0xe1,				/* 2e: jb args */
    0x49, 0x8b, 0x04, 0x24,		/* 30: mov (%r12), %rax */
    0x49, 0x8b, 0x7c, 0x24, 0x08,	/* 34: mov 8(%r12), %rdi */
    0x49, 0x8b, 0x74, 0x24, 0x10,	/* 39: mov 16(%r12), %rsi */
    0x49, 0x8b, 0x54, 0x24, 0x18,	/* 3e: mov 24(%r12), %rdx */
    0x4d, 0x8b, 0x54, 0x24, 0x20,	/* 43: mov 32(%r12), %r10 */
    0x4d, 0x8b, 0x44, 0x24, 0x28,	/* 48: mov 40(%r12), %r8 */
    0x4d, 0x8b, 0x4c, 0x24, 0x30,	/* 4d: mov 48(%r12), %r9 */
    0x0f, 0x05,				/* 52: syscall */
    0x49, 0x89, 0x44, 0x24, 0x68,	/* 54: mov %rax, 104(%r12) */
    0x49, 0xff, 0xc5,			/* 59: inc %r13 */
    0x4c, 0x89, 0x6b, 0x08,		/* 5c: mov %r13, 8(%rbx): ran */
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, /* 60: cmp $-4095, %rax */
    0x73, 0x06,				/* 66: jae wait */
    0x49, 0x83, 0xc4, 0x70,		/* 68: add $112, %r12 */
    0xeb, 0x9c,				/* 6c: jmp next */
    0xb8, 0x17, 0x00, 0x00, 0x00,	/* 6e: wait: mov $SYS_select, %eax */
    0x31, 0xff,				/* 73: xor %edi, %edi */
    0x31, 0xf6,				/* 75: xor %esi, %esi */
    0x31, 0xd2,				/* 77: xor %edx, %edx */
    0x45, 0x31, 0xd2,			/* 79: xor %r10d, %r10d */
    0x4c, 0x8d, 0x43, 0xf0,		/* 7c: lea -16(%rbx), %r8: the timeout */
    0x0f, 0x05,				/* 80: syscall */
    0xc3,				/* 82: ret, to __restore_rt */
};

#define BATCH_AFTER_CALL 0x54 /* a call's result in rax, not yet stored */
#define BATCH_WAIT_S	 1
#define BATCH_POLL_NS	 (20 * 1000)
#define BATCH_LIMIT_NS	 (900ull * 1000 * 1000) /* under the stub's own wait */

struct k_call {
	int64_t nr;
	uint64_t args[6];
	int64_t from[6];
	int64_t ret;
};

/* As the stub reads it: the timeout 16 bytes before n. */
struct k_batch {
	int64_t wait_s, wait_us;
	uint64_t n, ran;
	struct k_call calls[INJECT_BATCH_MAX];
};

_Static_assert(sizeof(struct k_call) == 112, "the stub steps 112 bytes a call");
_Static_assert(offsetof(struct k_batch, n) == 16 && offsetof(struct k_batch, calls) == 32,
	       "the stub finds ran at n + 8 and the calls at n + 16");
_Static_assert(sizeof(batch_code) <= INJECT_BATCH_STUB_SIZE, "the stub fits its slot");

void inject_batch_stub(uint8_t out[INJECT_BATCH_STUB_SIZE])
{
	memset(out, 0xcc, INJECT_BATCH_STUB_SIZE);
	memcpy(out, batch_code, sizeof(batch_code));
}

/* Is the batch over: every call ran, or the last that ran failed? */
static bool batch_over(uint64_t ran, int64_t last, size_t n)
{
	return ran >= n || (ran && inject_failed(last));
}

/* The batch in the thread's memory, at b: over, as far as a read shows. */
static bool batch_done(int mem_fd, uint64_t b, size_t n)
{
	uint64_t ran = 0;
	int64_t last = 0;

	if (mem_read(mem_fd, b + offsetof(struct k_batch, ran), &ran, sizeof(ran)))
		return true; /* let the stop say what happened */
	if (ran && ran < n &&
	    mem_read(mem_fd,
		     b + offsetof(struct k_batch, calls) + (ran - 1) * sizeof(struct k_call) +
			 offsetof(struct k_call, ret),
		     &last, sizeof(last)))
		return true;
	return batch_over(ran, last, n);
}

/* Let the thread run the stub until the batch is over (or the deadline:
 * a call that blocks), then stop it: 0 once stopped in the stub, wherever
 * (the results say how far it got), its registers in *r; -ESRCH if it
 * died, or left the stub (the wait timed out: it has its own registers
 * back). */
static int run_stub(struct injector *in, uint64_t stub, uint64_t b, size_t n,
		    struct user_regs_struct *r)
{
	struct thread *t = in->t;
	uint64_t deadline = opus_now_ns() + BATCH_LIMIT_NS;

	if (ptrace(PTRACE_CONT, t->tid, NULL, NULL) < 0)
		return -ESRCH;
	t->stopped = false;
	if (opus_fault("waiting for a batch of injected syscalls"))
		deadline = 0; /* stopped at once, wherever it is in the stub */
	while (!batch_done(in->mem_fd, b, n) && opus_now_ns() < deadline)
		nanosleep(&(struct timespec){0, BATCH_POLL_NS}, NULL);
	if (thread_stop_again(t) || ptrace(PTRACE_GETREGS, t->tid, NULL, r) < 0)
		return -ESRCH;
	if (r->rip < stub || r->rip >= stub + sizeof(batch_code)) {
		t->injecting = t->masked = false;
		return -ESRCH;
	}
	return 0;
}

int inject_batch(struct injector *in, uint64_t stub, const struct inject_call *calls, size_t n,
		 long *rets, size_t *ran)
{
	struct k_batch b = {.wait_s = BATCH_WAIT_S, .n = n};
	struct user_regs_struct regs;
	uint64_t at;
	int r;

	*ran = 0;
	if (!stub || !n || n > INJECT_BATCH_MAX || (in->filters && in->filters->mode))
		return -ENOTSUP;
	for (size_t i = 0; i < n; i++) {
		b.calls[i] = (struct k_call){.nr = calls[i].nr, .ret = -ECANCELED};
		memcpy(b.calls[i].args, calls[i].args, sizeof(b.calls[i].args));
		for (int k = 0; k < 6; k++)
			b.calls[i].from[k] = calls[i].from[k] > 0 && calls[i].from[k] <= (int)i
						 ? calls[i].from[k] - 1
						 : -1;
	}
	if ((r = inject_push(in, &b, sizeof(b), &at)) || (r = begin_injection(in)))
		return r;
	regs = in->t->real;
	regs.rip = stub;
	regs.rsp = in->t->frame_sp;
	regs.rdi = at + offsetof(struct k_batch, n);
	regs.orig_rax = (uint64_t)-1;
	if (ptrace(PTRACE_SETREGS, in->t->tid, NULL, &regs) < 0)
		r = opus_err(-errno, "thread %d: cannot set registers: %s", (int)in->t->tid,
			     strerror(errno));
	if (!r)
		r = block_signals(in->t);
	if (!r)
		r = opus_fault("setting up a batch of injected syscalls");
	if (!r)
		r = run_stub(in, stub, at, n, &regs);
	if (r == -ESRCH)
		return opus_err(r, "thread %d died or left its injected syscalls", (int)in->t->tid);
	if (r) {
		thread_end_injection(in->t);
		return r;
	}
	in->t->parked_interrupted = true;
	if (mem_read(in->mem_fd, at, &b, sizeof(b)))
		return opus_err(-EIO, "thread %d: cannot read its injected syscalls' results",
				(int)in->t->tid);
	/* Stopped right after a call, before the stub stored its result. */
	if (regs.rip == stub + BATCH_AFTER_CALL && b.ran < n)
		b.calls[b.ran++].ret = (int64_t)regs.rax;
	*ran = b.ran;
	for (size_t i = 0; i < b.ran && i < n; i++)
		rets[i] = b.calls[i].ret;
	if (!batch_over(b.ran, b.ran ? b.calls[b.ran - 1].ret : 0, n))
		return opus_err(-ETIME, "thread %d: %zu of %zu injected syscalls ran in %.1f s",
				(int)in->t->tid, (size_t)b.ran, n, BATCH_LIMIT_NS / 1e9);
	return 0;
}
