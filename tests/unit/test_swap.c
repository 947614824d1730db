/* The page swap (swap.h) on a live child of this test: four threads call
 * f (answers 1) as fast as they can while the parent, through a real
 * transaction (ptrace, injected syscalls), swaps f's page for one whose f
 * starts with a jump to g (answers 2), then swaps the original back. The
 * child must see the answers change both ways, never die, and keep the
 * page attributed to this binary in its maps. Pages that cannot be
 * swapped that way (anonymous code, a deleted file, a file replaced on
 * disk) are refused with the process unchanged. */
#include "live/inject.h"
#include "live/mem.h"
#include "live/swap.h"
#include "live/txn.h"
#include "unit.h"
#include "util/err.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CALLERS 4

int swap_f(void);
int swap_g(void);

/* f's first instruction has 7 bytes: a jmp replaces its first 5, and
 * no thread can be between them. */
__asm__(".text\n"
	".p2align 12\n"
	".globl swap_f\n"
	"swap_f: movq $1, %rax\n"
	"  ret\n"
	".p2align 5\n"
	".globl swap_g\n"
	"swap_g: movq $2, %rax\n"
	"  ret\n"
	".p2align 12\n");

/* Shared with the child: [0] answers but 1 and 2, [1] and [2] those,
 * [CUT_SHORT] sleeps of its main thread that returned early, [STARTED]
 * its threads that have begun their loop. */
static _Atomic long *answers;
#define CUT_SHORT 3
#define STARTED	  4
/* Where the children have the batch stub (inject.h): 0 runs the swap's
 * syscalls one at a time, as for a process with no patch mapped yet. */
static uint64_t batch_stub;

static void *call_f(void *arg)
{
	int (*volatile f)(void) = swap_f;

	(void)arg;
	atomic_fetch_add(&answers[STARTED], 1);
	for (;;) {
		int a = f();

		atomic_fetch_add(&answers[a == 1 || a == 2 ? a : 0], 1);
	}
	return NULL;
}

static pid_t start_child(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		pthread_t th;

		for (int i = 0; i < CALLERS; i++)
			pthread_create(&th, NULL, call_f, NULL);
		/* The thread that runs the injected syscalls (the first): its
		 * sleep must go on, through the kernel's restart block, as if
		 * nothing had happened. */
		atomic_fetch_add(&answers[STARTED], 1);
		for (;;)
			if (clock_nanosleep(CLOCK_MONOTONIC, 0, &(struct timespec){100, 0}, NULL))
				atomic_fetch_add(&answers[CUT_SHORT], 1);
	}
	return pid;
}

/* Wait (up to 5 s) until every thread of the child has begun its loop:
 * until then its main thread maps the others' stacks, and a count of its
 * maps taken meanwhile changes on its own. */
static int wait_started(void)
{
	for (int i = 0; i < 5000; i++) {
		if (atomic_load(&answers[STARTED]) == CALLERS + 1)
			return 0;
		nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
	}
	return -1;
}

/* Wait (up to 5 s) until answer a has been counted n more times. */
static int wait_answers(int a, long n)
{
	long from = atomic_load(&answers[a]);

	for (int i = 0; i < 5000; i++) {
		if (atomic_load(&answers[a]) >= from + n)
			return 0;
		nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
	}
	return -1;
}

static int swap(pid_t pid, uint64_t page, const uint8_t *content)
{
	struct live_opts o = {.timeout_s = 5};
	struct live_stats st;
	struct txn t;
	int ret = txn_open(&t, pid, &o, &st);

	t.batch_stub = batch_stub;
	if (!ret)
		ret = swap_code_page(&t, page, content, 0);
	if (ret)
		fprintf(stderr, "swap: %s\n", opus_errmsg());
	txn_close(&t);
	return ret;
}

/* The child's maps line for addr, copied out (without its address range). */
static void map_line(pid_t pid, uint64_t addr, char *out, size_t len)
{
	char path[64], line[4300];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	*out = 0;
	if (!(f = fopen(path, "r")))
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		int at = 0;

		if (sscanf(line, "%lx-%lx %n", &lo, &hi, &at) == 2 && addr >= lo && addr < hi) {
			snprintf(out, len, "%s", line + at);
			break;
		}
	}
	fclose(f);
}

static int count_maps(pid_t pid)
{
	char path[64], line[4300];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

static int count_fds(pid_t pid)
{
	char path[64];
	struct dirent *d;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if (!(dir = opendir(path)))
		return -1;
	while ((d = readdir(dir)))
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

static void test_swap_both_ways(pid_t pid)
{
	uint64_t page = (uint64_t)(uintptr_t)swap_f & ~(uint64_t)(SWAP_PAGE - 1);
	uint64_t f = (uint64_t)(uintptr_t)swap_f, g = (uint64_t)(uintptr_t)swap_g;
	uint8_t orig[SWAP_PAGE], jumped[SWAP_PAGE];
	int32_t rel = (int32_t)(g - (f + 5));
	char before[4300], after[4300];

	memcpy(orig, (void *)(uintptr_t)page, SWAP_PAGE);
	memcpy(jumped, orig, SWAP_PAGE);
	jumped[f - page] = 0xe9;
	memcpy(jumped + (f - page) + 1, &rel, sizeof(rel));
	map_line(pid, page, before, sizeof(before));

	CHECK(wait_answers(1, 10000) == 0);
	CHECK(swap(pid, page, jumped) == 0);
	CHECK(wait_answers(2, 10000) == 0);
	map_line(pid, page, after, sizeof(after));
	CHECK(strstr(after, "r-xp") && strchr(before, '/') && strchr(after, '/') &&
	      !strcmp(strchr(after, '/'), strchr(before, '/')));
	CHECK(swap(pid, page, orig) == 0);
	/* Calls already past the entry may still answer 2: count from here. */
	CHECK(wait_answers(1, 10000) == 0);
	CHECK(atomic_load(&answers[CUT_SHORT]) == 0);
	CHECK(atomic_load(&answers[0]) == 0);
	CHECK(waitpid(pid, NULL, WNOHANG) == 0);
}

static int child_byte(pid_t pid, uint64_t addr)
{
	char path[64];
	uint8_t b = 0;
	int fd, n;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY);
	n = fd >= 0 ? (int)pread(fd, &b, 1, (off_t)addr) : -1;
	if (fd >= 0)
		close(fd);
	return n == 1 ? b : -1;
}

/* The first line of /proc/PID/task/PID/FILE that starts with key. */
static void task_line(pid_t pid, const char *file, const char *key, char *out, size_t len)
{
	char path[96], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", (int)pid, (int)pid, file);
	*out = 0;
	if (!(f = fopen(path, "r")))
		return;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key))) {
			snprintf(out, len, "%s", line);
			break;
		}
	fclose(f);
}

static bool asleep(int nr)
{
	return nr == SYS_clock_nanosleep || nr == SYS_restart_syscall;
}

/* opus killed at fault point `at` of a batched swap: the child's main
 * thread, which ran the syscalls, is back in its sleep (cut short, as
 * when an injected syscall's opus dies) with its own signal mask within
 * the stub's second of waiting, no descriptor is left open,
 * and f still answers 1. */
static void test_killed_at(pid_t pid, const char *at)
{
	uint64_t page = (uint64_t)(uintptr_t)swap_f & ~(uint64_t)(SWAP_PAGE - 1);
	uint8_t content[SWAP_PAGE];
	char mask[512], now[512], call[512];
	int fds = count_fds(pid), status = 0;
	pid_t opus;

	memcpy(content, (void *)(uintptr_t)page, SWAP_PAGE);
	task_line(pid, "status", "SigBlk:", mask, sizeof(mask));
	opus = fork();
	if (opus == 0) {
		setenv("OPUS_FAULT_AT", at, 1);
		setenv("OPUS_FAULT_ACTION", "kill", 1);
		swap(pid, page, content);
		_exit(0);
	}
	CHECK(waitpid(opus, &status, 0) == opus && WIFSIGNALED(status));
	for (int i = 0; i < 300; i++) {
		task_line(pid, "syscall", "", call, sizeof(call));
		task_line(pid, "status", "SigBlk:", now, sizeof(now));
		if (asleep(atoi(call)) && !strcmp(now, mask))
			break;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	CHECK(asleep(atoi(call)));
	CHECK(!strcmp(now, mask));
	CHECK(count_fds(pid) == fds);
	CHECK(wait_answers(1, 1000) == 0);
	CHECK(atomic_load(&answers[0]) == 0);
	CHECK(waitpid(pid, NULL, WNOHANG) == 0);
}

/* A page swap cannot take: the process as it was, no mapping added. */
static void check_refused(pid_t pid, uint64_t page, const char *what)
{
	uint8_t content[SWAP_PAGE];
	int n = count_maps(pid), fds = count_fds(pid);

	memcpy(content, (void *)(uintptr_t)page, SWAP_PAGE);
	content[0] = 0xcc;
	CHECK(swap(pid, page, content) == -ENOTSUP);
	CHECK(strstr(opus_errmsg(), what) != NULL);
	CHECK(count_maps(pid) == n);
	CHECK(count_fds(pid) == fds);
	CHECK(child_byte(pid, page) != content[0]);
	CHECK(wait_answers(1, 1000) == 0);
	CHECK(waitpid(pid, NULL, WNOHANG) == 0);
}

/* A page of code mapped r-x from file path (which the caller then
 * removes or replaces). */
static uint64_t map_file_page(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	uint8_t ret[SWAP_PAGE] = {0xc3};
	void *p = MAP_FAILED;

	if (fd >= 0 && write(fd, ret, sizeof(ret)) == (ssize_t)sizeof(ret))
		p = mmap(NULL, SWAP_PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
	if (fd >= 0)
		close(fd);
	return p == MAP_FAILED ? 0 : (uint64_t)(uintptr_t)p;
}

/* A child chrooted to dir: the path its maps show (as opus sees it)
 * leads, in its own root, to another file. */
static pid_t start_chrooted(const char *dir)
{
	pid_t pid = fork();

	if (pid == 0) {
		if (chroot(dir) || chdir("/"))
			_exit(1);
		for (;;)
			pause();
	}
	return pid;
}

/* The batch stub in an executable page of this process, and so of its
 * children. */
static uint64_t place_batch_stub(void)
{
	uint8_t *p =
	    mmap(NULL, SWAP_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return 0;
	inject_batch_stub(p);
	return mprotect(p, SWAP_PAGE, PROT_READ | PROT_EXEC) ? 0 : (uint64_t)(uintptr_t)p;
}

/* Every case, its syscalls run one at a time or in one resume each. */
static void test_all(pid_t pid, pid_t jailed, uint64_t anon, uint64_t gone, uint64_t mapped,
		     uint64_t outside)
{
	test_swap_both_ways(pid);
	check_refused(pid, anon, "not a private read-only mapping");
	check_refused(pid, gone, "no longer on disk");
	check_refused(jailed, mapped, "is not the file mapped");
	check_refused(jailed, outside, "cannot open");
}

int main(void)
{
	char dir[] = "/tmp/opus-swap-XXXXXX", gone[64], mapped[64], outside[64], inside[160];
	uint64_t stub = place_batch_stub(), outside_page;
	void *anon =
	    mmap(NULL, SWAP_PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t gone_page, mapped_page;
	pid_t pid, jailed;

	answers = mmap(NULL, (STARTED + 1) * sizeof(*answers), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (answers == MAP_FAILED || anon == MAP_FAILED || !mkdtemp(dir))
		return 1;
	snprintf(gone, sizeof(gone), "%s/gone", dir);
	snprintf(mapped, sizeof(mapped), "%s/mapped", dir);
	gone_page = map_file_page(gone);
	mapped_page = map_file_page(mapped);
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	outside_page = map_file_page(outside);
	unlink(gone);
	/* The same path inside dir, another file. */
	snprintf(inside, sizeof(inside), "%s/tmp", dir);
	CHECK(!mkdir(inside, 0700));
	snprintf(inside, sizeof(inside), "%s%s", dir, dir);
	CHECK(!mkdir(inside, 0700));
	snprintf(inside, sizeof(inside), "%s%s", dir, mapped);
	CHECK(map_file_page(inside));
	CHECK(stub && gone_page && mapped_page && outside_page);

	pid = start_child();
	jailed = start_chrooted(dir);
	CHECK(pid > 0 && jailed > 0);
	CHECK(pid > 0 && wait_started() == 0);
	if (pid > 0 && jailed > 0) {
		test_all(pid, jailed, (uint64_t)(uintptr_t)anon, gone_page, mapped_page,
			 outside_page);
		batch_stub = stub;
		test_all(pid, jailed, (uint64_t)(uintptr_t)anon, gone_page, mapped_page,
			 outside_page);
		test_killed_at(pid, "setting up a batch of injected syscalls");
		test_killed_at(pid, "waiting for a batch of injected syscalls");
		test_killed_at(pid, "building a page to swap in");
	}
	kill(pid, SIGKILL);
	kill(jailed, SIGKILL);
	waitpid(pid, NULL, 0);
	waitpid(jailed, NULL, 0);
	unlink(inside);
	unlink(mapped);
	unlink(outside);
	snprintf(inside, sizeof(inside), "%s%s", dir, dir);
	rmdir(inside);
	snprintf(inside, sizeof(inside), "%s/tmp", dir);
	rmdir(inside);
	rmdir(dir);
	return unit_status();
}
