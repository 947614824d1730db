/* opus's own scheduling while it holds a process. Every ptrace round trip
 * (a thread stopped, a syscall injected, a thread resumed) ends with opus
 * waiting to run again, and when more threads want to run than there are
 * CPUs, that wait is a time slice each time. Measured on 2 cores with 64
 * busy threads: the injections of the map phase kept one target thread
 * stopped for 460-500 ms, and resuming the threads once took 70 ms; with
 * opus at SCHED_FIFO, 1-6 ms and 0.1 ms.
 *
 * So, when the CPUs are oversubscribed, opus runs real-time (SCHED_FIFO,
 * the lowest priority) from the first thread it stops until it lets the
 * process go. With a CPU free, only for the stop of every thread of a
 * process with many: a real-time opus sends its interrupts and detaches
 * without being preempted by each thread it wakes, which then runs on the
 * other CPU. Measured here with blocked threads, the pause went 190 -> 165
 * us at 16 threads, 607 -> 507 at 64, 2353 -> 2018 at 256 (the same at 8).
 * With few, it is slower: each round trip of one thread (the injections of
 * the map phase, a stop of one thread: 25 -> 60 us) wakes the other CPU
 * from sleep, twice. Reading the process and its files comes before and
 * stays at the normal priority, so that opus does not hold a core the
 * target could use for long; the kernel's RT throttling bounds the rest.
 *
 * opus's own threads that hold a process (apply --all's workers) are not
 * load it must get ahead of: they are taken out of the count. And a
 * real-time opus that waits for a target thread to run leaves it only the
 * other CPUs, so at most as many opus threads as there are CPUs less one
 * go real-time at once (one on a single CPU): on 2 CPUs, two workers both
 * real-time starved their targets (the map phase took over 1 ms for 10%
 * of 1000 processes).
 *
 * Where the policy may not be changed (no CAP_SYS_NICE, a container) or
 * opus was started real-time already, it runs as it was. Its children
 * never inherit it (SCHED_RESET_ON_FORK).
 *
 * Before it holds a thread, opus may work in the background instead
 * (boost_background: SCHED_IDLE, on the CPU time the target leaves).
 * Reading the process and its files costs an apply some 6 ms of CPU, and
 * on a server that uses its CPUs that time was taken from its requests:
 * nginx under light load (2 connections, 2 cores), the p99 of its requests
 * while opus applied and reverted a fix went from 2.88-3.69 times its idle
 * p99 (median 3.05) to 1.83-2.93 times (median 2.24; five runs each way,
 * bench/nginx.sh's measure, docs/performance.md). The first thread opus
 * stops brings it back (boost_enter), and so does a watchdog thread after
 * 250 ms: on CPUs that are never idle, a thread in the background would
 * barely run (0.7-2.4 s for an apply beside two busy loops on 2 cores).
 * Not where twice as many threads as CPUs want them (a killed opus would
 * not even exit there), only where opus may come back (CAP_SYS_NICE, or an
 * RLIMIT_NICE that allows it), and only from SCHED_OTHER or SCHED_BATCH. */
#ifndef OPUS_LIVE_BOOST_H
#define OPUS_LIVE_BOOST_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

/* From this many threads, a real-time opus stops them all faster. */
#define BOOST_MIN_THREADS 16

enum boost_when {
	BOOST_NEVER,
	BOOST_STOPPING_ALL, /* many threads, a CPU free: for the global stop */
	BOOST_ANY_STOP,	    /* CPUs oversubscribed: from the first thread stopped */
};

struct boost {
	enum boost_when when;	/* what boost_plan found */
	bool on;		/* opus changed its policy, and boost_leave puts it back */
	bool holding;		/* counted among opus's threads that hold a process */
	bool background;	/* in the background now (boost_background) */
	bool saved;		/* policy and param are opus's own, read before */
	uint64_t since, until;	/* in the background from, and at most until (ns) */
	uint64_t background_ns; /* how long it was, the watchdog's cut included */
	int ncpus;		/* the CPUs opus may run on */
	int policy;
	struct sched_param param;
};

/* Whether opus should go real-time later, for a process of nthreads
 * threads: asked while they run (once stopped, the CPUs look idle). */
void boost_plan(struct boost *b, long nthreads);
/* Real-time from now, if boost_plan wanted it for a stop of every thread
 * (all_threads) or of one, and it is permitted; nothing when already on,
 * or when boost_plan never ran. */
void boost_enter(struct boost *b, bool all_threads);
/* Back to the policy opus had before boost_enter (or boost_background). */
void boost_leave(struct boost *b);
/* The calling thread in the background until boost_enter, boost_leave or
 * boost_foreground, or for 250 ms at most; nothing where it may not. */
void boost_background(struct boost *b);
/* The calling thread back from the background, at its own policy. */
void boost_foreground(struct boost *b);

#endif
