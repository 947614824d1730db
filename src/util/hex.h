/* Hex encoding of byte strings (build-ids, digests), by libsodium. */
#ifndef OPUS_UTIL_HEX_H
#define OPUS_UTIL_HEX_H

#include <stddef.h>
#include <stdint.h>

/* out must hold 2 * len + 1 bytes. */
void opus_hex_encode(const uint8_t *in, size_t len, char *out);
/* Returns the number of bytes decoded, or -EINVAL on bad input or overflow. */
int opus_hex_decode(const char *in, uint8_t *out, size_t max);

#endif
