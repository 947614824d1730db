#include "store.h"
#include "trust.h"
#include "util/err.h"
#include "util/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *opstore_dir(const char *dir)
{
	const char *env = getenv("OPUS_STORE");

	if (dir && dir[0])
		return dir;
	return env && env[0] ? env : OPSTORE_DEFAULT_DIR;
}

/* NNNNNN-<id>.opatch; anything else in the directory is not ours. */
static int parse_name(const char *name, struct opstore_entry *e)
{
	size_t n = strlen(name), idlen;
	char *end;
	unsigned long seq = strtoul(name, &end, 10);

	if (end != name + 6 || *end != '-' || n < 8 + strlen(".opatch") ||
	    strcmp(name + n - strlen(".opatch"), ".opatch"))
		return -EINVAL;
	idlen = n - 7 - strlen(".opatch");
	if (idlen > OPATCH_ID_MAX)
		return -EINVAL;
	memcpy(e->id, name + 7, idlen);
	e->id[idlen] = '\0';
	e->seq = (unsigned)seq;
	return opatch_id_valid(e->id) ? 0 : -EINVAL;
}

static int by_seq(const void *a, const void *b)
{
	const struct opstore_entry *x = a, *y = b;

	return (x->seq > y->seq) - (x->seq < y->seq);
}

int opstore_list(const char *dir, struct opstore_entry **v, size_t *n)
{
	struct dirent *d;
	size_t cap = 0;
	DIR *dh = opendir(dir);

	int ret;

	*v = NULL;
	*n = 0;
	if (!dh)
		return errno == ENOENT
			   ? 0
			   : opus_err(-errno, "patch store %s: %s", dir, strerror(errno));
	/* What others could write there is not what an admin installed. */
	if ((ret = opus_check_owner_mode(dir, "patch store", false))) {
		closedir(dh);
		return ret;
	}
	while ((d = readdir(dh))) {
		struct opstore_entry e;

		if (parse_name(d->d_name, &e))
			continue;
		snprintf(e.path, sizeof(e.path), "%s/%s", dir, d->d_name);
		if ((ret = opus_check_owner_mode(e.path, "stored patch", false))) {
			closedir(dh);
			free(*v);
			*v = NULL;
			*n = 0;
			return ret;
		}
		if (OPUS_PUSH(*v, *n, cap)) {
			closedir(dh);
			free(*v);
			*v = NULL;
			*n = 0;
			return -ENOMEM;
		}
		(*v)[(*n)++] = e;
	}
	closedir(dh);
	if (*n > 1)
		qsort(*v, *n, sizeof(**v), by_seq);
	return 0;
}

static int find(const char *dir, const char *id, struct opstore_entry *out, unsigned *next_seq)
{
	struct opstore_entry *v;
	size_t n;
	int ret = opstore_list(dir, &v, &n), found = 0;

	if (ret)
		return ret;
	if (next_seq)
		*next_seq = n ? v[n - 1].seq + 1 : 1;
	for (size_t i = 0; i < n && !found; i++)
		if (!strcmp(v[i].id, id)) {
			*out = v[i];
			found = 1;
		}
	free(v);
	return found;
}

int opstore_install(const char *dir, const char *patch_path, const char *trusted_dir,
		    struct opatch *p)
{
	struct opstore_entry e;
	unsigned seq = 0;
	char dst[4200], *data;
	size_t len;
	int ret;

	/* Validate the very bytes that are stored. */
	if ((ret = optrust_read_bytes(patch_path, trusted_dir, p, &data, &len)))
		return ret;
	if (mkdir(dir, 0700) && errno != EEXIST)
		ret = opus_err(-errno, "patch store %s: %s", dir, strerror(errno));
	if (!ret && (ret = find(dir, p->id, &e, &seq)) == 1)
		ret = opus_err(-EEXIST, "patch %s is already installed in %s", p->id, dir);
	if (!ret && seq > 999999)
		ret = opus_err(-ENOSPC, "patch store %s: install numbers exhausted", dir);
	if (!ret) {
		snprintf(dst, sizeof(dst), "%s/%06u-%s.opatch", dir, seq, p->id);
		/* Atomic: the daemon never reads half a file. */
		ret = opus_write_file_atomic(dst, data, len);
	}
	free(data);
	if (ret)
		opatch_free(p);
	return ret;
}

int opstore_uninstall(const char *dir, const char *id)
{
	struct opstore_entry e;
	int ret = find(dir, id, &e, NULL);

	if (ret < 0)
		return ret;
	if (!ret)
		return opus_err(-ENOENT, "patch %s is not installed in %s", id, dir);
	if (unlink(e.path))
		return opus_err(-errno, "%s: %s", e.path, strerror(errno));
	return 0;
}
