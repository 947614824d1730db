/* The units of one analysis spread over worker processes (fanout.c). */
#ifndef OPUS_ANALYZE_FANOUT_H
#define OPUS_ANALYZE_FANOUT_H

#include <stddef.h>

#include "analysis.h"
#include "cache.h"

struct fanout_job {
	/* Analyses unit number unit into a, noting the files it read. */
	int (*unit)(void *ctx, size_t unit, struct analysis *a, struct analysis_reads *reads);
	void *ctx;
	const char *scratch; /* where the workers leave their results */
};

/* Every unit from 0 to nunits - 1, each by one of $OPUS_ANALYZE_JOBS (else
 * one per CPU) workers, merged into out and reads (NULL: not kept). The
 * first error a worker met, with its message, fails the whole. */
int analysis_fanout(const struct fanout_job *job, size_t nunits, struct analysis *out,
		    struct analysis_reads *reads);

#endif
