/* libFuzzer harness: /proc/PID/maps, text the kernel writes but a hostile
 * target names the mappings of. */
#include "live/proc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proc_maps maps;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (proc_maps_parse("fuzz", text, &maps) == 0)
		proc_maps_free(&maps);
	free(text);
	return 0;
}
