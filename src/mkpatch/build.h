/* opus build: source tree + diff -> .opatch for one binary or library. */
#ifndef OPUS_MKPATCH_BUILD_H
#define OPUS_MKPATCH_BUILD_H

#include <errno.h>
#include <stdbool.h>

#include "notes.h"

/* What the analysis found, as the build takes it (all malloc'd). */
struct build_findings {
	char *text; /* "file:line: severity: kind: message" lines to embed */
	/* "name<TAB>file<TAB>line" lines: the functions the program never
	 * leaves, and the global functions whose signature changed, whose
	 * callers the binary must prove gone (NULL: none). */
	char *never_left, *callers_to_prove;
	bool unsafe; /* an error the binary cannot lift */
};

/* opus_build's refusal of a patch the analysis found unsafe. */
#define BUILD_REFUSED (-EPERM)

struct build_opts {
	const char *source; /* the original tree; never written */
	const char *diff;   /* NULL with replace_all */
	const char *binary; /* unstripped object the process runs */
	/* The file processes run, when binary is a rebuild of it (a package's
	 * stripped binary): the patch is bound to its build-id if the two are
	 * one program (mkpatch/rebuild.h). NULL: binary itself. */
	const char *installed;
	const char *output;
	const char *cdb;	 /* NULL: look in the tree */
	const char *id;		 /* NULL: from the output name */
	const char *description; /* NULL: from the diff name */
	/* Called once the patch is assembled, before it is written: fills in
	 * the analysis's findings and returns 0, or a negative errno when the
	 * analysis could not run. NULL: no findings. */
	int (*findings)(void *ctx, struct build_findings *out);
	void *findings_ctx;
	/* Build even when the analysis found errors. */
	bool force;
	bool keep_scratch;
	/* Patches this one is built on top of (the source tree has their
	 * diffs applied), oldest first. */
	const char *const *after;
	size_t nafter;
	/* A self-replacement: no diff; every function of these units (all of
	 * the compile database's when none are named) that the binary has is
	 * replaced by its own recompiled code. */
	bool replace_all;
	const char *const *units;
	size_t nunits;
	/* Functions that keep their old code (never-returning loops). */
	const char *const *exclude;
	size_t nexclude;
	/* Called as each step of a long build advances: done of total in the
	 * phase named (NULL: silent). */
	void (*progress)(void *ctx, const char *phase, size_t done, size_t total);
	void *progress_ctx;
};

int opus_build(const struct build_opts *opts, struct build_notes *notes);

#endif
