/* Signed patch files. A signature is a trailer line appended to the patch
 * file, "opus-signature 1 ed25519 <key id> <signature>": an Ed25519
 * signature (libsodium) over every byte before it, that is the whole patch
 * file as opus build wrote it. readelf and every reader ignore the trailer.
 *
 * Trust: when the trusted-keys directory exists (default
 * /etc/opus/trusted.d, else $OPUS_TRUSTED_DIR, else --trusted), every patch
 * applied or installed must carry a valid signature by one of its *.pub
 * keys; an unsigned patch, an unknown key or a bad signature is refused
 * before anything else is read. */
#ifndef OPUS_PATCHFILE_SIGN_H
#define OPUS_PATCHFILE_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opatch.h"

#define OPSIGN_DEFAULT_TRUSTED_DIR "/etc/opus/trusted.d"
#define OPSIGN_PK_LEN		   32
#define OPSIGN_SK_LEN		   64
#define OPSIGN_SIG_LEN		   64
#define OPSIGN_ID_HEX		   16 /* hex digits of a key id */

struct opsign_key {
	uint8_t pk[OPSIGN_PK_LEN];
	uint8_t sk[OPSIGN_SK_LEN]; /* zero for a public key */
	char id[OPSIGN_ID_HEX + 1];
};

/* Writes base.key (the secret key, mode 0600) and base.pub; key ids are the
 * first 8 bytes of the public key's SHA-256. */
int opsign_keygen(const char *base, struct opsign_key *k);
int opsign_load_key(const char *path, bool secret, struct opsign_key *k);
void opsign_key_wipe(struct opsign_key *k);

struct opsign_info {
	bool is_signed;
	char key_id[OPSIGN_ID_HEX + 1];
	uint8_t sig[OPSIGN_SIG_LEN];
	size_t body_len; /* the signed bytes: the file without its trailer */
};

/* Finds a signature trailer; without one, body_len is the whole length. A
 * trailer that does not parse is an error. */
int opsign_split(const char *name, const void *buf, size_t len, struct opsign_info *info);

/* Signs the patch at path with k, replacing any signature; writes out
 * (path itself when out is NULL) atomically. */
int opsign_sign(const char *path, const struct opsign_key *k, const char *out);

/* The trusted-keys directory in force: dir, else $OPUS_TRUSTED_DIR, else
 * the default. */
const char *opsign_trusted_dir(const char *dir);

/* Applies the trust policy to a patch file's bytes: 0 when the directory
 * does not exist (no policy) or when the signature is valid by a key in
 * it; else an error naming the file and what is wrong. */
int opsign_check(const char *name, const void *buf, size_t len, const char *trusted_dir,
		 struct opsign_info *info);

/* Reads a patch file under the trust policy: the one entry point for
 * commands that act on processes (apply, install, the daemon). */
int opatch_read_trusted(const char *path, const char *trusted_dir, struct opatch *p);
/* The same, handing back the very bytes read (malloc'd) on success. */
int opatch_read_trusted_bytes(const char *path, const char *trusted_dir, struct opatch *p,
			      char **data, size_t *len);

#endif
