/* opus analyze: is a source diff safe to apply to a running process? */
#ifndef OPUS_ANALYZE_ANALYZE_H
#define OPUS_ANALYZE_ANALYZE_H

#include "analysis.h"

struct analyze_opts {
	const char *source; /* the original tree; never written */
	const char *diff;
	const char *cdb; /* NULL: look in the tree */
};

int opus_analyze(const struct analyze_opts *opts, struct analysis *out);

#endif
