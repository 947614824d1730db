#include "rseq.h"
#include "mem.h"
#include "util/err.h"

#include <stdint.h>
#include <sys/ptrace.h>

/* uapi/linux/rseq.h: struct rseq's rseq_cs, and what it points to. */
#define RSEQ_CS_OFFSET 8

struct rseq_cs {
	uint32_t version, flags;
	uint64_t start_ip, post_commit_offset, abort_ip;
};

/* The kernel's own checks (rseq.c, rseq_get_rseq_cs): it jumps to no
 * handler that fails them. */
static bool valid_descriptor(int mem_fd, const struct rseq_cs *cs, uint32_t signature)
{
	uint32_t sig = 0;

	return !cs->version && cs->start_ip + cs->post_commit_offset >= cs->start_ip &&
	       cs->abort_ip - cs->start_ip >= cs->post_commit_offset &&
	       !mem_read(mem_fd, cs->abort_ip - sizeof(sig), &sig, sizeof(sig)) && sig == signature;
}

bool rseq_abort_section(pid_t tid, int mem_fd, struct user_regs_struct *regs)
{
	struct __ptrace_rseq_configuration conf = {0};
	struct rseq_cs cs;
	uint64_t cs_addr = 0;

	/* Before Linux 5.13 the area cannot be asked for. */
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, (void *)sizeof(conf), &conf) <= 0 ||
	    !conf.rseq_abi_pointer ||
	    mem_read(mem_fd, conf.rseq_abi_pointer + RSEQ_CS_OFFSET, &cs_addr, sizeof(cs_addr)) ||
	    !cs_addr || mem_read(mem_fd, cs_addr, &cs, sizeof(cs)))
		return false;
	/* Outside it, the section is one it has left: the kernel clears
	 * rseq_cs lazily. */
	if (regs->rip - cs.start_ip >= cs.post_commit_offset ||
	    !valid_descriptor(mem_fd, &cs, conf.signature))
		return false;
	opus_info("thread %d: inside a restartable sequence at 0x%llx, sent to its abort handler "
		  "at 0x%llx",
		  (int)tid, (unsigned long long)regs->rip, (unsigned long long)cs.abort_ip);
	regs->rip = cs.abort_ip;
	return true;
}
