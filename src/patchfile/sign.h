/* Keys and signing: Ed25519 (libsodium) key pairs, and the signature
 * trailer (trailer.h) over a whole patch file as opus build wrote it. What
 * a signature is trusted for is trust.h's. */
#ifndef OPUS_PATCHFILE_SIGN_H
#define OPUS_PATCHFILE_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trailer.h"

#define OPSIGN_PK_LEN 32
#define OPSIGN_SK_LEN 64

struct opsign_key {
	uint8_t pk[OPSIGN_PK_LEN];
	uint8_t sk[OPSIGN_SK_LEN]; /* zero for a public key */
	char id[OPTRAILER_ID_HEX + 1];
};

/* Writes base.key (the secret key, mode 0600) and base.pub; key ids are the
 * first 8 bytes of the public key's SHA-256. */
int opsign_keygen(const char *base, struct opsign_key *k);
int opsign_load_key(const char *path, bool secret, struct opsign_key *k);
void opsign_key_wipe(struct opsign_key *k);

/* Signs the patch at path with k, replacing any signature; writes out
 * (path itself when out is NULL) atomically. */
int opsign_sign(const char *path, const struct opsign_key *k, const char *out);

/* 0 when t's signature of buf's body is k's; -EKEYREJECTED when not. */
int opsign_verify(const void *buf, const struct optrailer *t, const struct opsign_key *k);

#endif
