#include "file.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int opus_read_fd(int fd, const char *name, char **buf, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *p = NULL;

	for (;;) {
		ssize_t r;

		if (!p || n + 1 >= cap) {
			char *q = realloc(p, cap *= 2);

			if (!q) {
				free(p);
				return opus_err(-ENOMEM, "%s: out of memory", name);
			}
			p = q;
		}
		r = read(fd, p + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			free(p);
			return opus_err(-e, "%s: %s", name, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	p[n] = '\0';
	*buf = p;
	*len = n;
	return 0;
}

int opus_read_file(const char *path, char **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0)
		return opus_err(-errno, "%s: %s", path, strerror(errno));
	ret = opus_read_fd(fd, path, buf, len);
	close(fd);
	return ret;
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

int opus_tmp_beside(const char *path, mode_t mode, char *tmp, size_t len)
{
	int fd;

	snprintf(tmp, len, "%s.XXXXXX", path);
	fd = mkstemp(tmp); /* O_EXCL: never a file or link already there */
	if (fd < 0)
		return opus_err(-errno, "%s: cannot create a file beside it: %s", path,
				strerror(errno));
	if (fchmod(fd, mode) < 0) {
		int e = errno;

		close(fd);
		unlink(tmp);
		return opus_err(-e, "%s: %s", tmp, strerror(e));
	}
	return fd;
}

static int write_all_fd(int fd, const char *path, const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return opus_err(-errno, "%s: %s", path, strerror(errno));
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int opus_write_file_atomic(const char *path, const void *buf, size_t len)
{
	char tmp[4200];
	int fd = opus_tmp_beside(path, 0644, tmp, sizeof(tmp)), ret;

	if (fd < 0)
		return fd;
	ret = write_all_fd(fd, tmp, buf, len);
	if (close(fd) < 0 && !ret)
		ret = opus_err(-errno, "%s: %s", tmp, strerror(errno));
	if (!ret && rename(tmp, path))
		ret = opus_err(-errno, "%s: %s", path, strerror(errno));
	if (ret)
		unlink(tmp);
	return ret;
}

void opus_normalize_path(char *path)
{
	char *out = path, *in = path;

	if (*in != '/')
		return;
	while (*in) {
		size_t len;

		while (*in == '/')
			in++;
		len = strcspn(in, "/");
		if (len == 1 && in[0] == '.') {
			/* nothing */
		} else if (len == 2 && in[0] == '.' && in[1] == '.') {
			while (out > path && *--out != '/')
				;
		} else if (len) {
			*out++ = '/';
			memmove(out, in, len);
			out += len;
		}
		in += len;
	}
	if (out == path)
		*out++ = '/';
	*out = '\0';
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

int opus_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

size_t opus_lower_bound_u64(const void *base, size_t n, size_t size, uint64_t key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t k;

		memcpy(&k, (const char *)base + mid * size, sizeof(k));
		if (k < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int opus_check_owner_mode(const char *path, const char *what, bool secret)
{
	struct stat st;
	mode_t forbid = secret ? 077 : 022;

	if (stat(path, &st) < 0)
		return opus_err(-errno, "%s %s: %s", what, path, strerror(errno));
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return opus_err(-EPERM, "%s %s: owned by uid %u, neither root nor you: refused",
				what, path, (unsigned)st.st_uid);
	if (st.st_mode & forbid)
		return opus_err(-EPERM, "%s %s: %s by others (mode %03o): refused", what, path,
				secret ? "readable or writable" : "writable",
				(unsigned)(st.st_mode & 0777));
	return 0;
}

/* mkdir -p, each new directory 0700. */
static int make_parents(const char *dir)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s", dir);
	for (char *s = path + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			if (mkdir(path, 0700) < 0 && errno != EEXIST)
				return -errno;
			*s = '/';
		}
	return 0;
}

int opus_private_dir(const char *dir, const char *what, bool parents)
{
	struct stat st;
	int ret = parents ? make_parents(dir) : 0;

	if (ret || (mkdir(dir, 0700) < 0 && errno != EEXIST))
		return opus_err(ret ? ret : -errno, "%s: cannot create the %s: %s", dir, what,
				strerror(ret ? -ret : errno));
	if (lstat(dir, &st) < 0)
		return opus_err(-errno, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
		return opus_err(-EPERM,
				"%s: the %s must be a directory owned by uid %u and writable by "
				"no one else",
				dir, what, (unsigned)geteuid());
	return 0;
}
