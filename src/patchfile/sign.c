#include "sign.h"
#include "util/err.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/sha256.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRAILER_TAG "\nopus-signature 1 ed25519 "
/* tag, key id, space, signature, newline */
#define TRAILER_LEN (sizeof(TRAILER_TAG) - 1 + OPSIGN_ID_HEX + 1 + 2 * OPSIGN_SIG_LEN + 1)
#define SECRET_TAG  "opus-ed25519-secret-key "
#define PUBLIC_TAG  "opus-ed25519-public-key "

static int sodium_ready(void)
{
	return sodium_init() < 0 ? opus_err(-EIO, "libsodium cannot initialise") : 0;
}

static void key_id(const uint8_t pk[OPSIGN_PK_LEN], char id[OPSIGN_ID_HEX + 1])
{
	uint8_t digest[OPUS_SHA256_LEN];

	opus_sha256(pk, OPSIGN_PK_LEN, digest);
	opus_hex_encode(digest, OPSIGN_ID_HEX / 2, id);
}

void opsign_key_wipe(struct opsign_key *k)
{
	sodium_memzero(k, sizeof(*k));
}

/* ---- key files ---- */

static int write_key(const char *path, mode_t mode, const char *tag, const uint8_t *key, size_t len)
{
	char hex[2 * OPSIGN_SK_LEN + 1], line[256];
	int fd, n, ret = 0;

	opus_hex_encode(key, len, hex);
	n = snprintf(line, sizeof(line), "%s%s\n", tag, hex);
	sodium_memzero(hex, sizeof(hex));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		ret = opus_err(-errno, "%s: %s", path, strerror(errno));
	else if (write(fd, line, (size_t)n) != n || close(fd))
		ret = opus_err(-EIO, "%s: cannot write the key", path);
	sodium_memzero(line, sizeof(line));
	return ret;
}

int opsign_keygen(const char *base, struct opsign_key *k)
{
	char sec[4096], pub[4096];
	int ret = sodium_ready();

	if (ret)
		return ret;
	memset(k, 0, sizeof(*k));
	crypto_sign_keypair(k->pk, k->sk);
	key_id(k->pk, k->id);
	snprintf(sec, sizeof(sec), "%s.key", base);
	snprintf(pub, sizeof(pub), "%s.pub", base);
	ret = write_key(sec, 0600, SECRET_TAG, k->sk, OPSIGN_SK_LEN);
	if (!ret && (ret = write_key(pub, 0644, PUBLIC_TAG, k->pk, OPSIGN_PK_LEN)))
		unlink(sec);
	return ret;
}

int opsign_load_key(const char *path, bool secret, struct opsign_key *k)
{
	const char *tag = secret ? SECRET_TAG : PUBLIC_TAG;
	size_t want = secret ? OPSIGN_SK_LEN : OPSIGN_PK_LEN, len;
	char *text;
	int ret, n;

	if ((ret = opus_read_file(path, &text, &len)))
		return opus_err(ret, "%s: %s", path, strerror(-ret));
	memset(k, 0, sizeof(*k));
	if (strncmp(text, tag, strlen(tag)))
		ret =
		    opus_err(-EINVAL, "%s: not an opus %s key", path, secret ? "secret" : "public");
	/* A secret key others can read is no secret: refuse to sign with it. */
	else if (secret)
		ret = opus_check_owner_mode(path, "secret key", true);
	if (!ret) {
		char *hex = text + strlen(tag);

		hex[strcspn(hex, " \n")] = '\0';
		n = opus_hex_decode(hex, secret ? k->sk : k->pk, want);
		if (n != (int)want)
			ret = opus_err(-EINVAL, "%s: malformed key", path);
	}
	/* An Ed25519 secret key holds its public key in its second half. */
	if (!ret && secret)
		memcpy(k->pk, k->sk + OPSIGN_SK_LEN - OPSIGN_PK_LEN, OPSIGN_PK_LEN);
	if (!ret)
		key_id(k->pk, k->id);
	sodium_memzero(text, len);
	free(text);
	return ret;
}

/* ---- the trailer ---- */

int opsign_split(const char *name, const void *buf, size_t len, struct opsign_info *info)
{
	const char *b = buf, *t;
	char id[OPSIGN_ID_HEX + 1], sig[2 * OPSIGN_SIG_LEN + 1];

	memset(info, 0, sizeof(*info));
	info->body_len = len;
	if (len < TRAILER_LEN)
		return 0;
	t = b + len - TRAILER_LEN;
	if (memcmp(t, TRAILER_TAG, sizeof(TRAILER_TAG) - 1))
		return 0;
	t += sizeof(TRAILER_TAG) - 1;
	memcpy(id, t, OPSIGN_ID_HEX);
	id[OPSIGN_ID_HEX] = '\0';
	memcpy(sig, t + OPSIGN_ID_HEX + 1, sizeof(sig) - 1);
	sig[sizeof(sig) - 1] = '\0';
	if (t[OPSIGN_ID_HEX] != ' ' || b[len - 1] != '\n' ||
	    opus_hex_decode(id, (uint8_t[OPSIGN_ID_HEX / 2]){0}, OPSIGN_ID_HEX / 2) !=
		OPSIGN_ID_HEX / 2 ||
	    opus_hex_decode(sig, info->sig, OPSIGN_SIG_LEN) != OPSIGN_SIG_LEN)
		return opus_err(-EINVAL, "%s: malformed signature trailer", name);
	memcpy(info->key_id, id, sizeof(id));
	info->is_signed = true;
	info->body_len = len - TRAILER_LEN;
	return 0;
}

int opsign_sign(const char *path, const struct opsign_key *k, const char *out)
{
	struct opsign_info info;
	struct opatch p;
	uint8_t sig[OPSIGN_SIG_LEN];
	char hex[2 * OPSIGN_SIG_LEN + 1], *data, *signed_file;
	size_t len;
	int ret = sodium_ready();

	if (ret || (ret = opus_read_file(path, &data, &len)))
		return ret;
	ret = opsign_split(path, data, len, &info);
	/* Only a patch opus can read gets signed. */
	if (!ret && !(ret = opatch_read_mem(path, data, info.body_len, &p)))
		opatch_free(&p);
	signed_file = ret ? NULL : malloc(info.body_len + TRAILER_LEN + 1);
	if (!ret && !signed_file)
		ret = -ENOMEM;
	if (!ret) {
		crypto_sign_detached(sig, NULL, (const uint8_t *)data, info.body_len, k->sk);
		opus_hex_encode(sig, sizeof(sig), hex);
		memcpy(signed_file, data, info.body_len);
		snprintf(signed_file + info.body_len, TRAILER_LEN + 1, "%s%s %s\n", TRAILER_TAG,
			 k->id, hex);
		ret = opus_write_file_atomic(out ? out : path, signed_file,
					     info.body_len + TRAILER_LEN);
	}
	free(signed_file);
	free(data);
	return ret;
}

/* ---- trust ---- */

/* Named on purpose (--trusted or $OPUS_TRUSTED_DIR): then it must be
 * there; only the default may be absent, meaning no policy. */
static bool trusted_dir_named(const char *dir)
{
	const char *env = getenv("OPUS_TRUSTED_DIR");

	return (dir && dir[0]) || (env && env[0]);
}

const char *opsign_trusted_dir(const char *dir)
{
	const char *env = getenv("OPUS_TRUSTED_DIR");

	if (dir && dir[0])
		return dir;
	return env && env[0] ? env : OPSIGN_DEFAULT_TRUSTED_DIR;
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

int opsign_check(const char *name, const void *buf, size_t len, const char *trusted_dir,
		 struct opsign_info *info)
{
	struct opsign_key k;
	struct stat st;
	unsigned nkeys;
	bool named;
	int ret = opsign_split(name, buf, len, info);

	if (ret)
		return ret;
	named = trusted_dir_named(trusted_dir);
	trusted_dir = opsign_trusted_dir(trusted_dir);
	if (stat(trusted_dir, &st) && errno == ENOENT && !named)
		return 0;
	/* Trust fails closed: a directory named on purpose that is missing
	 * (misspelt, a dangling link) or unreadable refuses everything. */
	if ((ret = opus_check_owner_mode(trusted_dir, "trusted keys directory", false)))
		return opus_err_wrap(ret, "%s: refused", name);
	if ((ret = sodium_ready()))
		return ret;
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
	if (crypto_sign_verify_detached(info->sig, buf, info->body_len, k.pk))
		return opus_err(-EKEYREJECTED,
				"%s: refused: the signature by key %s does not match the file "
				"(altered after signing?)",
				name, info->key_id);
	return 0;
}

int opatch_read_trusted_bytes(const char *path, const char *trusted_dir, struct opatch *p,
			      char **data, size_t *len)
{
	struct opsign_info info;
	int ret;

	opatch_init(p);
	if ((ret = opus_read_file(path, data, len)))
		return ret;
	ret = opsign_check(path, *data, *len, trusted_dir, &info);
	if (!ret)
		ret = opatch_read_mem(path, *data, *len, p);
	if (ret) {
		free(*data);
		*data = NULL;
	}
	return ret;
}

int opatch_read_trusted(const char *path, const char *trusted_dir, struct opatch *p)
{
	char *data;
	size_t len;
	int ret = opatch_read_trusted_bytes(path, trusted_dir, p, &data, &len);

	if (!ret)
		free(data);
	return ret;
}
