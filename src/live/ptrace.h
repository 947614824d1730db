/* Process control with PTRACE_SEIZE: stop every thread of a process, keep
 * signals that arrive meanwhile, resume or detach them all. */
#ifndef OPUS_LIVE_PTRACE_H
#define OPUS_LIVE_PTRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct thread {
	pid_t tid;
	bool leader; /* the thread-group leader: its death is reported last */
	bool stopped;
	bool interrupted; /* PTRACE_INTERRUPT sent, its stop not yet reaped */
	/* Since when (monotonic ns) it has not stopped as asked, and its CPU
	 * time once that was long (0: not read yet): ptrace.c's stuck(). */
	uint64_t asked_since, asked_cpu_ns;
	uint64_t pending_sigs; /* signals that arrived while we held it (bit n-1: signal n) */
	/* Between injected syscalls (inject.c): parked at a syscall stop with
	 * the injection's registers, its own in real, its signal frame at
	 * frame_sp. Every function here that resumes, detaches, stops or
	 * reads the thread puts real back first. */
	bool injecting;
	struct user_regs_struct real;
	uint64_t frame_sp;
	/* Every signal blocked while it runs injected syscalls (inject.c),
	 * its own blocked set in real_mask: a signal meanwhile waits in the
	 * kernel with its siginfo, or goes to another thread. */
	bool masked;
	uint64_t real_mask;
	/* Parked by an injected batch at an interrupt stop (inject.c), from
	 * which its own registers go back with no repark. */
	bool parked_interrupted;
	/* The caller's note on the thread for the current stop: zeroed as
	 * threads_stop_all begins, set by its on_stop. */
	int stop_note;
	/* When it last stopped running its own code (monotonic ns), 0 while
	 * it runs: a thread that runs injected syscalls stays held through
	 * them. */
	uint64_t held_since;
	/* Its /proc/PID/task/TID/children, opened as it is seized (-1 if it
	 * could not be): each stop reads it for a child that shares the
	 * memory (proc_check_vm_child), a tenth of the cost of opening it. */
	int children;
	/* Its registers as thread_held read them (stop_regs_ok), for
	 * threads_stop_all to give to its on_stop: one GETREGS a thread
	 * less inside the pause. Read nowhere else, as anything that
	 * resumes the thread or sets its registers makes them stale. */
	struct user_regs_struct stop_regs;
	bool stop_regs_ok;
};

/* Called for each thread as it is stopped, while others are still on
 * their way: work done here is done in time the pause spends waiting.
 * regs are t's registers at that stop, or NULL if they were not read. */
typedef void thread_stopped_fn(void *ctx, struct thread *t, const struct user_regs_struct *regs);

#define MAX_CHILDREN_FDS 256

struct threads {
	pid_t pid;
	struct thread *v;
	size_t n, cap;
	int task_dir;	   /* /proc/PID/task, open while threads are held; -1 */
	bool count_agrees; /* its link count matched the last listing */
	/* Threads whose children file is held open (struct thread.children):
	 * at most children_max (MAX_CHILDREN_FDS, or a quarter of opus's
	 * descriptor limit), the rest read by path, so that a process of
	 * thousands of threads does not use up opus's descriptors. */
	size_t children_open, children_max;
	/* The longest any one thread was held, from its stop to its release
	 * (resumed, detached or sent on to an exit stub). */
	uint64_t longest_hold_ns;
};

void threads_init(struct threads *ts, pid_t pid);
/* How many threads the process has now (one fstat); -1 if unknown. */
long threads_count(struct threads *ts);
/* Seize and stop one thread (for injected syscalls while the rest run). */
int threads_stop_one(struct threads *ts);
/* Seize every thread listed now without stopping it: done before a stop,
 * it keeps the seizing out of the pause. */
int threads_seize_all(struct threads *ts);
/* Seize and stop every thread; rescans /proc/PID/task until no new one
 * appears, unless the kernel counts no thread more than those stopped.
 * on_stop (if not NULL) is called with ctx for every thread this call
 * stops, once it has stopped. */
int threads_stop_all(struct threads *ts, thread_stopped_fn *on_stop, void *ctx);
/* Resume stopped threads (still traced). */
void threads_resume(struct threads *ts);
/* Detach from every thread, stopping running ones first; frees ts. */
void threads_detach(struct threads *ts);
/* Detach from every thread but tid, which is left first in ts, stopped;
 * the others are forgotten. */
void threads_detach_all_but(struct threads *ts, pid_t tid);
/* Wait for t's next syscall stop (entry or exit) after PTRACE_SYSCALL: 0,
 * -EAGAIN for another stop (a signal, kept to be sent again later; a group
 * stop): resume it with PTRACE_SYSCALL again; -ESRCH if it died. */
int thread_wait_syscall(struct thread *t);
/* The registers of stopped thread t (its own, between injections), and
 * its thread pointer (fs base). */
int thread_regs(struct thread *t, struct user_regs_struct *regs);
int thread_fs_base(struct thread *t, uint64_t *fs_base);
/* Give a thread parked between injected syscalls its own registers back,
 * in a plain interrupt stop; nothing if it is not. */
int thread_end_injection(struct thread *t);
/* Stop t, which runs injected code (PTRACE_CONT), again: 0 once it is
 * stopped, -ESRCH if it died. */
int thread_stop_again(struct thread *t);
/* Move t from a syscall stop to a plain interrupt stop, from which a
 * detach leaves it running as it was. */
int thread_repark(struct thread *t);
/* t is stopped at an interrupt's stop: its hold begins, unless it was
 * held already (a thread between injected syscalls), and a wait in the
 * kernel that the interrupt failed with EINTR is set to run again. */
void thread_held(struct thread *t);
/* t runs its own code again from now: its hold ends (longest_hold_ns). */
void thread_released(struct threads *ts, struct thread *t);

#endif
