/* Binding by content: the original compile of a unit, with its own flags
 * and nothing added, must be what the binary holds, function by function.
 * A binary built from other sources or with other flags (a struct that
 * grew, another optimisation level) is refused, naming the function,
 * instead of being patched with code made for different code. */
#ifndef OPUS_MKPATCH_BIND_H
#define OPUS_MKPATCH_BIND_H

#include "obj.h"
#include "patchfile/opatch.h"
#include "source/diff.h"
#include "util/elf.h"

/* The binary the patch is for. */
struct bind_bin {
	Elf *elf;
	const struct opus_symtab *syms; /* its .symtab */
};

/* The binary's symbol of the compile's symbol sym (a local one under the
 * compile's source file, a hidden global made local by the link), or NULL. */
const struct opus_sym *bind_find(const struct bind_bin *bin, const struct obj *o,
				 const GElf_Sym *sym);

/* How the earlier patches of a stack moved the lines of one source file,
 * oldest first: their diffs' hunks in it (a patch that leaves the file
 * alone has none). The tree has their changes; the binary has not. */
struct bind_lines {
	const struct diff_file *const *steps;
	size_t n;
};

/* Function fsym of the as-built compile base against the binary's copy b:
 * the same size, the same bytes outside relocated fields and the linker's
 * relaxations, and every relocation leading to the same thing. A 32-bit
 * constant that is the binary's line number moved by lines (NULL: no
 * earlier patch) is a __LINE__ the earlier patches moved and left alone,
 * not a difference. 0, or -EINVAL with a message naming the function and
 * the difference. */
int bind_check_func(const struct bind_bin *bin, const struct obj *base, size_t fsym,
		    const struct opus_sym *b, const struct bind_lines *lines);

/* A function an earlier patch of the stack replaced: the compile of the
 * tree (sections flavour) must be that patch's code for it, byte for byte
 * with relocations at the same places. */
int bind_check_patched(const struct obj *orig, size_t fsym, const struct opatch *earlier,
		       const struct opatch_func *f);

/* A variable: the same size in both. */
int bind_check_object(const struct obj *base, size_t osym, const struct opus_sym *b);

#endif
