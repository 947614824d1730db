/* The signal handlers the kernel keeps for a process, looked at before a
 * patch is unmapped. A handler the new code installed that leads into the
 * patch (a function only the patch has) would be left dangling, and no
 * read of the process's memory sees it: the kernel holds it. /proc tells
 * only which signals are caught (SigCgt); each one's handler is asked for
 * with rt_sigaction run in the target, every thread stopped: two ptrace
 * stops a signal, 0.9-3.8 ms of a revert's pause for the ten a server
 * catches. So they are asked only of a patch whose code may make a
 * pointer to a function of its own (its record says): no other can have
 * given the kernel one. */
#include "txn.h"
#include "inject.h"
#include "mem.h"
#include "seccomp.h"
#include "util/err.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/syscall.h>

/* What rt_sigaction reads and writes on x86-64. */
struct kernel_sigaction {
	uint64_t handler, flags, restorer, mask;
};

static bool in_patch(const struct txn *t, uint64_t a)
{
	return a - t->base < t->size;
}

/* Signal sig's action, in *act: 0, 1 if it cannot be asked for (the
 * target's filter would refuse the query; it refused the new code the
 * same call, so no handler was installed since the filter went in), or a
 * negative errno. */
static int ask_action(struct injector *in, uint64_t at, int sig, struct kernel_sigaction *act)
{
	uint64_t args[6] = {(uint64_t)sig, 0, at, sizeof(act->mask)};
	long r = 0;
	int ret;

	if (!seccomp_allows(in->filters, SYS_rt_sigaction, args, in->g.syscall_ret + 2))
		return 1;
	ret = inject_syscall(in, SYS_rt_sigaction, args, &r);
	if (!ret && r)
		return 1; /* SIGKILL and SIGSTOP have none */
	return ret ? ret : mem_read(in->mem_fd, at, act, sizeof(*act));
}

int sighand_check_outside(struct txn *t)
{
	struct kernel_sigaction act = {0};
	struct injector in = {0};
	uint64_t caught = 0, at = 0;
	int ret;

	if (!t->entry.code_pointers || proc_status_u64(t->pid, "SigCgt", 16, &caught) || !caught)
		return 0;
	ret = txn_injector(t, &in);
	if (!ret)
		ret = inject_push(&in, &act, sizeof(act), &at);
	for (int sig = 1; !ret && sig <= 64; sig++) {
		if (!(caught >> (sig - 1) & 1) || (ret = ask_action(&in, at, sig, &act)) == 1) {
			ret = 0;
			continue;
		}
		t->st->handlers_asked += !ret;
		if (!ret && (in_patch(t, act.handler) || in_patch(t, act.restorer)))
			ret = opus_err(
			    -EADDRINUSE,
			    "process %d: the handler of signal %d (SIG%s) is at 0x%" PRIx64
			    ", in patch %s (its new code installed it): unmapping the "
			    "patch would leave the handler dangling",
			    (int)t->pid, sig, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?",
			    in_patch(t, act.handler) ? act.handler : act.restorer, t->entry.id);
	}
	return ret;
}
