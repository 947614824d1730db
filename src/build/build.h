/* opus build: source tree + diff -> .opatch for one binary or library. */
#ifndef OPUS_BUILD_BUILD_H
#define OPUS_BUILD_BUILD_H

#include <stdbool.h>

#include "notes.h"

struct build_opts {
	const char *source; /* the original tree; never written */
	const char *diff;
	const char *binary; /* unstripped object the process runs */
	const char *output;
	const char *cdb;	 /* NULL: look in the tree */
	const char *id;		 /* NULL: from the output name */
	const char *description; /* NULL: from the diff name */
	const char *findings;	 /* analysis findings to embed, one per line */
	bool keep_scratch;
};

int opus_build(const struct build_opts *opts, struct build_notes *notes);

#endif
