#include "boost.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

/* More threads want to run, system-wide, than opus has CPUs: the fourth
 * field of /proc/loadavg ("running/total") counts opus too. */
static bool cpus_oversubscribed(void)
{
	char buf[128];
	cpu_set_t set;
	int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	unsigned running = 0;

	if (fd >= 0)
		close(fd);
	if (n <= 0 || sched_getaffinity(0, sizeof(set), &set))
		return false;
	buf[n] = 0;
	return sscanf(buf, "%*s %*s %*s %u/", &running) == 1 && running > (unsigned)CPU_COUNT(&set);
}

void boost_plan(struct boost *b, long nthreads)
{
	int policy = sched_getscheduler(0);

	b->when = BOOST_NEVER;
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
		if (cpus_oversubscribed())
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

	if (!b->on && wanted && !sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &rt))
		b->on = true;
}

void boost_leave(struct boost *b)
{
	if (!b->on)
		return;
	sched_setscheduler(0, b->policy, &b->param);
	b->on = false;
}
