/* Syscalls run inside a stopped target thread, safely even if opus dies
 * half-way. Before the thread's registers are touched, a signal frame
 * holding its real state (registers, FPU and vector state, signal mask) is
 * written below its red zone; the thread is then pointed at a `syscall;
 * ret` gadget whose return address is glibc's __restore_rt. opus runs the
 * syscall between two syscall stops and puts the registers back itself,
 * which keeps the kernel's restart of an interrupted blocking call
 * (read/accept/epoll_wait/futex/nanosleep). Should opus die at any point,
 * the thread finishes the syscall and rt_sigreturn restores it from the
 * frame: no single-step, no pending trap, no garbage registers. */
#ifndef OPUS_LIVE_INJECT_H
#define OPUS_LIVE_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "files.h"
#include "proc.h"
#include "ptrace.h"

/* Where the thread is sent: found once per process. */
struct inject_gadgets {
	uint64_t syscall_ret; /* 0f 05 c3: syscall; ret */
	uint64_t restore_rt;  /* 48 c7 c0 0f 00 00 00 0f 05: mov $15,%rax; syscall */
};

struct seccomp_filters;

struct injector {
	struct thread *t;
	struct inject_gadgets g;
	const struct seccomp_filters *filters; /* the thread's: checked before each syscall */
	int mem_fd;
	size_t pushed; /* bytes below the red zone already used by pushed data */
};

/* Several syscalls in one resume of the thread (inject_batch): the stub
 * that runs them, placed by the caller in executable memory of the
 * process (the patch's mapping holds one, layout.h). */
#define INJECT_BATCH_STUB_SIZE 160
#define INJECT_BATCH_MAX       8

struct inject_call {
	long nr;
	uint64_t args[6];
	/* from[k] = j + 1: argument k is the result of earlier call j (a
	 * descriptor opened in the batch); 0: args[k] */
	int from[6];
};

/* Does a syscall's raw return say it failed (-4095 to -1)? */
static inline bool inject_failed(long ret)
{
	return (unsigned long)ret >= (unsigned long)-4095;
}

/* Find the gadgets in the process's executable mappings (libc's first). */
int inject_find_gadgets(struct file_cache *c, pid_t pid, int mem_fd, const struct proc_maps *maps,
			struct inject_gadgets *g);
/* Run syscall nr with up to six arguments; *ret is the raw return (-errno on error). */
int inject_syscall(struct injector *in, long nr, const uint64_t args[6], long *ret);
/* The batch stub's code, for the caller to place (int3 after it). */
void inject_batch_stub(uint8_t out[INJECT_BATCH_STUB_SIZE]);
/* Run calls[0..n) in order in one resume of the thread, through the stub
 * at stub, stopping at the first that fails; rets[i] for each of the
 * *ran calls that ran. Each ptrace stop the one-at-a-time way costs the
 * thread a wait for a CPU, which beside busy threads is most of an
 * injection's time. The thread is left stopped, as between injected
 * syscalls. Should opus die, the stub returns through the signal frame
 * after at most a second, as an injected syscall does at once.
 * -ENOTSUP (nothing run) without a stub, or for a thread with seccomp
 * filters (arguments taken from results cannot be checked first): run
 * them one at a time. */
int inject_batch(struct injector *in, uint64_t stub, const struct inject_call *calls, size_t n,
		 long *rets, size_t *ran);
/* Copy len bytes (a string) below the thread's red zone, for a syscall
 * to read or write; *addr is where they went. */
int inject_push(struct injector *in, const void *data, size_t len, uint64_t *addr);
int inject_push_string(struct injector *in, const char *s, uint64_t *addr);

#endif
