/* Pointers the kernel keeps for a process beyond its threads' registers,
 * and gives back to it later as they were given: the data of each epoll
 * registration (epoll_wait returns it), the value of each POSIX timer's
 * signal and of each queued signal (the handler's siginfo). A revert that
 * unmapped a patch one of them points into would leave the program to
 * follow it into nothing. /proc lists the first two (an epoll
 * descriptor's fdinfo, /proc/PID/timers) and PTRACE_PEEKSIGINFO the
 * queues. Not read: io_uring's user data of requests in flight, an AIO
 * control block, a message queue's notification. */
#ifndef OPUS_LIVE_HELD_H
#define OPUS_LIVE_HELD_H

#include <sys/types.h>

#include "ptrace.h"
#include "scan.h"

/* The epoll descriptors of a process, listed before a stop: reading the
 * link of each descriptor costs about 6 us (60 ms for 10,000), too long
 * for the pause. Not seen: an epoll descriptor created between the
 * listing and the stop. */
struct held_epolls {
	int *fds;
	size_t n, cap;
};

int held_list_epolls(pid_t pid, struct held_epolls *e);
void held_epolls_free(struct held_epolls *e);

/* With every thread of ts stopped, so that none changes what the kernel
 * keeps meanwhile: 0, or -EBUSY naming the registration (of an epoll
 * descriptor of e), timer or queued signal whose pointer points into rs
 * (the program may let go of it: a retry may find it gone). Another
 * negative errno if /proc could not be read. */
int held_check(const struct threads *ts, const struct held_epolls *e, const struct range_set *rs);

#endif
