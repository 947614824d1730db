/* Process control with PTRACE_SEIZE: stop every thread of a process, keep
 * signals that arrive meanwhile, resume or detach them all. */
#ifndef OPUS_LIVE_PTRACE_H
#define OPUS_LIVE_PTRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct thread {
	pid_t tid;
	bool leader; /* the thread-group leader: its death is reported last */
	bool stopped;
	bool interrupted;      /* PTRACE_INTERRUPT sent, its stop not yet reaped */
	uint64_t pending_sigs; /* signals that arrived while we held it (bit n-1: signal n) */
};

struct threads {
	pid_t pid;
	struct thread *v;
	size_t n, cap;
};

void threads_init(struct threads *ts, pid_t pid);
/* Seize and stop one thread (for injected syscalls while the rest run). */
int threads_stop_one(struct threads *ts);
/* Seize and stop every thread; rescans /proc/PID/task until no new one appears. */
int threads_stop_all(struct threads *ts);
/* Resume stopped threads (still traced). */
void threads_resume(struct threads *ts);
/* Detach from every thread, stopping running ones first; frees ts. */
void threads_detach(struct threads *ts);
/* Wait for tid to stop after a resume; records other signals as pending. */
int thread_wait_trap(struct thread *t);
/* The thread pointer (fs base) of stopped thread t. */
int thread_fs_base(const struct thread *t, uint64_t *fs_base);
/* Move t from the single-step trap (a signal-delivery-stop: were opus to
 * die there, the kernel would deliver SIGTRAP to the target) to a plain
 * interrupt stop, from which a detach leaves it running as it was. */
int thread_repark(struct thread *t);

#endif
