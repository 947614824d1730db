/* The macros a diff redefines (macros.c): a function that uses one changes
 * although its tokens do not. */
#ifndef OPUS_ANALYZE_MACROS_H
#define OPUS_ANALYZE_MACROS_H

#include <stddef.h>

#include "source/workspace.h"

struct macro_set {
	char **v;
	size_t n, cap;
};

/* The macros of the diff's files whose definitions differ between the
 * original and the patched tree (w's diff applied), with those defined
 * on top of them in the same files. */
int macros_changed(const struct workspace *w, struct macro_set *out);
/* The name in s spelled by the len bytes at name, or NULL. */
const char *macro_set_find(const struct macro_set *s, const char *name, size_t len);
/* The first name in s among the tokens of text (normalized: one space
 * between tokens), or NULL. */
const char *macro_set_used_by(const struct macro_set *s, const char *text);
void macro_set_free(struct macro_set *s);

#endif
