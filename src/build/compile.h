/* Recompiles one translation unit in the scratch copy of the source tree,
 * with its original flags plus one section per function and per object. */
#ifndef OPUS_BUILD_COMPILE_H
#define OPUS_BUILD_COMPILE_H

#include "cdb.h"

/* orig_root is the user's tree, scratch_root its copy: paths are moved into
 * the copy, and mapped back in debug info and __FILE__. */
int compile_tu(const struct cdb_entry *e, const char *orig_root, const char *scratch_root,
	       const char *out_obj);

/* The unit's own flags (argv[0] the compiler), paths moved from orig_root to
 * scratch_root (NULL: kept), without output, dependency and source args. */
int compile_base_args(const struct cdb_entry *e, const char *orig_root, const char *scratch_root,
		      char ***argv, size_t *n, size_t *cap);
void compile_free_args(char **argv, size_t n);
/* arg with a leading orig_root replaced by scratch_root (a malloc'd copy). */
char *compile_rebase(const char *arg, const char *orig_root, const char *scratch_root);

/* Write the make-style list of files the unit includes to out_deps. */
int compile_deps(const struct cdb_entry *e, const char *out_deps);

#endif
