/* Function-level diff of two compiles of one translation unit, in the
 * manner of kpatch's create-diff-object: code bytes and relocations are
 * compared by what they refer to, never by raw offsets into shared sections. */
#ifndef OPUS_MKPATCH_OBJDIFF_H
#define OPUS_MKPATCH_OBJDIFF_H

#include "obj.h"

enum objdiff_state {
	OBJDIFF_SAME,
	OBJDIFF_CHANGED,
	OBJDIFF_NEW, /* only in the patched object */
};

/* State of the function symbol fb of patched object b against object a. */
enum objdiff_state objdiff_func(const struct obj *a, const struct obj *b, size_t fb);

/* Whether two compiles of one change (a1 -> b1, a2 -> b2: the same sources
 * with other code-generation flags) have the same functions and differ in
 * the same ones. If not, *name gets a function where they part. */
bool objdiff_same_changes(const struct obj *a1, const struct obj *b1, const struct obj *a2,
			  const struct obj *b2, const char **name);

/* Maps an old line number to its new one; false if the line changed. */
typedef bool (*objdiff_line_map)(void *ctx, int old, int *new_line);

/* True if fb differs from its original only in 32-bit immediates that are
 * line numbers moved by the diff (__LINE__ in assert or logging macros):
 * same size, same relocations, every other byte equal. */
bool objdiff_only_lines(const struct obj *a, const struct obj *b, size_t fb, objdiff_line_map map,
			void *ctx);

#endif
