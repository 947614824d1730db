/* libFuzzer harness: the unified diff reader. */
#include "source/diff.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct diff_files f;
	char *text = malloc(size + 1);
	int line;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (diff_parse("fuzz", text, &f) == 0) {
		for (size_t i = 0; i < f.n; i++) {
			diff_file_touches(&f.v[i], 1, 1 << 20, &line);
			diff_file_map_line(&f.v[i], 10, &line);
		}
		diff_files_free(&f);
	}
	free(text);
	return 0;
}
