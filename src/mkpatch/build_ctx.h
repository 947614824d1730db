/* Private to the patch builder's driver (build.c) and its two helpers:
 * units.c (which units of the tree the binary holds) and binding.c (the
 * patch bound to the binary's content). */
#ifndef OPUS_MKPATCH_BUILD_CTX_H
#define OPUS_MKPATCH_BUILD_CTX_H

#include <stddef.h>
#include <stdio.h>

#include "assemble.h"
#include "build.h"
#include "patchfile/opatch.h"
#include "source/compile.h"
#include "source/workspace.h"
#include "util/elf.h"

struct build {
	const struct build_opts *opts;
	struct workspace ws;
	struct opus_elf bin;
	struct opus_symtab bin_syms, bin_exports;
	struct opatch patch;
	struct opatch *after; /* opts->after, read */
	struct assemble_scope scope;
	const char *new_tag; /* "new", or "orig" for a self-replacement */
};

/* Tells the caller's progress callback, if any, where the build is. */
static inline void build_progress(const struct build *b, const char *phase, size_t done,
				  size_t total)
{
	if (b->opts->progress)
		b->opts->progress(b->opts->progress_ctx, phase, done, total);
}

/* Where the compile tagged tag of unit unit is: tag-N.o in the scratch. */
static inline void build_obj_path(const struct build *b, const char *tag, size_t unit, char *out,
				  size_t len)
{
	snprintf(out, len, "%s/%s-%zu.o", b->ws.scratch, tag, unit);
}

/* units.c: a binary linked with -flto is refused; for --replace-all with
 * no --unit, the units the binary's DWARF does not name are left out. */
int build_refuse_lto(const struct build *b);
void build_keep_units_of_binary(struct build *b, struct build_notes *notes);
/* A file compiled more than once (with and without -fPIC) keeps the
 * compile command whose options the binary's DWARF records. */
int build_choose_variants(struct build *b, struct build_notes *notes);
/* A diff may change a unit of another program of the tree (a test, a
 * tool): one that the binary's DWARF does not name and whose global
 * functions the binary does not have is noted and left out. */
bool build_unit_in_binary(const struct build *b, size_t unit, struct build_notes *notes);

/* The compiles of unit tagged orig_tag and new_tag, both opened or
 * neither (build.c). */
int build_open_pair(const struct build *b, size_t unit, const char *orig_tag, const char *new_tag,
		    struct obj *orig, struct obj *patched);

/* Compile the units marked in only (all, if NULL) in one flavour, to
 * tag-N.o (build.c). */
int build_compile_as(struct build *b, const char *tag, enum compile_flavour flavour,
		     const bool *only, const char *phase);

/* kept.c: each function --exclude keeps with its old code, where the diff
 * changed it, must count on no register a replaced callee may now use;
 * assembled marks the units the patch took functions from. */
int build_check_kept(struct build *b, const bool *assembled);

/* frozen.c: a static variable the running program writes, whose last write
 * the fix takes out, must not be read by the new code as a constant. */
int build_check_frozen(struct build *b, const bool *assembled);

/* results.c: a changed function that gcc found const or pure, called by a
 * function the patch keeps, is warned of: that caller may go on using a
 * result of the old code it computed once. */
int build_warn_kept_results(struct build *b, const bool *assembled, struct build_notes *notes);

/* mixed.c: whether a per-thread transition may apply the patch, into
 * patch.stop_world: a replaced function of an assembled unit that reads or
 * writes another set of shared variables than its old code is a reason
 * to stop every thread at once; so is a finding of the analysis that the
 * fix writes non-local state anew or changes a global or a type. */
int build_judge_shared_vars(struct build *b, const bool *assembled);
int build_judge_findings(struct build *b);
/* A replaced function with no copy of its old code in the patch (see
 * copy_old_code) is a reason too: the dispatcher has nowhere to send a
 * thread not yet switched. */
int build_judge_old_copies(struct build *b);

/* binding.c: the as-built compile of every unit must be what the binary
 * holds, function by function, for the functions and data the patch
 * touches; then each replaced function's bytes are recorded for apply. */
int build_bind_content(struct build *b);
/* binding.c: the newest of the earlier patches (--after) that replaces the
 * function at addr, and its line for it; NULL: the binary's code runs
 * there. */
const struct opatch_func *build_replaced_before(const struct build *b, uint64_t addr,
						const struct opatch **by);

#endif
