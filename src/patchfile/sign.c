#include "sign.h"
#include "opatch.h"
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

#define SECRET_TAG "opus-ed25519-secret-key "
#define PUBLIC_TAG "opus-ed25519-public-key "

static int sodium_ready(void)
{
	return sodium_init() < 0 ? opus_err(-EIO, "libsodium cannot initialise") : 0;
}

static void key_id(const uint8_t pk[OPSIGN_PK_LEN], char id[OPTRAILER_ID_HEX + 1])
{
	uint8_t digest[OPUS_SHA256_LEN];

	opus_sha256(pk, OPSIGN_PK_LEN, digest);
	opus_hex_encode(digest, OPTRAILER_ID_HEX / 2, id);
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

int opsign_sign(const char *path, const struct opsign_key *k, const char *out)
{
	struct optrailer info;
	struct opatch p;
	uint8_t sig[OPTRAILER_SIG_LEN];
	char *data, *signed_file;
	size_t len;
	int ret = sodium_ready();

	if (ret || (ret = opus_read_file(path, &data, &len)))
		return ret;
	ret = optrailer_split(path, data, len, &info);
	/* Only a patch opus can read gets signed. */
	if (!ret && !(ret = opatch_read_mem(path, data, info.body_len, &p)))
		opatch_free(&p);
	signed_file = ret ? NULL : malloc(info.body_len + OPTRAILER_LEN + 1);
	if (!ret && !signed_file)
		ret = -ENOMEM;
	if (!ret) {
		crypto_sign_detached(sig, NULL, (const uint8_t *)data, info.body_len, k->sk);
		memcpy(signed_file, data, info.body_len);
		optrailer_format(k->id, sig, signed_file + info.body_len);
		ret = opus_write_file_atomic(out ? out : path, signed_file,
					     info.body_len + OPTRAILER_LEN);
	}
	free(signed_file);
	free(data);
	return ret;
}

int opsign_verify(const void *buf, const struct optrailer *t, const struct opsign_key *k)
{
	int ret = sodium_ready();

	if (!ret && crypto_sign_verify_detached(t->sig, buf, t->body_len, k->pk))
		ret = -EKEYREJECTED;
	return ret;
}
