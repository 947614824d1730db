/* The binary's proof that a global function whose signature a fix changes
 * has no caller left that would pass the old arguments (callers.c). */
#ifndef OPUS_MKPATCH_CALLERS_H
#define OPUS_MKPATCH_CALLERS_H

#include "build.h"
#include "notes.h"

struct build;

/* For each of f->callers_to_prove: when the binary proves it, its error in
 * f->text becomes a warning that says why, with a note; when not, f->unsafe
 * is set and *why (malloc'd, or NULL) gets "; name: reason" for each. */
int build_prove_callers(const struct build *b, struct build_notes *notes, struct build_findings *f,
			char **why);

#endif
