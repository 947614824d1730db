/* A thread that no stop reaches until another thread acts: it read()s a
 * file into a page registered with userfaultfd, and the kernel's copy
 * into the page waits for the handler thread, which answers the fault
 * only once a byte arrives on a pipe. Asked to stop meanwhile, the reader
 * never does: each try at the fault returns at once for the pending stop,
 * and the kernel tries again. The main thread prints "tick N VALUE" every
 * 10 ms; value() is what a patch changes. Prints "ready FD" (the pipe's
 * write end), then "answered" and "read N" once the byte has come. */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int uffd, go[2];
static char *page;

__attribute__((noinline)) int value(int n)
{
	return 1000 + n % 3;
}

static void *reader(void *arg)
{
	int fd = open("/etc/hostname", O_RDONLY);

	(void)arg;
	printf("read %zd\n", read(fd, page, 64));
	return NULL;
}

static void *handler(void *arg)
{
	static char zero[4096];
	struct uffdio_copy copy = {
	    .dst = (unsigned long)page, .src = (unsigned long)zero, .len = sizeof(zero)};
	struct uffd_msg msg;
	char c;

	(void)arg;
	if (read(uffd, &msg, sizeof(msg)) != sizeof(msg) || read(go[0], &c, 1) != 1 ||
	    ioctl(uffd, UFFDIO_COPY, &copy))
		perror("handler");
	else
		puts("answered");
	return NULL;
}

int main(void)
{
	struct uffdio_api api = {.api = UFFD_API};
	struct uffdio_register reg = {.mode = UFFDIO_REGISTER_MODE_MISSING};
	pthread_t t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	reg.range.start = (unsigned long)page;
	reg.range.len = 4096;
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg) ||
	    pipe(go)) {
		perror("userfaultfd");
		return 1;
	}
	pthread_create(&t, NULL, handler, NULL);
	pthread_create(&t, NULL, reader, NULL);
	printf("ready %d\n", go[1]);
	for (int n = 0;; n++) {
		printf("tick %d %d\n", n, value(n));
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
}
