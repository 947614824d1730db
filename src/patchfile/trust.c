#include "trust.h"
#include "sign.h"
#include "util/err.h"
#include "util/file.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Named on purpose (--trusted or $OPUS_TRUSTED_DIR): then it must be
 * there; only the default may be absent, meaning no policy. */
static bool trusted_dir_named(const char *dir)
{
	const char *env = getenv("OPUS_TRUSTED_DIR");

	return (dir && dir[0]) || (env && env[0]);
}

const char *optrust_dir(const char *dir)
{
	const char *env = getenv("OPUS_TRUSTED_DIR");

	if (dir && dir[0])
		return dir;
	return env && env[0] ? env : OPTRUST_DEFAULT_DIR;
}

/* The trusted key with this id: 1 found, 0 not, -errno. */
static int find_trusted(const char *dir, const char *id, struct opsign_key *k, unsigned *nkeys)
{
	struct dirent *d;
	DIR *dh = opendir(dir);
	int found = 0;

	*nkeys = 0;
	if (!dh)
		return opus_err(-errno, "trusted keys %s: %s", dir, strerror(errno));
	while (!found && (d = readdir(dh))) {
		size_t n = strlen(d->d_name);
		char path[4200];

		if (n < 5 || strcmp(d->d_name + n - 4, ".pub"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		/* A key others could have written is no trust at all. */
		if ((found = opus_check_owner_mode(path, "trusted key", false)))
			break;
		if (opsign_load_key(path, false, k))
			continue; /* not a key of ours: it trusts nothing */
		(*nkeys)++;
		found = id && !strcmp(k->id, id);
	}
	closedir(dh);
	return found;
}

int optrust_check(const char *name, const void *buf, const struct optrailer *info,
		  const char *trusted_dir)
{
	struct opsign_key k;
	struct stat st;
	unsigned nkeys;
	bool named;
	int ret;

	named = trusted_dir_named(trusted_dir);
	trusted_dir = optrust_dir(trusted_dir);
	if (stat(trusted_dir, &st) && errno == ENOENT && !named)
		return 0;
	/* Trust fails closed: a directory named on purpose that is missing
	 * (misspelt, a dangling link) or unreadable refuses everything. */
	if ((ret = opus_check_owner_mode(trusted_dir, "trusted keys directory", false)))
		return opus_err_wrap(ret, "%s: refused", name);
	ret = find_trusted(trusted_dir, info->is_signed ? info->key_id : NULL, &k, &nkeys);
	if (ret < 0)
		return opus_err_wrap(ret, "%s: refused", name);
	if (!nkeys)
		return opus_err(-EKEYREJECTED,
				"%s: refused: %s holds no trusted key (*.pub), so no patch can be "
				"trusted",
				name, trusted_dir);
	if (!info->is_signed)
		return opus_err(-EKEYREJECTED,
				"%s: refused: not signed, and %s requires a signature by one of "
				"its %u key(s)",
				name, trusted_dir, nkeys);
	if (!ret)
		return opus_err(-EKEYREJECTED, "%s: refused: signed by key %s, which is not in %s",
				name, info->key_id, trusted_dir);
	if (opsign_verify(buf, info, &k))
		return opus_err(-EKEYREJECTED,
				"%s: refused: the signature by key %s does not match the file "
				"(altered after signing?)",
				name, info->key_id);
	return 0;
}

int optrust_read_bytes(const char *path, const char *trusted_dir, struct opatch *p, char **data,
		       size_t *len)
{
	struct optrailer info;
	int ret;

	opatch_init(p);
	if ((ret = opus_read_file(path, data, len)))
		return ret;
	ret = optrailer_split(path, *data, *len, &info);
	if (!ret)
		ret = optrust_check(path, *data, &info, trusted_dir);
	if (!ret)
		ret = opatch_read_mem(path, *data, info.body_len, p);
	if (ret) {
		free(*data);
		*data = NULL;
	}
	return ret;
}

int optrust_read(const char *path, const char *trusted_dir, struct opatch *p)
{
	char *data;
	size_t len;
	int ret = optrust_read_bytes(path, trusted_dir, p, &data, &len);

	if (!ret)
		free(data);
	return ret;
}
