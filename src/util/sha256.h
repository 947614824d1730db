/* SHA-256 (libsodium), used to detect corrupt patch files and to bind a
 * patch to the code it replaces. */
#ifndef OPUS_UTIL_SHA256_H
#define OPUS_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define OPUS_SHA256_LEN 32

void opus_sha256(const void *data, size_t len, uint8_t out[OPUS_SHA256_LEN]);

#endif
