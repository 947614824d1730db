#include "trailer.h"
#include "util/err.h"
#include "util/hex.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int optrailer_split(const char *name, const void *buf, size_t len, struct optrailer *t)
{
	const char *b = buf, *at;
	char id[OPTRAILER_ID_HEX + 1], sig[2 * OPTRAILER_SIG_LEN + 1];

	memset(t, 0, sizeof(*t));
	t->body_len = len;
	if (len < OPTRAILER_LEN)
		return 0;
	at = b + len - OPTRAILER_LEN;
	if (memcmp(at, OPTRAILER_TAG, sizeof(OPTRAILER_TAG) - 1))
		return 0;
	at += sizeof(OPTRAILER_TAG) - 1;
	memcpy(id, at, OPTRAILER_ID_HEX);
	id[OPTRAILER_ID_HEX] = '\0';
	memcpy(sig, at + OPTRAILER_ID_HEX + 1, sizeof(sig) - 1);
	sig[sizeof(sig) - 1] = '\0';
	if (at[OPTRAILER_ID_HEX] != ' ' || b[len - 1] != '\n' ||
	    opus_hex_decode(id, (uint8_t[OPTRAILER_ID_HEX / 2]){0}, OPTRAILER_ID_HEX / 2) !=
		OPTRAILER_ID_HEX / 2 ||
	    opus_hex_decode(sig, t->sig, OPTRAILER_SIG_LEN) != OPTRAILER_SIG_LEN)
		return opus_err(-EINVAL, "%s: malformed signature trailer", name);
	memcpy(t->key_id, id, sizeof(id));
	t->is_signed = true;
	t->body_len = len - OPTRAILER_LEN;
	return 0;
}

void optrailer_format(const char key_id[OPTRAILER_ID_HEX + 1], const uint8_t sig[OPTRAILER_SIG_LEN],
		      char out[OPTRAILER_LEN + 1])
{
	char hex[2 * OPTRAILER_SIG_LEN + 1];

	opus_hex_encode(sig, OPTRAILER_SIG_LEN, hex);
	snprintf(out, OPTRAILER_LEN + 1, "%s%s %s\n", OPTRAILER_TAG, key_id, hex);
}
