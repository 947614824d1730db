#include "watch.h"
#include "live/proc.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long the self-test waits to hear about a child it forks. */
#define SELFTEST_MS 500

static int push_pid(pid_t **pids, size_t *n, size_t *cap, pid_t pid)
{
	if (OPUS_PUSH(*pids, *n, *cap))
		return -ENOMEM;
	(*pids)[(*n)++] = pid;
	return 0;
}

/* ---- netlink process connector ---- */

static int nl_listen(int fd, enum proc_cn_mcast_op op)
{
	/* netlink header, connector header, then the operation. */
	char msg[NLMSG_LENGTH(sizeof(struct cn_msg) + sizeof(op))]
	    __attribute__((aligned(NLMSG_ALIGNTO)));
	struct nlmsghdr *nl = (struct nlmsghdr *)msg;
	struct cn_msg *cn = NLMSG_DATA(nl);

	memset(msg, 0, sizeof(msg));
	nl->nlmsg_len = sizeof(msg);
	nl->nlmsg_type = NLMSG_DONE;
	nl->nlmsg_pid = (__u32)getpid();
	cn->id.idx = CN_IDX_PROC;
	cn->id.val = CN_VAL_PROC;
	cn->len = sizeof(op);
	memcpy(cn->data, &op, sizeof(op));
	return send(fd, msg, sizeof(msg), 0) < 0 ? -errno : 0;
}

static int nl_open(void)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC};
	int fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
	int ret;

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (ret = nl_listen(fd, PROC_CN_MCAST_LISTEN))) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

/* Drains the socket; new processes and execs go to *pids. */
static int nl_read(int fd, pid_t **pids, size_t *n, size_t *cap)
{
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));

	for (;;) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h;

		if (len < 0)
			/* ENOBUFS: events were dropped; the daemon's sweep covers them. */
			return errno == EAGAIN || errno == ENOBUFS || errno == EINTR ? 0 : -errno;
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
			struct cn_msg *cn = NLMSG_DATA(h);
			struct proc_event ev;
			pid_t pid = 0;

			if (h->nlmsg_type != NLMSG_DONE || cn->id.idx != CN_IDX_PROC ||
			    h->nlmsg_len < NLMSG_LENGTH(sizeof(*cn) + sizeof(ev)))
				continue;
			/* The event sits at a 4-byte offset; it holds 8-byte fields. */
			memcpy(&ev, cn->data, sizeof(ev));
			if (ev.what == PROC_EVENT_EXEC)
				pid = ev.event_data.exec.process_tgid;
			else if (ev.what == PROC_EVENT_FORK &&
				 ev.event_data.fork.child_pid == ev.event_data.fork.child_tgid)
				pid = ev.event_data.fork.child_tgid;
			if (pid > 0 && push_pid(pids, n, cap, pid))
				return -ENOMEM;
		}
	}
}

/* Events can be silently withheld (a process outside the initial pid
 * namespace hears nothing): fork a child and see whether we hear of it. */
static bool nl_hears(int fd)
{
	pid_t *pids = NULL, child = fork();
	size_t n = 0, cap = 0;
	bool heard = false;

	if (child == 0)
		_exit(0);
	if (child < 0)
		return false;
	for (int waited = 0; !heard && waited < SELFTEST_MS; waited += 10) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};

		if (poll(&pfd, 1, 10) > 0 && nl_read(fd, &pids, &n, &cap) == 0)
			for (size_t i = 0; i < n; i++)
				heard |= pids[i] == child;
	}
	waitpid(child, NULL, 0);
	free(pids);
	return heard;
}

/* ---- polling ---- */

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

/* Pids in /proc now that the last scan did not have. */
static int poll_scan(struct watch *w, pid_t **pids, size_t *n, size_t *cap)
{
	pid_t *now;
	size_t nnow;
	int ret = proc_pids(&now, &nnow);

	if (ret)
		return ret;
	qsort(now, nnow, sizeof(*now), cmp_pid);
	for (size_t i = 0, k = 0; !ret && i < nnow; i++) {
		while (k < w->nknown && w->known[k] < now[i])
			k++;
		if (w->known && (k == w->nknown || w->known[k] != now[i]))
			ret = push_pid(pids, n, cap, now[i]);
	}
	free(w->known);
	w->known = now;
	w->nknown = nnow;
	return ret;
}

/* ---- the interface ---- */

int watch_open(struct watch *w, bool no_netlink, unsigned poll_ms)
{
	pid_t *none = NULL;
	size_t n = 0, cap = 0;
	int fd, ret;

	memset(w, 0, sizeof(*w));
	w->nl_fd = -1;
	w->poll_ms = poll_ms ? poll_ms : 50;
	if (no_netlink) {
		snprintf(w->why_polling, sizeof(w->why_polling), "asked to poll");
	} else if ((fd = nl_open()) < 0) {
		snprintf(w->why_polling, sizeof(w->why_polling),
			 "netlink process connector unavailable: %s", strerror(-fd));
	} else if (!nl_hears(fd)) {
		snprintf(w->why_polling, sizeof(w->why_polling),
			 "netlink process connector reports no events here");
		close(fd);
	} else {
		w->nl_fd = fd;
		return 0;
	}
	/* The first scan only learns what exists. */
	ret = poll_scan(w, &none, &n, &cap);
	free(none);
	return ret;
}

void watch_close(struct watch *w)
{
	if (w->nl_fd >= 0) {
		nl_listen(w->nl_fd, PROC_CN_MCAST_IGNORE);
		close(w->nl_fd);
	}
	free(w->known);
	memset(w, 0, sizeof(*w));
	w->nl_fd = -1;
}

int watch_wait(struct watch *w, int timeout_ms, pid_t **pids, size_t *n, size_t *cap)
{
	if (w->nl_fd >= 0) {
		struct pollfd pfd = {.fd = w->nl_fd, .events = POLLIN};
		int r = poll(&pfd, 1, timeout_ms);

		if (r < 0)
			return errno == EINTR ? 0 : opus_err(-errno, "poll: %s", strerror(errno));
		return r ? nl_read(w->nl_fd, pids, n, cap) : 0;
	}
	/* Sleep until the next scan is due or the caller's timeout. */
	uint64_t due = w->scanned_ns + (uint64_t)w->poll_ms * 1000000, now = opus_now_ns();
	int until_due = due > now ? (int)((due - now) / 1000000) : 0;

	if (timeout_ms > until_due)
		timeout_ms = until_due;
	if (timeout_ms > 0)
		nanosleep(&(struct timespec){timeout_ms / 1000, (timeout_ms % 1000) * 1000000L},
			  NULL);
	if (opus_now_ns() < due)
		return 0;
	w->scanned_ns = opus_now_ns();
	return poll_scan(w, pids, n, cap);
}
