/* Small helpers over libelf shared by build and live: open a file, read its
 * build-id, load a symbol table with each local symbol's source file. */
#ifndef OPUS_UTIL_ELF_H
#define OPUS_UTIL_ELF_H

#include <gelf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OPUS_BUILD_ID_MAX 64

struct opus_elf {
	int fd;
	Elf *elf;
};

int opus_elf_open(const char *path, struct opus_elf *out);
void opus_elf_close(struct opus_elf *e);
/* Length of the build-id copied to out, -ENOENT if there is none. */
int opus_elf_build_id(Elf *elf, uint8_t out[OPUS_BUILD_ID_MAX]);
/* A shared library: ET_DYN without an interpreter (a PIE has one). */
bool opus_elf_is_library(Elf *elf);
/* First section named name, or NULL. */
Elf_Scn *opus_elf_section(Elf *elf, const char *name, GElf_Shdr *shdr);
/* First section of type type (SHT_*), or NULL. */
Elf_Scn *opus_elf_section_of_type(Elf *elf, uint32_t type, GElf_Shdr *shdr);

/* Copy len bytes of the object's loaded image at link-time address vaddr
 * (from the PT_LOAD segment holding them). -ERANGE if they are not all in
 * one segment's file content. */
int opus_elf_read_vaddr(Elf *elf, uint64_t vaddr, void *buf, size_t len);

/* Whether the object's loaded image may be written at link-time address
 * vaddr once the loader is done: in a writable PT_LOAD segment, and not in
 * the part PT_GNU_RELRO makes read-only after relocating it. */
bool opus_elf_writable_at(Elf *elf, uint64_t vaddr);

/* The GOT slot (link-time address) that an R_X86_64_IRELATIVE relocation
 * fills by running resolver: where the object's own calls of an IFUNC find
 * its implementation. -ENOENT if none. */
int opus_elf_irelative_slot(Elf *elf, uint64_t resolver, uint64_t *slot);

/* The dynamic relocation the loader applies at link-time address slot (a
 * GOT slot): its symbol's name ("" for one without, a RELATIVE one whose
 * addend is the address) and addend. -ENOENT if there is none. */
int opus_elf_dynreloc_at(Elf *elf, uint64_t slot, const char **name, int64_t *addend);
/* The GOT slot the PLT entry at entry jumps through ("jmp *slot(%rip)",
 * after an endbr64 and a bnd prefix). -ENOENT if it is no such entry. */
int opus_elf_plt_slot(Elf *elf, uint64_t entry, uint64_t *slot);

struct opus_sym {
	const char *name; /* without any @VERSION suffix's effect on lookups */
	const char *file; /* STT_FILE in force for local symbols, else NULL */
	uint64_t value;
	uint64_t size;
	uint16_t shndx;
	uint8_t type;
	uint8_t bind;
	bool hidden; /* a non-default symbol version (dynsym only) */
};

struct opus_symtab {
	struct opus_sym *syms;
	size_t count;
	/* Lookups stay fast in a table of many thousand symbols: positions
	 * grouped by a hash of the name (up to any @VERSION) into buckets,
	 * each bucket by hash, name, then table order, so that one name's
	 * symbols are together; built in linear time, where a sort by name
	 * was a fifth of an apply's CPU on nginx. */
	size_t *by_name;
	size_t *bucket_start, nbuckets; /* bucket b: by_name[start[b]..start[b+1]) */
	uint32_t *name_hash;		/* per symbol */
	/* Defined functions by address, then table order: NULL until
	 * opus_symtab_index_funcs. */
	size_t *funcs_by_addr, nfuncs;
	uint64_t max_func_size;
};

/* Load .symtab (dynamic false) or .dynsym (dynamic true). Names point into
 * the Elf, which must outlive the table. -ENOENT when there is no such table. */
int opus_symtab_load(Elf *elf, bool dynamic, struct opus_symtab *out);
void opus_symtab_free(struct opus_symtab *t);
/* The defined functions sorted by address, which opus_symtab_funcs_starting
 * and opus_symtab_func_at need. Made on demand: apply and revert look
 * symbols up by name only, and this sort was 9% of their CPU on nginx. */
int opus_symtab_index_funcs(struct opus_symtab *t);
/* Symbol i of a symbol table's data (its names in section strtab; its
 * versions, for .dynsym, in versyms or NULL), file left NULL; false if it
 * cannot be read. */
bool opus_sym_read(Elf *elf, Elf_Data *syms, size_t strtab, Elf_Data *versyms, size_t i,
		   struct opus_sym *out);

/* An object's .gnu.hash (src/util/gnuhash.c): a name looked up in its
 * .dynsym the way the dynamic loader looks it up, reading a few symbols
 * instead of loading the table. Borrows the Elf. */
struct opus_gnu_hash {
	Elf *elf;
	Elf_Data *table, *syms, *versyms;
	size_t strtab;
	uint32_t nbuckets, symoffset, bloom_size, bloom_shift;
	uint64_t chain_at, nchain, nsyms;
};

/* 0, or -ENOENT when elf has no usable .gnu.hash (an old or odd object:
 * load its .dynsym instead). */
int opus_gnu_hash_open(Elf *elf, struct opus_gnu_hash *h);
/* What opus_symtab_find_global finds in the loaded .dynsym: a defined
 * global or weak symbol with a default version, into *out (whose name
 * points into the Elf). */
bool opus_gnu_hash_find_global(const struct opus_gnu_hash *h, const char *name,
			       struct opus_sym *out);
/* Does elf's .dynsym import one of names (an undefined symbol of that
 * name, any @VERSION ignored)? A linear pass: nothing is indexed. */
bool opus_elf_imports(Elf *elf, const char *const *names, size_t n);
/* Compare a symbol name with a plain name, ignoring a @VERSION suffix. */
bool opus_sym_name_eq(const char *symname, const char *name);
/* The symbols named name (a @VERSION suffix on either side ignored), in
 * table order: t->syms[t->by_name[*first + k]] for k below the count
 * returned. */
size_t opus_symtab_named(const struct opus_symtab *t, const char *name, size_t *first);
/* The defined functions starting at addr (names of one function: aliases,
 * or code the compiler folded): t->syms[t->funcs_by_addr[*first + k]] for
 * k below the count returned. */
size_t opus_symtab_funcs_starting(const struct opus_symtab *t, uint64_t addr, size_t *first);
/* The first defined function, in table order, that covers addr (a
 * zero-sized one covers its own address), or NULL. */
const struct opus_sym *opus_symtab_func_at(const struct opus_symtab *t, uint64_t addr);
/* A defined global or weak symbol with a default version, or NULL. */
const struct opus_sym *opus_symtab_find_global(const struct opus_symtab *t, const char *name);
/* Local symbols named name defined after STT_FILE file (basename compared;
 * NULL: under any file). Returns the match count; *out gets the first. */
int opus_symtab_find_local(const struct opus_symtab *t, const char *file, const char *name,
			   const struct opus_sym **out);

#endif
