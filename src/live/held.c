/* Pointers the kernel keeps for a process: see held.h. */
#include "held.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include "proc.h"
#include "util/err.h"
#include "util/file.h"

static const char *next_line(const char *line)
{
	const char *nl = strchr(line, '\n');

	return nl ? nl + 1 : NULL;
}

/* Each registration of epoll descriptor fd ("tfd: T events: E data: D"
 * in its fdinfo): -EBUSY if its data points into rs. */
static int check_epoll(pid_t pid, pid_t view, int fd, const struct range_set *rs)
{
	char path[64], *text;
	size_t len;
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)view, fd);
	if ((ret = opus_read_file(path, &text, &len)))
		return ret == -ENOENT ? 0 : ret; /* closed as we listed */
	for (const char *l = text; l && !ret; l = next_line(l)) {
		const struct addr_range *hit;
		unsigned long long data;
		unsigned events;
		int tfd;

		if (sscanf(l, "tfd: %d events: %x data: %llx", &tfd, &events, &data) != 3 ||
		    !(hit = range_set_find(rs, data)))
			continue;
		ret = opus_err(-EBUSY,
			       "process %d: its epoll descriptor %d keeps a pointer into %s "
			       "(0x%llx, the data of descriptor %d's registration), which "
			       "epoll_wait gives back: unmapping it would leave that pointer "
			       "dangling",
			       (int)pid, fd, hit->name, data, tfd);
	}
	free(text);
	return ret;
}

/* Whether descriptor fd (its name under /proc/VIEW/fd) is an epoll
 * descriptor. */
static int add_if_epoll(void *ctx, int fd, const char *target)
{
	struct held_epolls *e = ctx;

	if (strcmp(target, "anon_inode:[eventpoll]"))
		return 0;
	if (OPUS_PUSH(e->fds, e->n, e->cap))
		return -ENOMEM;
	e->fds[e->n++] = fd;
	return 0;
}

int held_list_epolls(pid_t pid, struct held_epolls *e)
{
	e->n = 0;
	return proc_each_fd(pid, add_if_epoll, e);
}

void held_epolls_free(struct held_epolls *e)
{
	free(e->fds);
	*e = (struct held_epolls){0};
}

/* Each POSIX timer ("ID: N", "signal: SIGNO/VALUE", "notify: HOW/..."):
 * -EBUSY if the value of a timer that signals points into rs. */
static int check_timers(pid_t pid, pid_t view, const struct range_set *rs)
{
	char path[64], *text;
	unsigned long long value = 0;
	size_t len;
	int ret, id = -1, signo;

	snprintf(path, sizeof(path), "/proc/%d/timers", (int)view);
	/* Without CONFIG_CHECKPOINT_RESTORE the kernel lists no timers. */
	if ((ret = opus_read_file(path, &text, &len)) == -ENOENT)
		opus_info("process %d: %s cannot be read: its timers' values are not checked",
			  (int)pid, path);
	if (ret)
		return ret == -ENOENT ? 0 : ret;
	for (const char *l = text; l && !ret; l = next_line(l)) {
		const struct addr_range *hit;

		if (sscanf(l, "ID: %d", &id) == 1 ||
		    sscanf(l, "signal: %d/%llx", &signo, &value) == 2)
			continue;
		/* A timer that notifies no one never gives its value back. */
		if (strncmp(l, "notify: ", 8) || !strncmp(l + 8, "none/", 5) ||
		    !(hit = range_set_find(rs, value)))
			continue;
		ret = opus_err(-EBUSY,
			       "process %d: its POSIX timer %d keeps a pointer into %s (0x%llx, "
			       "the value of its signal %d): unmapping it would leave that "
			       "pointer dangling",
			       (int)pid, id, hit->name, value, signo);
	}
	free(text);
	return ret;
}

/* Whether a siginfo of code carries a value its sender gave. */
static bool carries_value(int code)
{
	return code == SI_QUEUE || code == SI_TIMER || code == SI_MESGQ || code == SI_ASYNCIO;
}

/* The signals queued for thread tid (flags 0), or for the whole process
 * (PTRACE_PEEKSIGINFO_SHARED): -EBUSY if a value points into rs. */
static int check_queue(pid_t pid, pid_t tid, unsigned flags, const struct range_set *rs)
{
	siginfo_t si[16];
	long n;

	for (uint64_t off = 0;; off += (uint64_t)n) {
		struct __ptrace_peeksiginfo_args a = {.off = off, .flags = flags, .nr = 16};

		if ((n = ptrace(PTRACE_PEEKSIGINFO, tid, &a, si)) < 0)
			return errno == ESRCH
				   ? 0
				   : opus_err(-errno, "thread %d: PTRACE_PEEKSIGINFO: %s", (int)tid,
					      strerror(errno));
		for (long i = 0; i < n; i++) {
			char who[32];
			uint64_t v = (uint64_t)(uintptr_t)si[i].si_value.sival_ptr;
			const struct addr_range *hit;

			if (!carries_value(si[i].si_code) || !(hit = range_set_find(rs, v)))
				continue;
			if (flags)
				snprintf(who, sizeof(who), "the process");
			else
				snprintf(who, sizeof(who), "thread %d", (int)tid);
			return opus_err(-EBUSY,
					"process %d: signal %d, queued for %s, keeps a pointer "
					"into %s (0x%" PRIx64 ", its value): unmapping it would "
					"leave that pointer dangling",
					(int)pid, si[i].si_signo, who, hit->name, v);
		}
		if (n < 16)
			return 0;
	}
}

int held_check(const struct threads *ts, const struct held_epolls *e, const struct range_set *rs)
{
	pid_t view = proc_view_id(ts->pid), any = 0;
	int ret = 0;

	/* A descriptor closed since the listing has no registrations; one
	 * reused for another epoll instance has them read all the same. */
	for (size_t i = 0; !ret && i < e->n; i++)
		ret = check_epoll(ts->pid, view, e->fds[i], rs);
	if (!ret)
		ret = check_timers(ts->pid, view, rs);
	for (size_t k = 0; !ret && k < ts->n; k++)
		if (ts->v[k].stopped) {
			ret = check_queue(ts->pid, ts->v[k].tid, 0, rs);
			any = any ? any : ts->v[k].tid;
		}
	/* The process's own queue, through any stopped thread. */
	if (!ret && any)
		ret = check_queue(ts->pid, any, PTRACE_PEEKSIGINFO_SHARED, rs);
	return ret;
}
