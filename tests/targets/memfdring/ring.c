/* Loaded with LD_PRELOAD into a test target: at start, makes the program a
 * memfd of its own named $RING_NAME (say, as opus names its memfds), three
 * pages, maps it read-write and keeps the descriptor open, as audio
 * software keeps a ring buffer. A thread bumps a counter in its second page
 * every 10 ms (the test reads it through /proc/PID/mem): if the mapping
 * goes away, the program dies. The first and third pages are left to the
 * test, which may write a forged opus record there. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile uint64_t *ring;

static void *bump(void *arg)
{
	struct timespec ts = {0, 10 * 1000 * 1000};

	(void)arg;
	for (;;) {
		ring[4096 / 8]++;
		nanosleep(&ts, NULL);
	}
	return NULL;
}

__attribute__((constructor)) static void ring_init(void)
{
	const char *name = getenv("RING_NAME");
	size_t len = 3 * 4096;
	pthread_t t;
	int fd;

	if (!name || (fd = memfd_create(name, 0)) < 0 || ftruncate(fd, (off_t)len))
		return;
	/* Near the program, as opus maps its own: a jump could reach it. */
	ring = mmap((void *)((getauxval(AT_PHDR) & ~0xfffffUL) - (16UL << 20)), len,
		    PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ring == MAP_FAILED)
		_exit(111);
	pthread_create(&t, NULL, bump, NULL);
}
