/* Recompiles one translation unit in the scratch copy of the source tree,
 * with its original flags plus one section per function and per object. */
#ifndef OPUS_SOURCE_COMPILE_H
#define OPUS_SOURCE_COMPILE_H

#include <stdbool.h>

#include "cdb.h"

/* How a unit is compiled. */
enum compile_flavour {
	/* Its own flags only: the code the binary holds, to check it against. */
	COMPILE_AS_BUILT,
	/* Plus a section per function and per object: what the diff compares
	 * and the patch copies (every reference gets a relocation). */
	COMPILE_SECTIONS,
	/* Plus -mno-direct-extern-access: variables of other objects are read
	 * through a GOT slot, which opus fills, never at a 32-bit distance. */
	COMPILE_SECTIONS_GOT,
	/* Plus gcc's -fno-ipa-* for what a caller learns of its callees'
	 * bodies (the registers they leave alone, the memory they do not
	 * touch, that they are pure): a function whose code is the same as
	 * with COMPILE_SECTIONS counts on none of it. */
	COMPILE_SECTIONS_NO_CALLEE_IPA,
	/* Plus -fno-ipa-reference-addressable (gcc): a static variable that
	 * no code writes stays a variable instead of becoming a constant. */
	COMPILE_SECTIONS_KEEP_VARIABLES,
	/* Plus gcc's dumps of the functions it finds const or pure, beside
	 * the object (compile_pure_const_dumps). The code is
	 * COMPILE_SECTIONS's. */
	COMPILE_SECTIONS_PURE_CONST_DUMPS,
	/* Preprocessed only, without line markers (-E -P): two units whose
	 * texts are equal compile to the same code. */
	COMPILE_PREPROCESSED,
	/* The make-style list of the files it includes (-M -MG), from the
	 * user's tree: out is the list. */
	COMPILE_DEPS,
};

/* What COMPILE_SECTIONS_PURE_CONST_DUMPS writes beside OUT: OUT.SUFFIX for
 * each of these, gcc's IPA pass and its early local pass. */
#define COMPILE_PURE_CONST_DUMPS 2
extern const char *const compile_pure_const_dumps[COMPILE_PURE_CONST_DUMPS];

/* orig_root is the user's tree, scratch_root its copy: paths are moved into
 * the copy, and mapped back in debug info and __FILE__. */
int compile_tu(const struct cdb_entry *e, const char *orig_root, const char *scratch_root,
	       enum compile_flavour flavour, const char *out_obj);

/* The same in the background, to run several at once. */
struct compile_job {
	const struct cdb_entry *e;
	int pid;
	char *cwd;
	const char *doing; /* for messages: "compiling", "listing the headers of" */
};
int compile_start(const struct cdb_entry *e, const char *orig_root, const char *scratch_root,
		  enum compile_flavour flavour, const char *out_obj, struct compile_job *job);
int compile_finish(struct compile_job *job);

/* One compile of many, to out. */
struct compile_req {
	const struct cdb_entry *e;
	enum compile_flavour flavour;
	const char *out;
};
/* Run the compiles, one per CPU at a time, telling progress (if not NULL)
 * after each. On failure, the rest started are waited for, and the first
 * error is returned. */
int compile_all(const struct compile_req *reqs, size_t n, const char *orig_root,
		const char *scratch_root, void (*progress)(void *ctx, size_t done, size_t n),
		void *ctx);

/* The unit's own flags (argv[0] the compiler), paths moved from orig_root to
 * scratch_root (NULL: kept) and relative include paths made absolute,
 * without output, dependency and source args; in the scratch copy, the
 * unit's original directory is searched for quoted includes too. */
int compile_base_args(const struct cdb_entry *e, const char *orig_root, const char *scratch_root,
		      char ***argv, size_t *n, size_t *cap);
void compile_free_args(char **argv, size_t n);
/* arg with a leading orig_root replaced by scratch_root (a malloc'd copy). */
char *compile_rebase(const char *arg, const char *orig_root, const char *scratch_root);

/* Does the unit's command enable link-time optimisation (-flto, not undone
 * by a later -fno-lto)? */
bool compile_uses_lto(const struct cdb_entry *e);

#endif
