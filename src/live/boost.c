#include "boost.h"
#include "util/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* opus's own threads that hold a process (apply --all's workers), and those
 * of them real-time now. */
static atomic_int holding, boosted;

/* How many threads want to run now, system-wide: the fourth field of
 * /proc/loadavg ("running/total"), less opus's own threads that hold a
 * process, or two workers on two CPUs would look like a load that a
 * real-time opus must get ahead of. */
static long threads_wanting_cpus(void)
{
	char buf[128];
	int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	unsigned running = 0;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	if (sscanf(buf, "%*s %*s %*s %u/", &running) != 1)
		return 0;
	return (long)running - atomic_load(&holding);
}

/* More threads want to run than opus has CPUs. */
static bool cpus_oversubscribed(int ncpus)
{
	return threads_wanting_cpus() >= ncpus;
}

static int cpus_usable(void)
{
	cpu_set_t set;

	return sched_getaffinity(0, sizeof(set), &set) ? 1 : CPU_COUNT(&set);
}

/* ---- in the background: opus's threads that hold no target thread ---- */

#define BACKGROUND_NS  (250 * 1000 * 1000ull)
#define BACKGROUND_MAX 64 /* opus threads in the background at once */

/* A thread in the background since, and the policy it goes back to. */
struct waiting {
	pid_t tid; /* 0: a free slot */
	uint64_t until;
	int policy;
	struct sched_param param;
};

static pthread_mutex_t bg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bg_cond;
static struct waiting bg[BACKGROUND_MAX];
static bool watchdog_running;

/* Going back from SCHED_IDLE takes CAP_SYS_NICE, or an RLIMIT_NICE that
 * allows the thread's nice value (sched(7)): without either, a thread in
 * the background would stay there. */
static bool may_come_back_now(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	struct rlimit rl;
	int nice;

	if (!syscall(SYS_capget, &h, d) && (d[0].effective & (1u << CAP_SYS_NICE)))
		return true;
	errno = 0;
	nice = getpriority(PRIO_PROCESS, 0);
	return !errno && !getrlimit(RLIMIT_NICE, &rl) &&
	       (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)(20 - nice));
}

static bool may_come_back_answer;

static void ask_may_come_back(void)
{
	may_come_back_answer = may_come_back_now();
}

/* Asked once: neither changes while opus runs (apply --all asked it for
 * every process). */
static bool may_come_back(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, ask_may_come_back);
	return may_come_back_answer;
}

static void come_back(struct waiting *w)
{
	sched_setscheduler(w->tid, w->policy, &w->param);
	w->tid = 0;
}

/* Brings back every thread that has been in the background too long: at
 * its normal priority, it runs where a thread of opus in the background
 * would not (it is the only one that may change their policy then). */
static void *watchdog(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&bg_lock);
	for (;;) {
		uint64_t now = opus_now_ns(), next = 0;

		for (size_t i = 0; i < BACKGROUND_MAX; i++) {
			if (!bg[i].tid)
				continue;
			if (bg[i].until <= now)
				come_back(&bg[i]);
			else if (!next || bg[i].until < next)
				next = bg[i].until;
		}
		if (!next) {
			pthread_cond_wait(&bg_cond, &bg_lock);
			continue;
		}
		pthread_cond_timedwait(&bg_cond, &bg_lock,
				       &(struct timespec){(time_t)(next / 1000000000ull),
							  (long)(next % 1000000000ull)});
	}
	return NULL;
}

/* Started once, at the normal priority (SCHED_RESET_ON_FORK gives it
 * that from a thread in the background); called with bg_lock held. */
static bool start_watchdog(void)
{
	pthread_condattr_t ca;
	pthread_t th;

	if (watchdog_running)
		return true;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&bg_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&th, NULL, watchdog, NULL))
		return false;
	pthread_detach(th);
	return watchdog_running = true;
}

/* BACKGROUND_NS, or OPUS_BACKGROUND_MS (for tests that watch it). */
static uint64_t background_budget(void)
{
	const char *env = getenv("OPUS_BACKGROUND_MS");
	char *end;
	unsigned long ms = env ? strtoul(env, &end, 10) : 0;

	return env && *env && !*end && ms > 0 ? ms * 1000000ull : BACKGROUND_NS;
}

/* A slot for this thread, with the watchdog told; NULL if none. Sets the
 * stay's since and until. */
static struct waiting *wait_in_background(struct boost *b)
{
	struct waiting *w = NULL;

	pthread_mutex_lock(&bg_lock);
	for (size_t i = 0; !w && i < BACKGROUND_MAX; i++)
		if (!bg[i].tid)
			w = &bg[i];
	if (w && start_watchdog()) {
		b->since = opus_now_ns();
		b->until = b->since + background_budget();
		*w = (struct waiting){gettid(), b->until, b->policy, b->param};
		pthread_cond_signal(&bg_cond);
	} else
		w = NULL;
	pthread_mutex_unlock(&bg_lock);
	return w;
}

void boost_background(struct boost *b)
{
	int policy = sched_getscheduler(0);

	if (b->background || policy < 0 || sched_getparam(0, &b->param))
		return;
	/* Started real-time, idle or deadline: whoever did knows better. */
	if ((policy & ~SCHED_RESET_ON_FORK) != SCHED_OTHER &&
	    (policy & ~SCHED_RESET_ON_FORK) != SCHED_BATCH)
		return;
	b->policy = policy;
	b->saved = true;
	/* Where twice as many threads as CPUs want them, a thread in the
	 * background would not run before the watchdog's cut, and one killed
	 * there would not even exit: its teardown waits at SCHED_IDLE too
	 * (an opus built with ASan, killed beside 100 busy threads, was still
	 * unmapping its memory minutes later, and held its lock on the
	 * target). */
	/* (Less this thread: it is running, and not yet counted as holding.) */
	if (threads_wanting_cpus() - 1 >= 2 * cpus_usable() || !may_come_back() ||
	    !wait_in_background(b))
		return;
	if (sched_setscheduler(0, SCHED_IDLE | SCHED_RESET_ON_FORK, &(struct sched_param){0})) {
		boost_foreground(b);
		return;
	}
	b->background = true;
}

void boost_foreground(struct boost *b)
{
	pid_t tid = gettid();

	pthread_mutex_lock(&bg_lock);
	for (size_t i = 0; i < BACKGROUND_MAX; i++)
		if (bg[i].tid == tid)
			come_back(&bg[i]);
	pthread_mutex_unlock(&bg_lock);
	if (b->background) {
		uint64_t now = opus_now_ns();

		b->background_ns += (now < b->until ? now : b->until) - b->since;
	}
	b->background = false;
}

void boost_plan(struct boost *b, long nthreads)
{
	int policy = b->saved ? b->policy : sched_getscheduler(0);

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
		if (!b->saved && sched_getparam(0, &b->param))
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

	if (b->background)
		boost_foreground(b);
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
	if (b->background)
		boost_foreground(b);
	if (!b->on)
		return;
	sched_setscheduler(0, b->policy, &b->param);
	atomic_fetch_sub(&boosted, 1);
	b->on = false;
}
