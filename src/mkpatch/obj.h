/* A compiled relocatable object opened for diffing and patch assembly. */
#ifndef OPUS_MKPATCH_OBJ_H
#define OPUS_MKPATCH_OBJ_H

#include <gelf.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/elf.h"

struct obj_scn {
	GElf_Shdr sh;
	const char *name;
	Elf_Data *data; /* NULL for SHT_NOBITS */
	Elf_Data *rela; /* the SHT_RELA data applying to this section, or NULL */
	size_t nrela;
	/* Read-only data: the offsets where its pieces start (a symbol, or a
	 * place some relocation points to: .LC literals have no symbol),
	 * sorted, the section's size last. */
	uint64_t *cuts;
	size_t ncuts;
};

struct obj {
	struct opus_elf e;
	char *path;
	const char *file; /* the translation unit's STT_FILE name */
	struct obj_scn *scns;
	size_t nscn;
	Elf_Data *symdata;
	size_t nsyms, symstr;
	/* Lookups stay linear in the object's size (a unit may hold
	 * thousands of functions): symbol indices grouped by section, in
	 * table order (by_scn[scn_start[s]] .. by_scn[scn_start[s + 1]]),
	 * and defined symbols by name, then table order. */
	size_t *by_scn, *scn_start;
	size_t *by_name, nnamed;
};

int obj_open(const char *path, struct obj *o);
void obj_close(struct obj *o);
bool obj_sym(const struct obj *o, size_t idx, GElf_Sym *sym);
const char *obj_sym_name(const struct obj *o, const GElf_Sym *sym);
bool obj_rela(const struct obj *o, size_t scn, size_t i, GElf_Rela *r);
/* The indices of section scn's symbols, in table order; *n of them. */
const size_t *obj_scn_syms(const struct obj *o, size_t scn, size_t *n);
/* The symbol index of a defined function or object named name, or 0. */
size_t obj_find_sym(const struct obj *o, const char *name, int type);
/* The symbol of type type (STT_FUNC/STT_OBJECT) in section scn covering
 * offset off (any one if off is -1), or 0. */
size_t obj_sym_in_scn(const struct obj *o, size_t scn, long off, int type);
bool obj_is_cold_name(const char *name);
/* A section of variables the program's code writes as it runs: writable,
 * and neither thread-local nor the relro data only the loader writes. */
bool obj_scn_holds_state(const struct obj_scn *s);
/* The index of the section of this name that has data, or 0. */
size_t obj_find_scn(const struct obj *o, const char *name);
/* Whether gcc compiled o (its .comment says so), not clang. */
bool obj_built_by_gcc(const struct obj *o);
/* The piece of read-only data section scn holding offset off: [*lo, *hi). */
void obj_piece(const struct obj *o, size_t scn, uint64_t off, uint64_t *lo, uint64_t *hi);
/* Where in s, the section its symbol is in, relocation r lands, the
 * symbol at base (0 for a section symbol): base plus the addend, which a
 * PC-relative reference has 4 bytes short (the displacement precedes the
 * next instruction), and into mergeable constants also short by the
 * immediate after the displacement (see obj.c). */
int64_t obj_rela_lands(const struct obj_scn *s, const GElf_Rela *r, int64_t base);
/* A PC-relative relocation: its addend is 4 bytes short of the target. */
bool obj_rela_is_pcrel(uint32_t type);
/* A thread-local reference: an offset from the thread pointer or within a
 * module's block, or a GOT entry holding one. */
bool obj_rela_is_tls(uint32_t type);
/* A reference that holds the referent's address or distance in 32 bits
 * (PC32, 32, 32S): it reaches only what lies near. */
bool obj_rela_is_direct(uint32_t type);

#endif
