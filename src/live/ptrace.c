#include "ptrace.h"
#include "live.h"
#include "proc.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* live.h's live_exits_when_done and live_thread_exits_when_done. */
static bool exits_when_done;
static __thread bool thread_exits_when_done;

void live_exits_when_done(void)
{
	exits_when_done = true;
}

void live_thread_exits_when_done(void)
{
	thread_exits_when_done = true;
}

/* Whether a thread that cannot be let go now may be left to the kernel,
 * which lets go of a tracer's tracees as that thread exits. */
static bool left_to_the_kernel(void)
{
	return exits_when_done || thread_exits_when_done;
}

void threads_init(struct threads *ts, pid_t pid)
{
	struct rlimit fds;

	memset(ts, 0, sizeof(*ts));
	ts->pid = pid;
	ts->task_dir = -1;
	ts->children_max = MAX_CHILDREN_FDS;
	if (!getrlimit(RLIMIT_NOFILE, &fds) && fds.rlim_cur / 4 < ts->children_max)
		ts->children_max = fds.rlim_cur / 4;
}

static int open_task_dir(struct threads *ts)
{
	if (ts->task_dir < 0)
		ts->task_dir = proc_task_dir(ts->pid);
	return ts->task_dir;
}

long threads_count(struct threads *ts)
{
	return open_task_dir(ts) < 0 ? -1 : proc_thread_count(ts->task_dir);
}

static struct thread *find(struct threads *ts, pid_t tid)
{
	for (size_t i = 0; i < ts->n; i++)
		if (ts->v[i].tid == tid)
			return &ts->v[i];
	return NULL;
}

static void close_children(struct threads *ts, struct thread *t)
{
	if (t->children >= 0) {
		close(t->children);
		ts->children_open--;
	}
	t->children = -1;
}

static int open_children(struct threads *ts, pid_t tid)
{
	int fd =
	    ts->children_open < ts->children_max ? proc_children_open(open_task_dir(ts), tid) : -1;

	ts->children_open += fd >= 0;
	return fd;
}

static void forget(struct threads *ts, struct thread *t)
{
	close_children(ts, t);
	*t = ts->v[--ts->n];
}

/* Seize tid; returns 1 if seized, 0 if it is already gone. */
static int seize(struct threads *ts, pid_t tid)
{
	/* TRACESYSGOOD: syscall stops (for injected syscalls) are told apart
	 * from a SIGTRAP the thread really received. */
	if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)(long)PTRACE_O_TRACESYSGOOD) < 0) {
		/* A thread already exiting answers EPERM, not ESRCH. */
		if (errno == ESRCH || (errno == EPERM && proc_thread_dead(tid)))
			return 0;
		if (errno == EPERM)
			return opus_err(-EPERM,
					"process %d: not permitted to trace thread %d (already "
					"traced, or not ours)",
					(int)ts->pid, (int)tid);
		return opus_err(-errno, "process %d: cannot trace thread %d: %s", (int)ts->pid,
				(int)tid, strerror(errno));
	}
	if (OPUS_PUSH(ts->v, ts->n, ts->cap)) {
		ptrace(PTRACE_DETACH, tid, NULL, NULL);
		return -ENOMEM;
	}
	ts->v[ts->n++] = (struct thread){
	    .tid = tid, .leader = tid == ts->pid, .children = open_children(ts, tid)};
	return 1;
}

static void keep_signal(struct thread *t, int sig)
{
	if (sig > 0 && sig <= 64)
		t->pending_sigs |= 1ull << (sig - 1);
}

/* The lowest kept signal, removed from the set; 0 if none. */
static int take_signal(struct thread *t)
{
	int sig;

	if (!t->pending_sigs)
		return 0;
	sig = __builtin_ctzll(t->pending_sigs) + 1;
	t->pending_sigs &= t->pending_sigs - 1;
	return sig;
}

static int stop_status(int status)
{
	if (WIFEXITED(status) || WIFSIGNALED(status))
		return -ESRCH;
	return WIFSTOPPED(status) ? 0 : -EAGAIN;
}

/* A timer signal aimed at opus's own thread every millisecond, to cut a
 * blocking waitpid short (its handler has no SA_RESTART). Waiting for a
 * target thread's stop, opus blocks, which leaves the CPU to the threads
 * that are stopping (polling instead doubled the pause at 64 blocked
 * threads), and still looks at the thread now and then.
 *
 * Each opus thread keeps one timer, made at its first slow wait and
 * armed only while it waits: one made and deleted for every wait cost
 * 15-35% of the pause at 64 and 256 blocked threads. The timer is
 * deleted as its thread exits (the daemon's and --all's workers come and
 * go), by the destructor of a thread-specific key. */
#define TICK_SIG (SIGRTMIN + 4)

static pthread_key_t tick_key;
static __thread timer_t tick_timer;
static __thread bool tick_made;

static void on_tick(int sig)
{
	(void)sig;
}

static void tick_delete(void *unused)
{
	(void)unused;
	if (tick_made)
		timer_delete(tick_timer);
	tick_made = false;
}

static void tick_setup(void)
{
	struct sigaction sa = {.sa_handler = on_tick};

	sigemptyset(&sa.sa_mask);
	sigaction(TICK_SIG, &sa, NULL);
	pthread_key_create(&tick_key, tick_delete);
}

/* This thread's timer, made if it has none; false if it cannot be. */
static bool tick_make(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct sigevent ev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = TICK_SIG};
	sigset_t set;

	if (tick_made)
		return true;
	pthread_once(&once, tick_setup);
	sigemptyset(&set);
	sigaddset(&set, TICK_SIG);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	ev._sigev_un._tid = gettid(); /* sigev_notify_thread_id */
	if (timer_create(CLOCK_MONOTONIC, &ev, &tick_timer))
		return false;
	tick_made = true;
	pthread_setspecific(tick_key, &tick_made); /* any non-NULL: the destructor runs */
	return true;
}

/* Start (on) or stop the ticks; whether they are now on. */
static bool ticker(bool on)
{
	static const struct itimerspec every_ms = {{0, 1000000}, {0, 1000000}}, off;

	if (!on && !tick_made)
		return false;
	if (on && !tick_make())
		return false;
	return !timer_settime(tick_timer, 0, on ? &every_ms : &off, NULL) && on;
}

#define STUCK_NS     (20 * 1000 * 1000) /* asked this long, a thread may not stop */
#define STUCK_CPU_NS (10 * 1000 * 1000) /* CPU time it then runs without stopping */

/* A thread that our interrupt does not stop, however long opus waits:
 * asleep in the kernel where the interrupt does not wake it (D: a hung
 * NFS or FUSE request, whose server may be a thread opus holds), or
 * running there without ever returning to its code (a kernel copy into a
 * userfaultfd page whose handler thread opus holds: the interrupt makes
 * each try at the fault return at once, and the kernel tries again). Only
 * after STUCK_NS: a thread that merely waits for a CPU, or for a disk,
 * stops in time; one that gets STUCK_CPU_NS of CPU after that without
 * stopping is not in its own code, where it would have. */
static bool stuck(struct thread *t)
{
	uint64_t cpu;
	char state;

	if (!t->asked_since || opus_now_ns() - t->asked_since < STUCK_NS)
		return false;
	state = proc_thread_state(t->tid);
	if (state == 'D' || state == 'S')
		return true;
	cpu = proc_thread_cpu_ns(t->tid);
	if (!t->asked_cpu_ns) {
		t->asked_cpu_ns = cpu ? cpu : 1;
		return false;
	}
	return cpu - t->asked_cpu_ns >= STUCK_CPU_NS;
}

/* Why a thread not stopped yet may never stop on its own: -ESRCH if it is
 * a dead leader (the kernel reports it only once every other thread has
 * been reaped, and we may be the one to reap them), -EINPROGRESS if we are
 * not patient and it waits for its vfork child (it sleeps killable, and no
 * stop comes before the child execs or exits, which may be never while
 * the threads opus holds are what it waits for) or is stuck() elsewhere. */
static int why_not_stopped(struct thread *t, bool patient)
{
	if (t->leader && proc_thread_dead(t->tid))
		return -ESRCH;
	if (patient)
		return 0;
	return proc_thread_in_vfork(t->tid) || stuck(t) ? -EINPROGRESS : 0;
}

/* Whether opus's calling thread runs real-time (boost.h). */
static bool running_realtime(void)
{
	int policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;

	return policy == SCHED_FIFO || policy == SCHED_RR;
}

/* The next stop of t; -ESRCH if it exited or was killed instead, or as
 * why_not_stopped says (its interrupt then left pending). A thread other
 * than the leader is waited for in a blocking wait cut every millisecond
 * by the ticker (yields first cost 15% of the pause at 64 blocked
 * threads: they take the CPU the stopping threads need); the leader, or
 * any thread without a ticker, with a few yields, then 50 us sleeps. A
 * real-time opus blocks for the leader too: its yields let no ordinary
 * thread run, so a target thread woken onto opus's CPU waited for each
 * 50 us sleep (112 us a round trip of the injected syscalls beside a busy
 * thread, where the thread itself needs 5); the leader's death is then
 * looked for at each tick. */
static int next_stop(struct thread *t, int *status, bool patient)
{
	bool ticking = false;
	int ret;

	for (unsigned spins = 0;; spins++) {
		pid_t r = waitpid(t->tid, status, __WALL | (ticking ? 0 : WNOHANG));

		if (r < 0 && errno == EINTR) {
			if ((ret = why_not_stopped(t, patient)))
				break;
			continue;
		}
		if (r < 0) {
			ret = -ESRCH;
			break;
		}
		if (r == t->tid && (ret = stop_status(*status)) != -EAGAIN)
			break;
		if (r != 0)
			continue;
		if (spins == 0 && (!t->leader || running_realtime()) && (ticking = ticker(true)))
			continue;
		if (spins < 64) {
			sched_yield();
			continue;
		}
		if (spins % 16 == 0 && (ret = why_not_stopped(t, patient)))
			break;
		nanosleep(&(struct timespec){0, 50 * 1000}, NULL);
	}
	if (ticking)
		ticker(false);
	return ret;
}

/* Wait for the stop our PTRACE_INTERRUPT causes. A signal arriving first is
 * delivered on the spot, its siginfo as it came: from a signal-delivery-
 * stop, PTRACE_CONT with the signal sets up its handler. That stop took
 * the interrupt's place (the kernel clears a pending interrupt at any
 * ptrace stop), so the thread is interrupted again first, and stops before
 * the handler's first instruction. Without that, a thread taking a signal
 * every 200 us was never stopped, and opus waited for it forever with the
 * other threads held. (Kept for later, the signal could only be re-sent
 * with tgkill, its siginfo lost: the kernel may ignore a signal given to
 * PTRACE_CONT from any other stop.) Returns -ESRCH if the thread died,
 * -EINPROGRESS as next_stop does. */
static int wait_stop(struct thread *t, bool patient)
{
	int status, ret;

	for (;;) {
		long sig = 0;

		if ((ret = next_stop(t, &status, patient)))
			return ret;
		if (status >> 16 == PTRACE_EVENT_STOP) {
			thread_held(t);
			t->interrupted = false;
			t->asked_since = 0;
			return 0;
		}
		/* A syscall stop (a thread followed with PTRACE_SYSCALL) is
		 * no signal. */
		if (status >> 16 == 0 && WSTOPSIG(status) != (SIGTRAP | 0x80))
			sig = WSTOPSIG(status);
		if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) < 0 ||
		    ptrace(PTRACE_CONT, t->tid, NULL, (void *)sig) < 0)
			return -ESRCH;
	}
}

/* Signals kept from a thread's injected syscalls, which run with every
 * signal blocked (inject.c): only SIGSTOP can arrive there, and it carries
 * nothing tgkill loses. Sent again now that the thread runs on its own. */
static void resend_signals(pid_t pid, struct thread *t)
{
	while (t->pending_sigs)
		tgkill(pid, t->tid, take_signal(t));
}

static int interrupt(struct thread *t)
{
	if (t->stopped || t->interrupted)
		return 0;
	if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) < 0)
		return -ESRCH;
	t->interrupted = true;
	t->asked_since = opus_now_ns();
	t->asked_cpu_ns = 0;
	return 0;
}

/* Returns 1 once t is stopped, 0 if it is gone (and forgotten),
 * -EINPROGRESS if it waits for its vfork child (still interrupted: it
 * stops once the child is done, and a later call takes that stop). */
static int stop_thread(struct threads *ts, struct thread *t)
{
	int ret;

	if (t->stopped)
		return 1;
	if ((ret = interrupt(t)) == 0 && (ret = wait_stop(t, false)) == -EINPROGRESS)
		return ret;
	if (ret < 0) {
		forget(ts, t);
		return 0;
	}
	return 1;
}

/* -EINPROGRESS, naming why thread tid does not stop: the stop is tried
 * again later, the other threads let go meanwhile. */
static int not_stopping(const struct threads *ts, pid_t tid)
{
	char wchan[64] = "";

	if (proc_thread_in_vfork(tid))
		return opus_err(
		    -EINPROGRESS,
		    "process %d: thread %d is waiting for its vfork child to exec or exit "
		    "(it shares the memory opus would write, and cannot be stopped until "
		    "then)",
		    (int)ts->pid, (int)tid);
	proc_thread_wchan(tid, wchan, sizeof(wchan));
	return opus_err(
	    -EINPROGRESS,
	    "process %d: thread %d does not stop: it stays in the kernel (state %c%s%s) "
	    "%d ms after opus asked it to, and the other threads are not held for it",
	    (int)ts->pid, (int)tid, proc_thread_state(tid) ?: '?', *wchan ? ", in " : "", wchan,
	    STUCK_NS / 1000000);
}

/* Stop the held threads in turn until one stops: whether one did. */
static bool stop_any_held(struct threads *ts)
{
	for (size_t i = 0; i < ts->n;) {
		int ret = stop_thread(ts, &ts->v[i]);

		if (ret == 1)
			return true;
		/* 0: v[i] was gone, and the next one took its place; or it
		 * waits for its vfork child: on to the next one. */
		if (ret < 0)
			i++;
	}
	return false;
}

int threads_stop_one(struct threads *ts)
{
	pid_t *tids;
	size_t n;
	int ret;

	for (size_t i = 0; i < ts->n; i++)
		if (ts->v[i].stopped)
			return 0;
	if (stop_any_held(ts))
		return 0;
	if ((ret = proc_tids(ts->pid, &tids, &n)))
		return ret;
	for (size_t i = 0; i < n && !ret; i++)
		if (!find(ts, tids[i]) && (ret = seize(ts, tids[i])) == 1)
			ret = stop_thread(ts, &ts->v[ts->n - 1]) == 1;
	free(tids);
	if (ret)
		return ret < 0 ? ret : 0;
	if (ts->n)
		return not_stopping(ts, ts->v[0].tid);
	return opus_err(-ESRCH, "process %d: has no thread left to stop", (int)ts->pid);
}

/* Seize every thread /proc lists that is not ours yet: 1 if there was
 * one, 0 if not, or an error. Seized threads go on running. */
static int seize_listed(struct threads *ts)
{
	pid_t *tids;
	size_t n;
	int changed = 0, ret;

	open_task_dir(ts);
	if ((ret = proc_tids(ts->pid, &tids, &n)))
		return ret;
	/* The kernel's count is trusted in a stop only where it has matched
	 * what /proc listed (a count racing a new thread does not). */
	ts->count_agrees = proc_thread_count(ts->task_dir) == (long)n;
	for (size_t i = 0; i < n && ret >= 0; i++)
		if (!find(ts, tids[i]) && (ret = seize(ts, tids[i])) > 0)
			changed = 1;
	free(tids);
	return ret < 0 ? ret : changed;
}

int threads_seize_all(struct threads *ts)
{
	int ret = seize_listed(ts);

	return ret < 0 ? ret : 0;
}

/* Every thread parked between injected syscalls given its registers back. */
static void end_injections(struct threads *ts)
{
	for (size_t i = 0; i < ts->n; i++)
		thread_end_injection(&ts->v[i]);
}

int threads_stop_all(struct threads *ts, thread_stopped_fn *on_stop, void *ctx)
{
	pid_t stuck = 0;
	int changed;

	end_injections(ts);
	for (size_t i = 0; i < ts->n; i++)
		ts->v[i].stop_note = 0;
	/* Stop every thread held (interrupt all first, so that they stop in
	 * parallel), then read the list again: only a running thread starts
	 * another, so a list read with every thread stopped is complete. */
	do {
		for (size_t i = 0; i < ts->n; i++)
			interrupt(&ts->v[i]);
		for (size_t i = 0; i < ts->n;) {
			bool was_stopped = ts->v[i].stopped;
			int ret = stop_thread(ts, &ts->v[i]);

			if (!ret)
				continue; /* slot i now holds another thread */
			/* The others are stopped all the same: left interrupted,
			 * they would stay stopped until the next attempt. */
			if (ret < 0 && !stuck)
				stuck = ts->v[i].tid;
			else if (ret > 0 && on_stop && !was_stopped)
				on_stop(ctx, &ts->v[i],
					ts->v[i].stop_regs_ok ? &ts->v[i].stop_regs : NULL);
			ts->v[i].stop_regs_ok = false;
			i++;
		}
		if (stuck)
			return not_stopping(ts, stuck);
		/* With every thread held stopped, a count of no more threads
		 * says the same as a new listing, at a fraction of its cost. */
		if (ts->count_agrees && proc_thread_count(ts->task_dir) == (long)ts->n)
			break;
		if ((changed = seize_listed(ts)) < 0)
			return changed;
	} while (changed);
	if (!ts->n)
		return opus_err(-ESRCH, "process %d: exited", (int)ts->pid);
	return 0;
}

/* Calls that a stop makes fail with EINTR where no signal handler ran,
 * and that the kernel does not restart (signal(7), "Interruption of
 * system calls and library functions by stop signals"; io_uring_enter
 * does the same). A program that never stops has no reason to expect the
 * error, and one that took it for fatal died of opus's stops. Each
 * returns EINTR only when it did nothing: run again, it waits again. */
static bool fails_when_stopped(long nr)
{
	switch (nr) {
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
	case SYS_epoll_pwait2:
	case SYS_io_uring_enter:
	case SYS_io_getevents:
	case SYS_io_pgetevents:
	case SYS_semop:
	case SYS_semtimedop:
	case SYS_rt_sigtimedwait:
	case SYS_accept:
	case SYS_accept4:
	case SYS_recvfrom:
	case SYS_recvmsg:
	case SYS_recvmmsg:
		return true;
	}
	return false;
}

#define ERESTARTNOHAND 514 /* linux/errno.h, the kernel's own */

/* At the stop of an interrupt: a call in that list that the interrupt
 * made fail gets ERESTARTNOHAND instead, the kernel's "restart it unless
 * a handler runs", as select has. Resumed, the thread makes the call
 * again with its own arguments (a timeout starts again: the wait may be
 * longer by what had passed), and a signal's handler that runs first
 * still sees EINTR. The registers are the kernel's copy until the thread
 * returns to its code, which reads the result there. */
static void restart_failed_wait(struct thread *t)
{
	struct user_regs_struct *r = &t->stop_regs;

	if (!(t->stop_regs_ok = ptrace(PTRACE_GETREGS, t->tid, NULL, r) == 0) ||
	    r->rax != (unsigned long long)-EINTR || !fails_when_stopped((long)r->orig_rax))
		return;
	r->rax = (unsigned long long)-ERESTARTNOHAND;
	t->stop_regs_ok = ptrace(PTRACE_SETREGS, t->tid, NULL, r) == 0;
}

void thread_held(struct thread *t)
{
	restart_failed_wait(t);
	t->stopped = true;
	if (!t->held_since)
		t->held_since = opus_now_ns();
}

void thread_released(struct threads *ts, struct thread *t)
{
	uint64_t held = t->held_since ? opus_now_ns() - t->held_since : 0;

	if (held > ts->longest_hold_ns)
		ts->longest_hold_ns = held;
	t->held_since = 0;
}

void threads_resume(struct threads *ts)
{
	end_injections(ts);
	for (size_t i = 0; i < ts->n; i++) {
		struct thread *t = &ts->v[i];

		if (t->stopped && ptrace(PTRACE_CONT, t->tid, NULL, NULL) == 0) {
			t->stopped = false;
			thread_released(ts, t);
		}
		resend_signals(ts->pid, t);
	}
}

static void detach(struct threads *ts, struct thread *t)
{
	/* Only a stopped thread can be let go. One still waiting for its
	 * vfork child stops once the child is done: waited for, unless opus
	 * or its thread exits first (live_exits_when_done). */
	if (!t->stopped && (interrupt(t) < 0 || wait_stop(t, !left_to_the_kernel()) < 0))
		return;
	ptrace(PTRACE_DETACH, t->tid, NULL, NULL);
	thread_released(ts, t);
	resend_signals(ts->pid, t);
}

void threads_detach(struct threads *ts)
{
	end_injections(ts);
	for (size_t i = 0; i < ts->n; i++)
		detach(ts, &ts->v[i]);
	/* Closed once every thread runs: not in the pause. */
	for (size_t i = 0; i < ts->n; i++)
		close_children(ts, &ts->v[i]);
	free(ts->v);
	ts->v = NULL;
	ts->n = ts->cap = 0;
	if (ts->task_dir >= 0)
		close(ts->task_dir);
	ts->task_dir = -1;
	ts->count_agrees = false;
}

void threads_detach_all_but(struct threads *ts, pid_t tid)
{
	size_t kept = 0;

	end_injections(ts);
	for (size_t i = 0; i < ts->n; i++) {
		if (ts->v[i].tid == tid)
			ts->v[kept++] = ts->v[i];
		else {
			detach(ts, &ts->v[i]);
			close_children(ts, &ts->v[i]);
		}
	}
	ts->n = kept;
}

int thread_wait_syscall(struct thread *t)
{
	int status;

	if (next_stop(t, &status, true))
		return -ESRCH;
	if (status >> 16 == 0 && WSTOPSIG(status) == (SIGTRAP | 0x80))
		return 0;
	if (status >> 16 == 0)
		keep_signal(t, WSTOPSIG(status));
	/* A group-stop, a pending interrupt or a signal (kept for later). */
	return -EAGAIN;
}

/* Move t from a syscall stop to a plain interrupt stop, from which a
 * detach leaves it running as it was. */
int thread_repark(struct thread *t)
{
	t->stopped = false;
	if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) < 0 ||
	    ptrace(PTRACE_CONT, t->tid, NULL, NULL) < 0)
		return -ESRCH;
	t->interrupted = true;
	return wait_stop(t, true);
}

int thread_stop_again(struct thread *t)
{
	t->stopped = false;
	if (interrupt(t) < 0)
		return -ESRCH;
	return wait_stop(t, true);
}

int thread_end_injection(struct thread *t)
{
	int ret = 0;

	if (!t->injecting)
		return 0;
	t->injecting = false;
	/* Its own blocked set first: killed before the registers are back,
	 * opus leaves it to run into the frame, which restores both. */
	if (t->masked &&
	    ptrace(PTRACE_SETSIGMASK, t->tid, (void *)sizeof(t->real_mask), &t->real_mask) < 0)
		ret = -errno;
	t->masked = false;
	/* The original registers, orig_rax with them: an interrupted blocking
	 * call goes back on the kernel's restart path. */
	if (!ret && ptrace(PTRACE_SETREGS, t->tid, NULL, &t->real) < 0)
		ret = -errno;
	if (!ret && !t->parked_interrupted)
		ret = thread_repark(t);
	t->parked_interrupted = false;
	return ret;
}

int thread_regs(struct thread *t, struct user_regs_struct *regs)
{
	if (thread_end_injection(t) < 0)
		return opus_err(-ESRCH, "thread %d: cannot restore its registers", (int)t->tid);
	if (ptrace(PTRACE_GETREGS, t->tid, NULL, regs) < 0)
		return opus_err(-errno, "thread %d: cannot read registers: %s", (int)t->tid,
				strerror(errno));
	return 0;
}

int thread_fs_base(struct thread *t, uint64_t *fs_base)
{
	struct user_regs_struct regs;
	int ret = thread_regs(t, &regs);

	if (!ret)
		*fs_base = regs.fs_base;
	return ret;
}
