#include "sha256.h"

#include <sodium.h>

void opus_sha256(const void *data, size_t len, uint8_t out[OPUS_SHA256_LEN])
{
	/* libsodium asks for sodium_init first (it is idempotent); its SHA-256
	 * is plain C and needs nothing it sets up, so a failure changes
	 * nothing here. */
	int ready = sodium_init();

	(void)ready;
	crypto_hash_sha256(out, data, len);
}
