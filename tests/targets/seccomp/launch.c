/* Runs a program under a seccomp filter, as sandboxed services do:
 *   launch RULE PROGRAM [ARGS...]
 * RULE: kill-memfd (memfd_create kills the process), trap-memfd (it raises
 * SIGSYS), errno-noreplace (mmap with MAP_FIXED_NOREPLACE fails with EPERM),
 * kill-getpid (getpid kills the process: opus may not catch a busy thread
 * with its exit stub), kill-mprotect-rw-low (making memory read-write near
 * the program kills the process: opus may not make a patch's dispatchers'
 * table writable), allow (a filter that allows everything: opus must
 * still work).
 *   launch strict
 * enters strict mode itself and echoes stdin to stdout, byte by byte. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define ALLOW	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

static int install(struct sock_filter *f, unsigned short n)
{
	struct sock_fprog prog = {n, f};

	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	       syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

/* action on syscall nr, everything else allowed. */
static int deny(int nr, unsigned action)
{
	struct sock_filter f[] = {
	    LOAD(arch),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	    LOAD(nr),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, action),
	    ALLOW,
	};

	return install(f, sizeof(f) / sizeof(f[0]));
}

/* mmap with MAP_FIXED_NOREPLACE (the flags are its fourth argument) fails. */
static int deny_noreplace(void)
{
	struct sock_filter f[] = {
	    LOAD(nr),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 3),
	    LOAD(args[3]),
	    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MAP_FIXED_NOREPLACE, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	    ALLOW,
	};

	return install(f, sizeof(f) / sizeof(f[0]));
}

/* mprotect to read-write below 0x700000000000 kills the process: where
 * opus maps a patch, within reach of the program. The loader's RELRO
 * (read-only) and glibc's thread arenas (mapped high) pass. */
static int kill_mprotect_rw_low(void)
{
	struct sock_filter f[] = {
	    LOAD(nr),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 0, 5),
	    LOAD(args[2]),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_READ | PROT_WRITE, 0, 3),
	    /* The upper half of the address (little-endian). */
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]) + 4),
	    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x7000, 1, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	    ALLOW,
	};

	return install(f, sizeof(f) / sizeof(f[0]));
}

static int strict_echo(void)
{
	char c;

	printf("ready 0\n");
	fflush(stdout);
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT))
		return 1;
	while (read(0, &c, 1) == 1)
		if (write(1, &c, 1) != 1)
			break;
	syscall(SYS_exit, 0);
	return 0;
}

int main(int argc, char **argv)
{
	int ret;

	if (argc == 2 && !strcmp(argv[1], "strict"))
		return strict_echo();
	if (argc < 3)
		return fprintf(stderr, "usage: launch RULE PROGRAM [ARGS...]\n"), 2;
	if (!strcmp(argv[1], "kill-memfd"))
		ret = deny(SYS_memfd_create, SECCOMP_RET_KILL_PROCESS);
	else if (!strcmp(argv[1], "trap-memfd"))
		ret = deny(SYS_memfd_create, SECCOMP_RET_TRAP);
	else if (!strcmp(argv[1], "kill-getpid"))
		ret = deny(SYS_getpid, SECCOMP_RET_KILL_PROCESS);
	else if (!strcmp(argv[1], "kill-mprotect-rw-low"))
		ret = kill_mprotect_rw_low();
	else if (!strcmp(argv[1], "errno-noreplace"))
		ret = deny_noreplace();
	else if (!strcmp(argv[1], "allow"))
		ret = deny(-1, SECCOMP_RET_KILL_PROCESS);
	else
		return fprintf(stderr, "launch: unknown rule %s\n", argv[1]), 2;
	if (ret)
		return perror("launch: seccomp"), 1;
	execv(argv[2], argv + 2);
	perror("launch: exec");
	return 1;
}
