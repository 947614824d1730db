/* The files a unified diff touches, with -p1 path semantics. */
#ifndef OPUS_BUILD_DIFF_H
#define OPUS_BUILD_DIFF_H

#include <stddef.h>

struct diff_files {
	char **v;
	size_t n, cap;
};

int diff_touched_files(const char *path, const char *text, struct diff_files *out);
void diff_files_free(struct diff_files *f);

#endif
