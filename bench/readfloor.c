/* The floor of the scan for suspended stacks: reading the memory it reads
 * (every touched page of the private writable mappings) once, one thread,
 * 1 MB per process_vm_readv, nothing tested. readfloor PID RUNS prints the
 * median microseconds and the bytes read. The process is not stopped: it
 * idles in accept, as the bench leaves it. */
#define _GNU_SOURCE
#include "floor.h"

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define PAGE  4096u
#define CHUNK (1u << 20)

/* Read the touched pages of [lo, hi) into buf; the bytes read. */
static uint64_t read_touched(pid_t pid, int pagemap, uint64_t lo, uint64_t hi, char *buf)
{
	uint64_t bytes = 0, e[CHUNK / PAGE];

	for (uint64_t at = lo; at < hi; at += CHUNK) {
		size_t n = (hi - at < CHUNK ? hi - at : CHUNK) / PAGE;

		if (pread(pagemap, e, n * 8, (off_t)(at / PAGE * 8)) != (ssize_t)(n * 8))
			continue;
		for (size_t p = 0; p < n;) {
			size_t run = 0;

			while (p + run < n && e[p + run] >> 62)
				run++;
			if (run) {
				struct iovec l = {buf, run * PAGE};
				struct iovec r = {(void *)(uintptr_t)(at + p * PAGE), run * PAGE};

				if (process_vm_readv(pid, &l, 1, &r, 1, 0) > 0)
					bytes += run * PAGE;
			}
			p += run ? run : 1;
		}
	}
	return bytes;
}

/* One pass over every private writable mapping but the stack. */
static uint64_t read_all(pid_t pid, int pagemap, char *buf)
{
	char path[64], line[512], perms[8];
	uint64_t lo, hi, bytes = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	if (!(f = fopen(path, "r")))
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && perms[1] == 'w' &&
		    perms[3] == 'p' && !strstr(line, "[stack]") && !strstr(line, "[vvar]"))
			bytes += read_touched(pid, pagemap, lo, hi, buf);
	fclose(f);
	return bytes;
}

int main(int argc, char **argv)
{
	pid_t pid = argc > 2 ? atoi(argv[1]) : 0;
	int runs = argc > 2 ? atoi(argv[2]) : 0, pagemap;
	char path[64], *buf = malloc(CHUNK);
	double *us = calloc(runs > 0 ? runs : 1, sizeof(*us));
	uint64_t bytes = 0;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	if (runs <= 0 || !buf || !us || (pagemap = open(path, O_RDONLY)) < 0) {
		fprintf(stderr, "usage: readfloor PID RUNS\n");
		return 2;
	}
	memset(buf, 0, CHUNK);
	for (int i = 0; i < runs; i++) {
		double t0 = now_us();

		bytes = read_all(pid, pagemap, buf);
		us[i] = now_us() - t0;
	}
	qsort(us, runs, sizeof(*us), cmp_double);
	printf("%.0f %lu\n", us[runs / 2], (unsigned long)bytes);
	return 0;
}
