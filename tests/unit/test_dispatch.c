/* The dispatcher of a per-thread transition, run in this process: a
 * thread the table lists goes to the old code, any other to the new; a
 * slot switched sends its thread to the new; arguments and rax reach the
 * code the stub jumps to as the caller left them. */
#include "live/dispatch.h"
#include "unit.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

typedef long (*func)(long, long);

__attribute__((noinline)) static long old_code(long a, long b)
{
	return a + b;
}

__attribute__((noinline)) static long new_code(long a, long b)
{
	return a * b;
}

/* A variadic callee reads al; the stub must hand it on. */
__attribute__((noinline)) static long count_vector_args(long a, long b)
{
	long al;

	__asm__ volatile("movzbq %%al, %0" : "=r"(al));
	return al + a - a + b - b;
}

static uint64_t thread_pointer(void)
{
	uint64_t tp;

	__asm__("mov %%fs:0, %0" : "=r"(tp));
	return tp;
}

static func stub;

static void *call_from_other_thread(void *arg)
{
	*(long *)arg = stub(6, 7);
	return NULL;
}

static long other_thread_answer(void)
{
	pthread_t t;
	long answer = 0;

	CHECK(pthread_create(&t, NULL, call_from_other_thread, &answer) == 0);
	pthread_join(t, NULL);
	return answer;
}

/* al as a variadic call sets it, through the stub. */
static long call_with_al(func f, long al)
{
	long r;

	/* Past the red zone: the call's return address must not land in it. */
	__asm__ volatile("sub $128, %%rsp\n\t"
			 "mov %[al], %%rax\n\t"
			 "mov $1, %%edi\n\t"
			 "mov $2, %%esi\n\t"
			 "call *%[f]\n\t"
			 "add $128, %%rsp"
			 : "=a"(r)
			 : [al] "r"(al), [f] "r"(f)
			 : "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
	return r;
}

/* In a child whose thread pointer leads nowhere (what a thread that set
 * its own %fs may have): f(6, 7) through the stub, its answer the exit
 * status; -1 if the child died (a fault). No libc runs after the pointer
 * changes, so only the stub and the code it leads to read it. */
static int answer_with_thread_pointer_nowhere(func f)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		/* The default action, not a sanitizer's handler: that one
		 * would read the thread pointer itself, and fault again. */
		struct {
			void *handler;
			unsigned long flags;
			void *restorer;
			unsigned long mask;
		} dfl = {0};

		syscall(SYS_rt_sigaction, SIGSEGV, &dfl, NULL, sizeof(dfl.mask));
		__asm__ volatile("mov $158, %%eax\n\t" /* arch_prctl(ARCH_SET_FS, 0x10) */
				 "mov $0x1002, %%edi\n\t"
				 "mov $0x10, %%esi\n\t"
				 "syscall\n\t"
				 "mov $6, %%edi\n\t"
				 "mov $7, %%esi\n\t"
				 "call *%%rbx\n\t"
				 "mov %%eax, %%edi\n\t"
				 "mov $231, %%eax\n\t" /* exit_group */
				 "syscall"
				 :
				 : "b"(f)
				 : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
				   "memory");
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -2;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The new code for that child: rdi * rsi, in machine code (no prologue
 * that could read %fs). */
static const uint8_t multiply[] = {0x48, 0x89, 0xf8, 0x48, 0x0f, 0xaf, 0xc6, 0xc3};

int main(void)
{
	uint8_t *code =
	    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *table =
	    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(code != MAP_FAILED && table != MAP_FAILED);
	if (code == MAP_FAILED || table == MAP_FAILED)
		return unit_status();
	/* Another thread not yet switched listed first: the scan goes past it. */
	table[0] = thread_pointer() ^ 0x1000;
	table[1] = thread_pointer();
	table[2] = 0;
	dispatch_stub(code, (uint64_t)table, (uint64_t)new_code, (uint64_t)old_code);
	dispatch_stub(code + DISPATCH_STUB_SIZE, (uint64_t)table, (uint64_t)count_vector_args,
		      (uint64_t)count_vector_args);
	CHECK(mprotect(code, 4096, PROT_READ | PROT_EXEC) == 0);
	stub = (func)code;

	CHECK(stub(6, 7) == 13);	    /* this thread: listed, the old code */
	CHECK(other_thread_answer() == 42); /* not listed: the new code */
	table[1] = DISPATCH_SWITCHED;
	CHECK(stub(6, 7) == 42); /* switched: the new code */
	table[0] = 0;
	CHECK(stub(6, 7) == 42); /* an empty table: the new code */
	/* rax (al) as the caller set it, on both paths. */
	table[0] = thread_pointer();
	table[1] = 0;
	CHECK(call_with_al((func)(code + DISPATCH_STUB_SIZE), 3) == 3);
	table[0] = DISPATCH_SWITCHED;
	CHECK(call_with_al((func)(code + DISPATCH_STUB_SIZE), 5) == 5);
	/* Once the table is empty the thread pointer is not read: a thread
	 * whose pointer leads nowhere runs through; while a thread is listed
	 * it is read, and that thread faults (what the apply checks before
	 * listing any). */
	CHECK(mprotect(code, 4096, PROT_READ | PROT_WRITE) == 0);
	memcpy(code + 2 * DISPATCH_STUB_SIZE, multiply, sizeof(multiply));
	dispatch_stub(code + 3 * DISPATCH_STUB_SIZE, (uint64_t)table,
		      (uint64_t)(code + 2 * DISPATCH_STUB_SIZE), (uint64_t)old_code);
	CHECK(mprotect(code, 4096, PROT_READ | PROT_EXEC) == 0);
	table[0] = 0;
	CHECK(answer_with_thread_pointer_nowhere((func)(code + 3 * DISPATCH_STUB_SIZE)) == 42);
	table[0] = thread_pointer();
	CHECK(answer_with_thread_pointer_nowhere((func)(code + 3 * DISPATCH_STUB_SIZE)) == -1);
	munmap(code, 4096);
	munmap(table, 4096);
	return unit_status();
}
