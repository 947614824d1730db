#include "exits.h"
#include "dispatch.h"
#include "mem.h"
#include "proc.h"
#include "seccomp.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/fault.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>

#define STUB_SIZE	 64
#define STUB_SYSCALL_END 11		       /* the stub's pc right after its syscall */
#define STUB_MAGIC	 0x746978657375706full /* "opusexit" */
#define WAIT_NS		 (200 * 1000)

/* One stub: its code, then what it was planted for. The code leaves rax
 * and rdx (return values) and every other register as the return left
 * them; below the caller's stack pointer nothing is live at a return. */
struct stub {
	uint8_t code[24];
	uint64_t ret;  /* where the return leads: the code jumps there */
	uint64_t slot; /* the stack word sent here; 0 once disarmed */
	uint64_t tid;
	uint64_t magic; /* STUB_MAGIC: this stub was used */
	uint8_t pad[STUB_SIZE - 56];
};

_Static_assert(sizeof(struct stub) == STUB_SIZE, "one stub is 64 bytes");

static const uint8_t stub_code[24] = {
    0x50,			     /* push %rax */
    0x51,			     /* push %rcx */
    0x41, 0x53,			     /* push %r11 */
    0xb8, SYS_getpid, 0,    0, 0,    /* mov $SYS_getpid, %eax */
    0x0f, 0x05,			     /* syscall: the stop opus waits for */
    0x41, 0x5b,			     /* pop %r11 */
    0x59,			     /* pop %rcx */
    0x58,			     /* pop %rax */
    0xff, 0x25,	      0x03, 0, 0, 0, /* jmp *ret(%rip) */
    0xcc, 0xcc,	      0xcc,	     /* up to ret */
};

/* The stub of a per-thread transition: it marks its thread switched in the
 * dispatchers' table (one aligned store, no register touched), then goes
 * where the return would have. No syscall: nothing follows the thread. */
#define SWITCH_AT_SLOT 3  /* the store's rip-relative displacement */
#define SWITCH_END     11 /* the store's end, which that displacement is from */
static const uint8_t switch_code[24] = {
    0x48, 0xc7, 0x05, 0,    0,	  0,	0,    DISPATCH_SWITCHED, 0, 0, 0, /* movq $1, slot(%rip) */
    0xff, 0x25, 0x07, 0,    0,	  0,					  /* jmp *ret(%rip) */
    0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,				  /* up to ret */
};

struct exits_area exits_of(uint64_t exits, uint64_t table)
{
	return (struct exits_area){exits, table > exits ? table - exits : EXITS_PAGE};
}

/* Every stub of a into *v, malloc'd (*n of them; the caller frees it). */
static int read_stubs(int mem_fd, struct exits_area a, struct stub **v, size_t *n)
{
	*n = a.size / STUB_SIZE;
	if (!(*v = malloc(a.size)))
		return -ENOMEM;
	return mem_read(mem_fd, a.at, *v, a.size);
}

bool exits_armed(int mem_fd, struct exits_area a)
{
	size_t n;
	struct stub *v;
	bool armed = read_stubs(mem_fd, a, &v, &n) != 0;

	for (size_t k = 0; !armed && k < n; k++)
		armed = v[k].magic == STUB_MAGIC && v[k].slot;
	free(v);
	return armed;
}

int exits_disarm(int mem_fd, struct exits_area a)
{
	size_t n;
	struct stub *v;
	int ret = read_stubs(mem_fd, a, &v, &n);

	for (size_t k = 0; !ret && k < n; k++) {
		uint64_t stub = a.at + k * STUB_SIZE, now, zero = 0;

		if (v[k].magic != STUB_MAGIC || !v[k].slot)
			continue;
		/* Still sent here: the thread has not returned. A slot that
		 * holds anything else was returned through (or popped by a
		 * thread inside the stub now, which the stack check sees). */
		if (!mem_read(mem_fd, v[k].slot, &now, 8) && now == stub) {
			ret = mem_write(mem_fd, v[k].slot, &v[k].ret, 8);
			opus_info("thread %" PRIu64 ": return to 0x%" PRIx64 " put back", v[k].tid,
				  v[k].ret);
		}
		if (!ret)
			ret = mem_write(mem_fd, stub + offsetof(struct stub, slot), &zero, 8);
	}
	free(v);
	return ret;
}

/* Is the thread on a shadow stack (x86 CET)? A return address changed
 * behind its back would kill it. In doubt, it is. */
static bool shadow_stack(pid_t tid)
{
	char path[64], line[256];
	bool on = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	if (!(f = fopen(path, "r")))
		return true;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "x86_Thread_features:", 20) && strstr(line, "shstk"))
			on = true;
	fclose(f);
	return on;
}

/* May the thread run the stub? Its seccomp filters must allow getpid
 * there, and no shadow stack may check its returns. */
static int catchable(pid_t tid, uint64_t stub)
{
	struct seccomp_filters f = {0};
	int ret = seccomp_load(tid, &f);

	if (!ret)
		ret = seccomp_check(&f, SYS_getpid, (uint64_t[6]){0}, stub + STUB_SYSCALL_END);
	seccomp_free(&f);
	if (!ret && shadow_stack(tid))
		ret = -ENOTSUP;
	if (ret)
		opus_info("thread %d: not caught at its exit (%s)", (int)tid,
			  ret == -ENOTSUP ? "a shadow stack" : "its seccomp filters");
	return ret ? -ENOTSUP : 0;
}

/* Write a fresh stub for x, then send x's return address to it: the
 * catch's, or with table_slot the switch's that marks that slot. With
 * reuse, a stub no stack leads to any more (retired or disarmed) serves
 * too: the caller knows no thread is inside one. */
static int plant(int mem_fd, struct exits_area a, const struct exit_site *x, uint64_t table_slot,
		 bool reuse, uint64_t *stub)
{
	struct stub s = {.ret = x->ret, .slot = x->slot};
	uint64_t now = 0;
	size_t k = 0, n;
	struct stub *v;
	int ret = read_stubs(mem_fd, a, &v, &n);

	while (!ret && k < n && v[k].magic == STUB_MAGIC && !(reuse && !v[k].slot))
		k++;
	free(v);
	if (ret || k == n)
		return ret ? ret : -ENOTSUP;
	/* The word must still be that return address. */
	if (mem_read(mem_fd, x->slot, &now, 8) || now != x->ret)
		return -ENOTSUP;
	*stub = a.at + k * STUB_SIZE;
	memcpy(s.code, stub_code, sizeof(s.code));
	if (table_slot) {
		int32_t rel = (int32_t)(table_slot - (*stub + SWITCH_END));

		memcpy(s.code, switch_code, sizeof(s.code));
		memcpy(s.code + SWITCH_AT_SLOT, &rel, sizeof(rel));
	}
	s.tid = (uint64_t)x->tid;
	s.magic = STUB_MAGIC;
	ret = mem_write(mem_fd, *stub, &s, sizeof(s));
	if (!ret)
		ret = opus_fault("writing an exit stub");
	if (!ret)
		ret = mem_write(mem_fd, x->slot, stub, 8);
	if (!ret)
		ret = opus_fault("sending a return to an exit stub");
	return ret;
}

static bool regs_of(const struct thread *t, struct user_regs_struct *r)
{
	return ptrace(PTRACE_GETREGS, t->tid, NULL, r) == 0;
}

/* At the stub's syscall, entering it (the kernel's -ENOSYS still in rax). */
static bool at_stub_syscall(const struct thread *t, uint64_t stub)
{
	struct user_regs_struct r;

	return regs_of(t, &r) && r.rip == stub + STUB_SYSCALL_END && r.orig_rax == SYS_getpid &&
	       r.rax == (unsigned long long)-ENOSYS;
}

static bool before_stub_syscall(const struct thread *t, uint64_t stub)
{
	struct user_regs_struct r;

	return regs_of(t, &r) && r.rip >= stub && r.rip < stub + STUB_SYSCALL_END;
}

/* While one thread is followed the others run and may clone a child that
 * shares the memory without being a thread. That child would run the
 * replaced code unstopped, so the stop after the wait refuses the patch
 * (proc_check_vm_child): end the wait as soon as one appears rather than
 * at the deadline. Looked for every 256 waits (about 50 ms), since it
 * reads every thread's children file. */
static bool memory_shared_anew(pid_t pid, unsigned spins)
{
	return spins % 256 == 128 && proc_has_vm_child(pid);
}

/* Follow t, a thread of pid, until it enters the stub's syscall (1), or
 * until it stops elsewhere once the deadline has passed, a child shares
 * the memory anew, or for a group stop (0), or dies (-ESRCH). Signals it
 * gets meanwhile are delivered at once. A thread stopped on its way
 * through the stub is let run to the syscall, a few instructions on: no
 * stop may leave it inside the stub. */
static int follow(pid_t pid, struct thread *t, uint64_t stub, uint64_t deadline)
{
	bool interrupted = false;

	for (unsigned spins = 0;; spins++) {
		int status;
		long sig = 0;
		pid_t r = waitpid(t->tid, &status, __WALL | WNOHANG);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (r > 0 && (WIFEXITED(status) || WIFSIGNALED(status))))
			return -ESRCH;
		if (r == 0) {
			if (!interrupted &&
			    (opus_now_ns() >= deadline || memory_shared_anew(pid, spins))) {
				if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) < 0)
					return -ESRCH;
				interrupted = true;
			} else if (spins % 256 == 255 && proc_thread_dead(t->tid)) {
				return -ESRCH; /* a leader is not reported dead before the rest */
			}
			nanosleep(&(struct timespec){0, WAIT_NS}, NULL);
			continue;
		}
		if (status >> 16 == 0 && WSTOPSIG(status) == (SIGTRAP | 0x80)) {
			if (at_stub_syscall(t, stub))
				return 1;
			/* Any stop takes the place of an interrupt's: from this
			 * syscall stop, into a plain one. */
			if (interrupted && !before_stub_syscall(t, stub))
				return thread_repark(t) ? -ESRCH : 0;
		} else if (status >> 16 == PTRACE_EVENT_STOP) {
			if (!before_stub_syscall(t, stub)) {
				thread_held(t);
				return 0;
			}
		} else if (status >> 16 == 0) {
			sig = WSTOPSIG(status);
			/* The signal's stop took the interrupt's: ask again. */
			if (interrupted && ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) < 0)
				return -ESRCH;
		}
		if (ptrace(PTRACE_SYSCALL, t->tid, NULL, (void *)sig) < 0)
			return -ESRCH;
	}
}

/* t entered the stub's syscall: give it the state the return left (the
 * three pushed registers popped, the syscall skipped, its pc at the return
 * address), then park it in a plain stop. Killed after the registers are
 * set, opus leaves it to skip the syscall and go on from there. */
static int leave_stub(struct thread *t, int mem_fd, const struct exit_site *x)
{
	struct user_regs_struct r;
	uint64_t saved[3]; /* r11, rcx, rax: popped in that order */
	int ret = 0, fault;

	if (!regs_of(t, &r) || mem_read(mem_fd, r.rsp, saved, sizeof(saved)))
		return -ESRCH;
	r.r11 = saved[0];
	r.rcx = saved[1];
	r.rax = saved[2];
	r.rsp += sizeof(saved);
	r.rip = x->ret;
	r.orig_rax = (unsigned long long)-1;
	if (ptrace(PTRACE_SETREGS, t->tid, NULL, &r) < 0)
		return -ESRCH;
	fault = opus_fault("a thread caught at its exit");
	ret = thread_repark(t);
	return fault ? fault : ret;
}

int exits_catch(struct threads *ts, int mem_fd, struct exits_area a, const struct exit_site *x,
		uint64_t deadline)
{
	struct thread *t = NULL;
	uint64_t stub = 0;
	int ret;

	for (size_t i = 0; i < ts->n; i++)
		if (ts->v[i].tid == x->tid && ts->v[i].stopped && !ts->v[i].injecting)
			t = &ts->v[i];
	if (!a.at || !t || catchable(t->tid, a.at))
		return -ENOTSUP;
	ret = plant(mem_fd, a, x, 0, false, &stub);
	if (ret == -ENOTSUP)
		return ret;
	if (ret) {
		/* A fault once the stub may be in use: nothing stays planted. */
		exits_disarm(mem_fd, a);
		return ret;
	}
	/* Only the caught thread stays traced: the others run free. */
	threads_detach_all_but(ts, x->tid);
	t = &ts->v[0];
	t->stopped = false;
	thread_released(ts, t);
	if (ptrace(PTRACE_SYSCALL, t->tid, NULL, NULL) < 0)
		ret = -ESRCH;
	else
		ret = follow(ts->pid, t, stub, deadline);
	if (ret == 1) {
		opus_info("thread %d: caught leaving for 0x%" PRIx64, (int)t->tid, x->ret);
		/* The stub is used up: no later disarm may touch its slot,
		 * which is now below the thread's stack pointer. */
		ret = mem_write(mem_fd, stub + offsetof(struct stub, slot), &(uint64_t){0}, 8);
		if (!ret)
			ret = leave_stub(t, mem_fd, x);
		return ret ? ret : 1;
	}
	if (ret == -ESRCH)
		ts->n = 0; /* it died: there is nothing left to hold */
	return ret < 0 && ret != -ESRCH ? ret : 0;
}

int exits_plant_switch(int mem_fd, struct exits_area a, const struct exit_site *x,
		       uint64_t table_slot, bool reuse, uint64_t *stub)
{
	/* The farthest stub from the table, too, must reach its slot. */
	int64_t rel = (int64_t)(table_slot - (a.at + SWITCH_END));

	if (!a.at || !x->slot || shadow_stack(x->tid) || rel != (int32_t)rel)
		return -ENOTSUP;
	return plant(mem_fd, a, x, table_slot, reuse, stub);
}

int exits_retire(int mem_fd, uint64_t stub)
{
	return mem_write(mem_fd, stub + offsetof(struct stub, slot), &(uint64_t){0}, 8);
}
