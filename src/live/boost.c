#include "boost.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

/* opus's own threads that hold a process (apply --all's workers), and those
 * of them real-time now. */
static atomic_int holding, boosted;

/* More threads want to run, system-wide, than opus has CPUs. The fourth
 * field of /proc/loadavg ("running/total") counts opus's own threads too:
 * they are taken out, or two workers on two CPUs would look like a load
 * that a real-time opus must get ahead of. */
static bool cpus_oversubscribed(int ncpus)
{
	char buf[128];
	int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	unsigned running = 0;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	return sscanf(buf, "%*s %*s %*s %u/", &running) == 1 &&
	       (long)running - atomic_load(&holding) >= ncpus;
}

static int cpus_usable(void)
{
	cpu_set_t set;

	return sched_getaffinity(0, sizeof(set), &set) ? 1 : CPU_COUNT(&set);
}

void boost_plan(struct boost *b, long nthreads)
{
	int policy = sched_getscheduler(0);

	b->when = BOOST_NEVER;
	if (!b->holding)
		atomic_fetch_add(&holding, 1);
	b->holding = true;
	b->ncpus = cpus_usable();
	/* Started real-time (chrt) or deadline: whoever did knows better. */
	if (policy < 0)
		return;
	switch (policy & ~SCHED_RESET_ON_FORK) {
	case SCHED_OTHER:
	case SCHED_BATCH:
	case SCHED_IDLE:
		b->policy = policy;
		if (sched_getparam(0, &b->param))
			return;
		if (cpus_oversubscribed(b->ncpus))
			b->when = BOOST_ANY_STOP;
		else if (nthreads >= BOOST_MIN_THREADS)
			b->when = BOOST_STOPPING_ALL;
	}
}

void boost_enter(struct boost *b, bool all_threads)
{
	/* The lowest real-time priority: above every normal thread. */
	struct sched_param rt = {.sched_priority = 1};

	bool wanted = b->when == BOOST_ANY_STOP || (all_threads && b->when == BOOST_STOPPING_ALL);

	if (b->on || !wanted)
		return;
	/* A real-time opus waiting on a target thread leaves it no CPU but
	 * the others: one CPU is always left to them (apply --all's workers
	 * all real-time on 2 CPUs starved their targets: 10% of the map
	 * phases took over 1 ms). A single CPU is the exception. */
	if (atomic_fetch_add(&boosted, 1) >= (b->ncpus > 1 ? b->ncpus - 1 : 1)) {
		atomic_fetch_sub(&boosted, 1);
		return;
	}
	if (!sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &rt))
		b->on = true;
	else
		atomic_fetch_sub(&boosted, 1);
}

void boost_leave(struct boost *b)
{
	if (b->holding)
		atomic_fetch_sub(&holding, 1);
	b->holding = false;
	if (!b->on)
		return;
	sched_setscheduler(0, b->policy, &b->param);
	atomic_fetch_sub(&boosted, 1);
	b->on = false;
}
