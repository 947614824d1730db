/* Turns the changed functions of one translation unit into patch content:
 * copies their sections, and binds every reference either to new code in
 * the patch, to the existing symbol in the target binary (so statics keep
 * their running state), or to a name resolved in the process at apply time. */
#ifndef OPUS_MKPATCH_ASSEMBLE_H
#define OPUS_MKPATCH_ASSEMBLE_H

#include <errno.h>

#include "explain.h"
#include "notes.h"
#include "obj.h"
#include "patchfile/opatch.h"
#include "util/elf.h"

/* What explains a change: the patched source's functions and the diff. */
struct assemble_why {
	const struct src_map *src;
	const struct diff_files *diff;
};

/* The object the patch is for. */
struct assemble_target {
	Elf *elf;
	const struct opus_symtab *syms;	   /* .symtab: everything, statics too */
	const struct opus_symtab *exports; /* a library's .dynsym, else NULL */
};

/* Which functions go in: those whose code changed, or every one of the
 * unit (a self-replacement, to prove the engine on code nobody chose),
 * either way less those excluded by name (they keep their old code). */
struct assemble_scope {
	bool every_function;
	const char *const *exclude;
	size_t nexclude;
};

/* assemble_tu's answer when new code reads a variable of another object
 * directly (PC32 or a 32-bit absolute): the unit must be compiled again with
 * extern data through the GOT (COMPILE_SECTIONS_GOT). */
#define ASSEMBLE_EFARDATA (-EREMOTE)

int assemble_tu(struct opatch *p, const struct assemble_target *bin,
		const struct assemble_scope *scope, const struct obj *orig,
		const struct obj *patched, const struct assemble_why *why,
		struct build_notes *notes);

/* The new global functions of patched (a unit's new compile; orig, its
 * original) that the patch's code of other units calls, by name, and the
 * binary lacks: copied into p with what they use, those calls sent to
 * them; how many in *added. A new variable used that way is refused
 * (-ENOTSUP). 0 or a negative errno. */
int assemble_new_globals(struct opatch *p, const struct assemble_target *bin,
			 const struct obj *orig, const struct obj *patched,
			 struct build_notes *notes, size_t *added);

/* Copies of the old code of the functions p->funcs[which[0..n)] replace,
 * from orig, the unit's original compile (which build checked against the
 * binary): each function's section and what only it holds (a jump table),
 * named with OPATCH_OLD_SUFFIX, every other reference bound to the
 * binary's own, calls to replaced functions included. Sets each one's
 * old_sym. A copy that cannot be made (it refers to something the binary
 * lacks) is left out, and noted: mkpatch/mixed.c keeps such a patch
 * stop-world. 0 or -ENOMEM. */
int assemble_old_copies(struct opatch *p, const struct assemble_target *bin, const struct obj *orig,
			const size_t *which, size_t n, struct build_notes *notes);

#endif
