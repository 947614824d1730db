/* Recompiles one translation unit in the scratch copy of the source tree,
 * with its original flags plus one section per function and per object. */
#ifndef OPUS_BUILD_COMPILE_H
#define OPUS_BUILD_COMPILE_H

#include "cdb.h"

/* orig_root is the user's tree, scratch_root its copy: paths are moved into
 * the copy, and mapped back in debug info and __FILE__. */
int compile_tu(const struct cdb_entry *e, const char *orig_root, const char *scratch_root,
	       const char *out_obj);

/* Write the make-style list of files the unit includes to out_deps. */
int compile_deps(const struct cdb_entry *e, const char *out_deps);

#endif
