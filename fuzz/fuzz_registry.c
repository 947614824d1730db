/* libFuzzer harness: the registry record read back from a target's memory
 * (a hostile target can write anything there). */
#include "live/registry.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reg_entry e;
	struct opus_buf out = {0};
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (registry_parse(text, &e) == 0) {
		registry_format(&e, &out);
		opus_buf_free(&out);
		registry_entry_free(&e);
	}
	free(text);
	return 0;
}
