/* Threads blocked in the kernel in calls that a stop can make fail: a
 * tracer's interrupt makes epoll_wait and io_uring_enter return EINTR
 * where no signal handler ran (signal(7): "Interruption of system calls
 * and library functions by stop signals"), which a program that never
 * stops has no reason to expect. This one treats the error as fatal, as
 * many do: it says so and exits.
 *
 * One thread waits in epoll_wait on a pipe; another waits in
 * io_uring_enter for the completion of a read of a second pipe, submitted
 * with IOSQE_ASYNC so that the kernel gives the read to an io_uring
 * worker (iou-wrk), a thread of the process that runs only in the kernel.
 * The main thread prints "tick N VALUE" every 10 ms; value() is what a
 * patch changes. Prints "ready EPOLL_FD URING_FD", the write ends of the
 * two pipes; a byte written to each makes the waiters print "epoll C" and
 * "read N". */
#include <errno.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int epoll_pipe[2], read_pipe[2], ring;
static struct io_uring_params params;
static unsigned char *cq_ring;
static char read_buf[64];

__attribute__((noinline)) int value(int n)
{
	return 1000 + n % 3;
}

__attribute__((noreturn)) static void fatal(const char *call, int err)
{
	printf("failed %s: %s\n", call, strerror(err));
	fflush(stdout);
	exit(3);
}

static void *epoller(void *arg)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int ep = epoll_create1(0);
	char c;

	(void)arg;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, epoll_pipe[0], &ev))
		fatal("epoll_ctl", errno);
	for (;;) {
		if (epoll_wait(ep, &ev, 1, -1) < 0)
			fatal("epoll_wait", errno);
		if (read(epoll_pipe[0], &c, 1) == 1)
			printf("epoll %c\n", c);
	}
	return NULL;
}

/* The read's completion: waits in io_uring_enter until it is posted. */
static void *completion_waiter(void *arg)
{
	unsigned *head = (unsigned *)(cq_ring + params.cq_off.head);
	unsigned *tail = (unsigned *)(cq_ring + params.cq_off.tail);
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq_ring + params.cq_off.cqes);

	(void)arg;
	for (;;) {
		if (syscall(SYS_io_uring_enter, ring, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
			fatal("io_uring_enter", errno);
		while (*head != __atomic_load_n(tail, __ATOMIC_ACQUIRE)) {
			printf("read %d\n",
			       cqes[*head & *(unsigned *)(cq_ring + params.cq_off.ring_mask)].res);
			__atomic_store_n(head, *head + 1, __ATOMIC_RELEASE);
		}
	}
	return NULL;
}

/* One read of read_pipe, handed to an io_uring worker. */
static void submit_read(void)
{
	size_t sq_len, cq_len;
	unsigned char *sq;
	struct io_uring_sqe *sqes;

	if ((ring = (int)syscall(SYS_io_uring_setup, 4, &params)) < 0)
		fatal("io_uring_setup", errno);
	sq_len = params.sq_off.array + params.sq_entries * sizeof(unsigned);
	cq_len = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
	sq = mmap(NULL, sq_len > cq_len ? sq_len : cq_len, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
	sqes = mmap(NULL, params.sq_entries * sizeof(*sqes), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || sqes == MAP_FAILED || !(params.features & IORING_FEAT_SINGLE_MMAP))
		fatal("mmap of the rings", errno);
	cq_ring = sq;
	memset(&sqes[0], 0, sizeof(sqes[0]));
	sqes[0].opcode = IORING_OP_READ;
	sqes[0].fd = read_pipe[0];
	sqes[0].addr = (unsigned long)read_buf;
	sqes[0].len = sizeof(read_buf);
	sqes[0].flags = IOSQE_ASYNC;
	((unsigned *)(sq + params.sq_off.array))[0] = 0;
	__atomic_store_n((unsigned *)(sq + params.sq_off.tail), 1, __ATOMIC_RELEASE);
	if (syscall(SYS_io_uring_enter, ring, 1, 0, 0, NULL, 0) != 1)
		fatal("io_uring_enter (submit)", errno);
}

int main(void)
{
	pthread_t t;
	int n = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pipe(epoll_pipe) || pipe(read_pipe))
		fatal("pipe", errno);
	submit_read();
	pthread_create(&t, NULL, epoller, NULL);
	pthread_create(&t, NULL, completion_waiter, NULL);
	printf("ready %d %d\n", epoll_pipe[1], read_pipe[1]);
	for (;;) {
		printf("tick %d %d\n", n, value(n));
		n++;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
}
