/* libFuzzer harness: the patch-file reader (and its signature trailer).
 * The file's own SHA-256 would turn away nearly every mutation at the
 * door, so the harness reseals each input the way opus build does (the
 * digest over the file with its 64 digits zeroed): the fuzzer then reaches
 * the section, symbol, relocation and record parsers behind it. */
#include "patchfile/opatch.h"
#include "patchfile/trailer.h"
#include "util/hex.h"
#include "util/sha256.h"

#include <stdlib.h>
#include <string.h>

#define SHA_KEY "sha256="

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reseal(uint8_t *buf, size_t len)
{
	uint8_t *field = memmem(buf, len, SHA_KEY, strlen(SHA_KEY)), digest[OPUS_SHA256_LEN];
	char hex[2 * OPUS_SHA256_LEN + 1];

	if (!field || (size_t)(field - buf) + strlen(SHA_KEY) + 64 > len)
		return;
	field += strlen(SHA_KEY);
	memset(field, '0', 64);
	opus_sha256(buf, len, digest);
	opus_hex_encode(digest, sizeof(digest), hex);
	memcpy(field, hex, 64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct optrailer info;
	struct opatch p;
	uint8_t *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (optrailer_split("fuzz", buf, size, &info))
		info.body_len = size;
	reseal(buf, info.body_len);
	if (opatch_read_mem("fuzz", buf, info.body_len, &p) == 0)
		opatch_free(&p);
	free(buf);
	return 0;
}
