#include "hex.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

void opus_hex_encode(const uint8_t *in, size_t len, char *out)
{
	sodium_bin2hex(out, 2 * len + 1, in, len);
}

int opus_hex_decode(const char *in, uint8_t *out, size_t max)
{
	size_t n = strlen(in), got = 0;

	/* No hex_end: anything but hex digits, or too many, is an error. */
	if (n % 2 || n / 2 > max || sodium_hex2bin(out, max, in, n, NULL, &got, NULL))
		return -EINVAL;
	return (int)got;
}
