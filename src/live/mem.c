#include "mem.h"
#include "proc.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int mem_open(pid_t pid)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)proc_view_id(pid));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return opus_err(-errno, "process %d: cannot open its memory: %s", (int)pid,
				strerror(errno));
	return fd;
}

int mem_read(int fd, uint64_t addr, void *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len, (off_t)addr);

	if (n != (ssize_t)len)
		return opus_err(n < 0 ? -errno : -EIO, "cannot read %zu bytes at 0x%llx", len,
				(unsigned long long)addr);
	return 0;
}

/* The k spans into buf, in a row; how many bytes of it they take. */
static size_t read_batch(pid_t view_pid, int fd, const struct iovec *spans, size_t k, uint8_t *buf,
			 bool *whole, size_t *nwhole)
{
	size_t len = 0, at = 0;
	ssize_t got;

	for (size_t i = 0; i < k; i++)
		len += spans[i].iov_len;
	got = process_vm_readv(view_pid, &(struct iovec){buf, len}, 1, spans, k, 0);
	for (size_t i = 0; i < k; i++) {
		size_t part = spans[i].iov_len;

		/* It stops at the first span it could not read in full. */
		if (got >= (ssize_t)part) {
			whole[i] = true;
			got -= (ssize_t)part;
		} else {
			got = 0;
			whole[i] = pread(fd, buf + at, part, (off_t)(uintptr_t)spans[i].iov_base) ==
				   (ssize_t)part;
		}
		*nwhole += whole[i];
		at += part;
	}
	return at;
}

size_t mem_read_spans(pid_t view_pid, int fd, const struct iovec *spans, size_t n, void *buf,
		      bool *whole)
{
	uint8_t *at = buf;
	size_t nwhole = 0;

	for (size_t i = 0; i < n; i += IOV_MAX) {
		size_t k = n - i < IOV_MAX ? n - i : IOV_MAX;

		at += read_batch(view_pid, fd, spans + i, k, at, whole + i, &nwhole);
	}
	return nwhole;
}

int mem_write(int fd, uint64_t addr, const void *buf, size_t len)
{
	ssize_t n = pwrite(fd, buf, len, (off_t)addr);

	if (n != (ssize_t)len)
		return opus_err(n < 0 ? -errno : -EIO, "cannot write %zu bytes at 0x%llx", len,
				(unsigned long long)addr);
	return 0;
}

int mem_read_string(int fd, uint64_t addr, char *buf, size_t size)
{
	/* One read: it stops short at the first unreadable page, which is
	 * where the string must have ended anyway. */
	ssize_t n = pread(fd, buf, size - 1, (off_t)addr);

	if (n <= 0)
		return opus_err(n < 0 ? -errno : -EIO, "cannot read a string at 0x%llx",
				(unsigned long long)addr);
	buf[n] = '\0';
	if ((size_t)n == size - 1 && !memchr(buf, '\0', (size_t)n))
		return opus_err(-ENAMETOOLONG, "string at 0x%llx longer than %zu bytes",
				(unsigned long long)addr, size - 1);
	return 0;
}
