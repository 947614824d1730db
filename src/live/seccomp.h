/* What a target thread's seccomp filters would do to a syscall opus means
 * to inject: the mode from /proc, the filters themselves fetched with
 * PTRACE_SECCOMP_GET_FILTER and run as the kernel runs them (every filter,
 * the strictest action wins), on the syscall with its arguments. A syscall
 * the filters would not allow is never injected: a filter that kills or
 * traps would take the target down with it. */
#ifndef OPUS_LIVE_SECCOMP_H
#define OPUS_LIVE_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct seccomp_filters {
	pid_t tid;
	int mode;		    /* 0 none, 1 strict, 2 filter */
	struct sock_filter **progs; /* most recent first, as the kernel lists them */
	size_t *lens;
	size_t n;
};

/* Read the mode and filters of thread tid (seized and stopped). */
int seccomp_load(pid_t tid, struct seccomp_filters *f);
void seccomp_free(struct seccomp_filters *f);
/* 0 if the filters allow syscall nr with args issued from ip; -EPERM with
 * a message naming the syscall and the filters' action otherwise. */
int seccomp_check(const struct seccomp_filters *f, long nr, const uint64_t args[6], uint64_t ip);
/* The same verdict, without a message. */
bool seccomp_allows(const struct seccomp_filters *f, long nr, const uint64_t args[6], uint64_t ip);

#endif
