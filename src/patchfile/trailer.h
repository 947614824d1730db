/* The signature trailer: one line appended to a patch file,
 * "opus-signature 1 ed25519 <key id> <signature>", signing every byte
 * before it. readelf ignores it; the patch-file reader never sees it: it
 * is split off once, and the reader is given the body's length. */
#ifndef OPUS_PATCHFILE_TRAILER_H
#define OPUS_PATCHFILE_TRAILER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OPTRAILER_ID_HEX  16 /* hex digits of a key id */
#define OPTRAILER_SIG_LEN 64 /* an Ed25519 signature */
#define OPTRAILER_TAG	  "\nopus-signature 1 ed25519 "
/* tag, key id, space, signature in hex, newline */
#define OPTRAILER_LEN (sizeof(OPTRAILER_TAG) - 1 + OPTRAILER_ID_HEX + 1 + 2 * OPTRAILER_SIG_LEN + 1)

struct optrailer {
	bool is_signed;
	char key_id[OPTRAILER_ID_HEX + 1];
	uint8_t sig[OPTRAILER_SIG_LEN];
	size_t body_len; /* the signed bytes: the file without its trailer */
};

/* Finds the trailer of the file name held in buf; without one, body_len
 * is the whole length. A trailer that does not parse is an error. */
int optrailer_split(const char *name, const void *buf, size_t len, struct optrailer *t);

/* The trailer line for a signature by key_id, NUL-terminated. */
void optrailer_format(const char key_id[OPTRAILER_ID_HEX + 1], const uint8_t sig[OPTRAILER_SIG_LEN],
		      char out[OPTRAILER_LEN + 1]);

#endif
