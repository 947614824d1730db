/* The analysis as a job beside another: opus build compiles while the
 * analysis runs in a child process, so on two cores the two halves of the
 * work overlap. The child sends back its verdict, the report as `opus
 * analyze` prints it, the findings a patch file embeds, and the functions
 * the running program never leaves. */
#ifndef OPUS_ANALYZE_JOB_H
#define OPUS_ANALYZE_JOB_H

#include <stdbool.h>
#include <sys/types.h>

#include "analyze.h"

struct analysis_job {
	pid_t pid; /* -1: not running */
	int fd;
	bool joined;
};

enum analysis_verdict {
	ANALYSIS_SAFE,	 /* no error among the findings */
	ANALYSIS_UNSAFE, /* the findings hold an error */
	ANALYSIS_FAILED, /* the analysis could not run; why is in report */
	/* The only errors are global signature changes, which the binary may
	 * prove harmless (callers_to_prove). */
	ANALYSIS_UNPROVEN,
};

struct analysis_outcome {
	enum analysis_verdict verdict;
	char *report;	  /* text of the analysis, or why it failed */
	char *findings;	  /* analysis_findings_text(); NULL when it failed */
	char *never_left; /* analysis_never_left_text(); "" when it failed */
	/* analysis_callers_to_prove_text(); "" when it failed */
	char *callers_to_prove;
	char *buf; /* holds them all */
};

/* Starts the analysis of o in a child; it removes its own scratch tree
 * whatever happens to it. */
int analysis_job_start(struct analysis_job *job, const struct analyze_opts *o);
/* Waits for the child and reads its outcome; an error when the child died
 * without one. The caller frees out with analysis_outcome_free. */
int analysis_job_join(struct analysis_job *job, struct analysis_outcome *out);
/* Stops a job not joined (the other half failed first). */
void analysis_job_abandon(struct analysis_job *job);
void analysis_outcome_free(struct analysis_outcome *out);

#endif
