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
 * process go. Not otherwise: with a CPU free, a real-time opus made each
 * round trip with one idle thread slower here (a 1-thread stop 25 -> 60
 * us), the woken thread being sent to the other, sleeping CPU. Reading the
 * process and its files comes before and stays at the normal priority, so
 * that opus does not hold a core the target could use for long; the
 * kernel's RT throttling bounds the rest. Where the policy may not be
 * changed (no CAP_SYS_NICE, a container) or opus was started real-time
 * already, it runs as it was. Its children never inherit it
 * (SCHED_RESET_ON_FORK). */
#ifndef OPUS_LIVE_BOOST_H
#define OPUS_LIVE_BOOST_H

#include <sched.h>
#include <stdbool.h>

struct boost {
	bool wanted; /* boost_plan found the CPUs oversubscribed */
	bool on;     /* opus changed its policy, and boost_leave puts it back */
	int policy;
	struct sched_param param;
};

/* Whether opus should go real-time later: asked while the target's
 * threads run (once they are stopped, the CPUs look idle). */
void boost_plan(struct boost *b);
/* Real-time from now, if boost_plan wanted it and it is permitted;
 * nothing when already on, or when boost_plan never ran. */
void boost_enter(struct boost *b);
/* Back to the policy opus had before boost_enter. */
void boost_leave(struct boost *b);

#endif
