/* Private to assemble.c and refs.c: one translation unit's assembly in
 * progress. assemble.c runs the passes (which functions changed, which go
 * in, each section's relocations); refs.c, below it, copies sections in
 * and says where each reference of the new code leads. */
#ifndef OPUS_MKPATCH_ASSEMBLE_CTX_H
#define OPUS_MKPATCH_ASSEMBLE_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "assemble.h"

struct asm_ctx {
	struct opatch *p;
	Elf *bin_elf;
	const struct opus_symtab *bin;
	const struct opus_symtab *exports; /* a library's: interposable by name */
	const struct obj *o, *orig;
	const char *from; /* the function whose relocations are being bound */
	const struct assemble_why *why;
	const struct assemble_scope *scope;
	int32_t *scn_idx; /* object section -> patch section, -1 if not included */
	int32_t *scn_sym; /* object section -> its patch section symbol */
	int32_t *sym_map; /* object symbol -> its patch symbol, once its section is in */
	uint8_t *changed; /* per object symbol */
	size_t *work;
	size_t nwork, work_cap;
	struct build_notes *notes;
	/* Appended to the names of the sections and symbols copied in: the
	 * copies of old code (OPATCH_OLD_SUFFIX) beside the new. NULL: none. */
	const char *suffix;
	/* The binary's read-only data, for finding literals in it. */
	struct bin_rodata {
		uint64_t addr;
		const uint8_t *data;
		size_t size;
	} * rodata;
	size_t nrodata, rodata_cap;
	bool rodata_loaded;
};

/* refs.c: copies section scn of the patched object into the patch (once),
 * with its functions and objects; its patch section index. */
int asm_include_section(struct asm_ctx *c, size_t scn);
/* The symbol of the target binary that sym (named name in the
 * patched object) is, in *out; 0 with *out NULL when the binary has none. */
int asm_bin_lookup(struct asm_ctx *c, const GElf_Sym *sym, const char *name,
		   const struct opus_sym **out);
/* The patch symbol relocation r of the current section refers to, its
 * addend adjusted to it, or a negative errno. */
int asm_resolve(struct asm_ctx *c, const GElf_Rela *r, uint32_t type, int64_t *addend);
/* The patch symbol of the binary's own copy of function f (a symbol of the
 * object), to bind a reference to f's address to; -ENOENT if it has none. */
int asm_bin_function(struct asm_ctx *c, size_t f);

#endif
