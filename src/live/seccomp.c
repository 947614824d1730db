#include "seccomp.h"
#include "proc.h"
#include "util/err.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif
#define MAX_FILTERS 512

static int read_mode(pid_t tid, int *mode)
{
	uint64_t v = 0;
	int ret = proc_status_u64(tid, "Seccomp", 10, &v);

	/* A kernel without seccomp shows no line: no filter either. */
	if (ret == -ENODATA)
		ret = 0;
	*mode = (int)v;
	return ret;
}

static int fetch(struct seccomp_filters *f, unsigned long index)
{
	long n = ptrace(PTRACE_SECCOMP_GET_FILTER, f->tid, (void *)index, NULL);
	struct sock_filter *prog, **progs;
	size_t *lens;

	if (n < 0)
		return -errno;
	/* A few filters at most: grow by one. */
	if ((progs = realloc(f->progs, (f->n + 1) * sizeof(*progs))))
		f->progs = progs;
	if ((lens = realloc(f->lens, (f->n + 1) * sizeof(*lens))))
		f->lens = lens;
	if (!progs || !lens || !(prog = calloc((size_t)n + 1, sizeof(*prog))))
		return -ENOMEM;
	if (ptrace(PTRACE_SECCOMP_GET_FILTER, f->tid, (void *)index, prog) != n) {
		free(prog);
		return -EIO;
	}
	f->progs[f->n] = prog;
	f->lens[f->n++] = (size_t)n;
	return 0;
}

int seccomp_load(pid_t tid, struct seccomp_filters *f)
{
	int ret;

	memset(f, 0, sizeof(*f));
	f->tid = tid;
	if ((ret = read_mode(tid, &f->mode)))
		return opus_err(ret, "thread %d: cannot read its seccomp mode", (int)tid);
	for (unsigned long i = 0; f->mode == SECCOMP_MODE_FILTER && i < MAX_FILTERS; i++) {
		ret = fetch(f, i);
		if (ret == -ENOENT && i > 0)
			return 0;
		if (ret == -EACCES || ret == -EPERM)
			return opus_err(ret,
					"thread %d runs under seccomp filters, and reading them "
					"needs CAP_SYS_ADMIN: opus will not inject syscalls blind",
					(int)tid);
		if (ret)
			return opus_err(ret, "thread %d: cannot read its seccomp filters: %s",
					(int)tid, strerror(-ret));
	}
	return 0;
}

void seccomp_free(struct seccomp_filters *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->progs[i]);
	free(f->progs);
	free(f->lens);
	memset(f, 0, sizeof(*f));
}

static bool jump_taken(uint16_t code, uint32_t a, uint32_t v)
{
	switch (BPF_OP(code)) {
	case BPF_JEQ:
		return a == v;
	case BPF_JGT:
		return a > v;
	case BPF_JGE:
		return a >= v;
	default: /* BPF_JSET */
		return (a & v) != 0;
	}
}

static uint32_t alu(uint16_t code, uint32_t a, uint32_t v, bool *ok)
{
	switch (BPF_OP(code)) {
	case BPF_ADD:
		return a + v;
	case BPF_SUB:
		return a - v;
	case BPF_MUL:
		return a * v;
	case BPF_DIV:
		return v ? a / v : (*ok = false, 0);
	case BPF_MOD:
		return v ? a % v : (*ok = false, 0);
	case BPF_OR:
		return a | v;
	case BPF_AND:
		return a & v;
	case BPF_XOR:
		return a ^ v;
	case BPF_LSH:
		return v < 32 ? a << v : 0;
	case BPF_RSH:
		return v < 32 ? a >> v : 0;
	case BPF_NEG:
		return -a;
	default:
		*ok = false;
		return 0;
	}
}

/* Classic BPF as seccomp allows it; anything malformed, or a division by
 * zero, ends the program with 0: SECCOMP_RET_KILL_THREAD, as in the kernel. */
static uint32_t run(const struct sock_filter *p, size_t n, const struct seccomp_data *d)
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
	bool ok = true;

	for (size_t pc = 0; pc < n && ok; pc++) {
		const struct sock_filter *i = &p[pc];
		uint32_t k = i->k, src = BPF_SRC(i->code) == BPF_X ? x : k;

		switch (BPF_CLASS(i->code)) {
		case BPF_LD:
			if (BPF_MODE(i->code) == BPF_ABS && k % 4 == 0 && k + 4 <= sizeof(*d))
				memcpy(&a, (const char *)d + k, 4);
			else if (BPF_MODE(i->code) == BPF_IMM)
				a = k;
			else if (BPF_MODE(i->code) == BPF_MEM && k < BPF_MEMWORDS)
				a = mem[k];
			else if (BPF_MODE(i->code) == BPF_LEN)
				a = sizeof(*d);
			else
				ok = false;
			break;
		case BPF_LDX:
			if (BPF_MODE(i->code) == BPF_IMM)
				x = k;
			else if (BPF_MODE(i->code) == BPF_MEM && k < BPF_MEMWORDS)
				x = mem[k];
			else if (BPF_MODE(i->code) == BPF_LEN)
				x = sizeof(*d);
			else
				ok = false;
			break;
		case BPF_ST:
		case BPF_STX:
			if (k >= BPF_MEMWORDS)
				ok = false;
			else
				mem[k] = BPF_CLASS(i->code) == BPF_ST ? a : x;
			break;
		case BPF_ALU:
			a = alu(i->code, a, src, &ok);
			break;
		case BPF_JMP:
			if (BPF_OP(i->code) == BPF_JA)
				pc += k;
			else
				pc += jump_taken(i->code, a, src) ? i->jt : i->jf;
			break;
		case BPF_RET:
			return BPF_RVAL(i->code) == BPF_A ? a : k;
		case BPF_MISC:
			if (BPF_MISCOP(i->code) == BPF_TAX)
				x = a;
			else
				a = x;
			break;
		}
	}
	return SECCOMP_RET_KILL_THREAD;
}

static const char *action_name(uint32_t ret, char *buf, size_t len)
{
	switch (ret & SECCOMP_RET_ACTION_FULL) {
	case SECCOMP_RET_KILL_PROCESS:
		return "kill the process";
	case SECCOMP_RET_KILL_THREAD:
		return "kill the thread";
	case SECCOMP_RET_TRAP:
		return "raise SIGSYS";
	case SECCOMP_RET_ERRNO:
		snprintf(buf, len, "fail with errno %u", ret & SECCOMP_RET_DATA);
		return buf;
	case SECCOMP_RET_USER_NOTIF:
		return "wait for a supervisor";
	case SECCOMP_RET_TRACE:
		return "stop for its tracer";
	default:
		snprintf(buf, len, "return 0x%x", ret);
		return buf;
	}
}

static const char *syscall_name(long nr, char *buf, size_t len)
{
	switch (nr) {
	case SYS_memfd_create:
		return "memfd_create";
	case SYS_mmap:
		return "mmap";
	case SYS_munmap:
		return "munmap";
	case SYS_mprotect:
		return "mprotect";
	case SYS_close:
		return "close";
	case SYS_rt_sigreturn:
		return "rt_sigreturn";
	default:
		snprintf(buf, len, "syscall %ld", nr);
		return buf;
	}
}

/* The action the filters take on syscall nr with args from ip. */
static uint32_t verdict(const struct seccomp_filters *f, long nr, const uint64_t args[6],
			uint64_t ip)
{
	struct seccomp_data d = {
	    .nr = (int)nr, .arch = AUDIT_ARCH_X86_64, .instruction_pointer = ip};
	uint32_t ret = SECCOMP_RET_ALLOW;

	if (f->mode == SECCOMP_MODE_STRICT)
		return nr == SYS_rt_sigreturn ? SECCOMP_RET_ALLOW : SECCOMP_RET_KILL_THREAD;
	memcpy(d.args, args, sizeof(d.args));
	/* Every filter runs; the strictest action wins (kernel/seccomp.c). */
	for (size_t i = 0; i < f->n; i++) {
		uint32_t cur = run(f->progs[i], f->lens[i], &d);

		if ((int32_t)(cur & SECCOMP_RET_ACTION_FULL) <
		    (int32_t)(ret & SECCOMP_RET_ACTION_FULL))
			ret = cur;
	}
	return ret;
}

static bool allowed(uint32_t action)
{
	action &= SECCOMP_RET_ACTION_FULL;
	return action == SECCOMP_RET_ALLOW || action == SECCOMP_RET_LOG;
}

bool seccomp_allows(const struct seccomp_filters *f, long nr, const uint64_t args[6], uint64_t ip)
{
	return allowed(verdict(f, nr, args, ip));
}

int seccomp_check(const struct seccomp_filters *f, long nr, const uint64_t args[6], uint64_t ip)
{
	uint32_t action = verdict(f, nr, args, ip);
	char a[64], s[32];

	if (allowed(action))
		return 0;
	if (f->mode == SECCOMP_MODE_STRICT)
		return opus_err(-EPERM,
				"thread %d is in seccomp strict mode: %s would kill it; refusing",
				(int)f->tid, syscall_name(nr, s, sizeof(s)));
	return opus_err(-EPERM, "thread %d: its seccomp filter would %s on %s; refusing",
			(int)f->tid, action_name(action, a, sizeof(a)),
			syscall_name(nr, s, sizeof(s)));
}
