/* The source side of a patch: the user's tree (only ever read), a scratch
 * copy of it, the diff, the compile database and the translation units the
 * diff reaches (a changed header brings every unit that includes it). */
#ifndef OPUS_SOURCE_WORKSPACE_H
#define OPUS_SOURCE_WORKSPACE_H

#include <limits.h>
#include <stdbool.h>

#include "cdb.h"
#include "diff.h"

struct workspace {
	const char *diff_path;
	const char *cdb_path; /* NULL: look in the tree */
	char root[PATH_MAX];  /* the user's tree, canonical */
	char scratch[160];    /* our temporary directory (under $TMPDIR) */
	char tree[192];	      /* scratch/tree: the copy the diff is applied to */
	char *diff_text;
	size_t diff_len;
	struct diff_files files;
	struct cdb cdb;
	/* A file compiled more than once (with and without -fPIC, say) brings
	 * each of its compile commands: its variants. */
	const struct cdb_entry **units;
	size_t nunits, units_cap;
	/* Files of the diff that are not C (tests, docs, build files): left
	 * out of the compile, and said so. Paths point into files. */
	const char **skipped;
	size_t nskipped, skipped_cap;
	/* C sources of the diff that no compile command builds: code this
	 * build's configuration leaves out (or an incomplete database). Left
	 * out, and said so. Paths point into files. */
	const char **uncompiled;
	size_t nuncompiled, uncompiled_cap;
	char apply_diff[PATH_MAX]; /* the diff as applied: its C files only */
	/* Units a changed header brought whose preprocessed text the diff
	 * does not change: left out (reach.h). */
	size_t nunreached;
	/* Per entry of cdb, the files it includes (make syntax), once a
	 * changed header asked; NULL for one outside the tree. */
	char **deps;
};

/* Copy the tree, parse the diff, find the units; the copy is not patched yet. */
int workspace_open(struct workspace *w, const char *source, const char *diff, const char *cdb);
/* The same without a diff: the units named (paths in the tree), or every
 * unit of the compile database when n is 0. */
int workspace_open_units(struct workspace *w, const char *source, const char *cdb,
			 const char *const *units, size_t n);
int workspace_apply_diff(struct workspace *w); /* a no-op without a diff */
/* Take it out again (to compile the original once more). */
int workspace_unapply_diff(struct workspace *w);
/* A file the diff adds that no compile command builds and whose text
 * defines a function called name (name, a parameter list, a body), or
 * NULL. */
const char *workspace_new_file_defining(const struct workspace *w, const char *name);
/* file (canonical) relative to the user's tree, or NULL if it is not in it. */
const char *workspace_in_tree(const struct workspace *w, const char *file);
/* Is unit i a further variant of the file of an earlier unit? */
bool workspace_is_variant(const struct workspace *w, size_t i);
/* Remove the scratch copy unless keep. */
void workspace_close(struct workspace *w, bool keep);

#endif
