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

/* The binary's sections that hold constants, and where the loader
 * rewrites them (consts.c). */
struct bin_consts {
	struct bin_const_scn {
		uint64_t addr;
		const uint8_t *data;
		size_t size;
	} * scns;
	size_t nscns, scns_cap;
	struct bin_dyn_rel {
		uint64_t off;  /* first: sorted and searched by it (util/file.h) */
		bool relative; /* R_X86_64_RELATIVE: the load address plus the file's bytes */
	} * dyn;
	size_t ndyn, dyn_cap;
	bool pic; /* position-independent: its tables are relocated at load */
	bool loaded;
};

/* How deep a chain of tables (a table of pointers to tables...) is
 * followed to the binary's copies. */
#define MAX_CONST_DEPTH 4

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
	/* The binary's constants, loaded on first use (consts.c). */
	struct bin_consts consts;
	/* The constants whose addresses are being resolved, outermost first. */
	struct const_ref {
		size_t scn;
		uint64_t lo;
	} const_stack[MAX_CONST_DEPTH];
	size_t nconst_stack;
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

/* cfi.c: the unwind tables (FDEs) of the code this assembly copied in,
 * appended to the patch's .eh_frame. */
int asm_add_cfi(struct asm_ctx *c);

/* The patch symbol for the binary's address addr, named name. */
int asm_target_sym(struct asm_ctx *c, const char *name, uint64_t addr, uint8_t type);

/* consts.c: the binary's own copy of the piece of read-only data section
 * scn that relocation r (to a symbol of value v, *addend) refers to, with
 * *addend adjusted to it; -ENOENT if the binary has none (the piece is
 * carried in the patch), another negative errno on failure. */
int asm_bin_const(struct asm_ctx *c, const GElf_Rela *r, size_t scn, uint64_t v, int64_t *addend);
void asm_consts_free(struct bin_consts *b);

#endif
