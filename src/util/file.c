#include "file.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int opus_read_file(const char *path, char **buf, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *p = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return opus_err(-errno, "%s: %s", path, strerror(errno));
	for (;;) {
		ssize_t r;

		if (!p || n + 1 >= cap) {
			char *q = realloc(p, cap *= 2);

			if (!q) {
				free(p);
				close(fd);
				return opus_err(-ENOMEM, "%s: out of memory", path);
			}
			p = q;
		}
		r = read(fd, p + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			free(p);
			close(fd);
			return opus_err(-e, "%s: %s", path, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	p[n] = '\0';
	*buf = p;
	*len = n;
	return 0;
}

int opus_write_file(const char *path, const void *buf, size_t len)
{
	const char *p = buf;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return opus_err(-errno, "%s: %s", path, strerror(errno));
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;

			close(fd);
			return opus_err(-e, "%s: %s", path, strerror(e));
		}
		p += w;
		len -= (size_t)w;
	}
	if (close(fd) < 0)
		return opus_err(-errno, "%s: %s", path, strerror(errno));
	return 0;
}

int opus_write_file_atomic(const char *path, const void *buf, size_t len)
{
	char tmp[4200];
	int ret;

	snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid());
	ret = opus_write_file(tmp, buf, len);
	if (!ret && rename(tmp, path))
		ret = opus_err(-errno, "%s: %s", path, strerror(errno));
	if (ret)
		unlink(tmp);
	return ret;
}

const char *opus_base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

int opus_grow(void *arrayp, size_t *cap, size_t count, size_t elem_size)
{
	void **array = arrayp;
	size_t ncap;
	void *p;

	if (count < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	if (ncap > SIZE_MAX / elem_size)
		return -ENOMEM;
	p = realloc(*array, ncap * elem_size);
	if (!p)
		return -ENOMEM;
	memset((char *)p + *cap * elem_size, 0, (ncap - *cap) * elem_size);
	*array = p;
	*cap = ncap;
	return 0;
}
