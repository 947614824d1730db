/* libFuzzer harness: compile_commands.json. */
#include "source/cdb.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cdb c;

	if (cdb_parse("fuzz", (const char *)data, size, &c) == 0)
		cdb_free(&c);
	return 0;
}
