/* Why a function's code changed, from the patched object's DWARF and the
 * diff: its own source lines changed, or it inlines a function whose did. */
#ifndef OPUS_MKPATCH_EXPLAIN_H
#define OPUS_MKPATCH_EXPLAIN_H

#include <stdbool.h>
#include <stddef.h>

#include "source/diff.h"

struct src_func {
	char *name;
	char *file;	 /* where it is defined, as the compiler saw it */
	int first, last; /* source lines it spans there */
	char **inlined;	 /* functions inlined into it */
	size_t ninlined, inlined_cap;
};

struct src_map {
	struct src_func *v;
	size_t n, cap;
};

/* Functions defined in the object at path, in its .c file and headers. */
int src_map_load(const char *path, struct src_map *out);
void src_map_free(struct src_map *m);
/* Why a function's code changed: its own lines, a function it inlines, or
 * something the diff does not show in either. */
enum src_reason { SRC_OWN, SRC_INLINED, SRC_OTHER };

/* A reason for the change of function name (a symbol, maybe foo.isra.0),
 * in words in buf, and as which of the three it is. */
enum src_reason src_explain(const struct src_map *m, const struct diff_files *diff,
			    const char *name, char *buf, size_t len);

/* Did the source of function name, or of a function inlined into it, change? */
bool src_touched(const struct src_map *m, const struct diff_files *diff, const char *name);
/* Does the DWARF describe function name? An alias (foo for
 * foo__internal_alias, as libxml2 makes them) has no record of its own. */
bool src_known(const struct src_map *m, const char *name);
/* The diff of the file that defines function name, or NULL. */
const struct diff_file *src_diff_of(const struct src_map *m, const struct diff_files *diff,
				    const char *name);

#endif
