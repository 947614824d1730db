/* The .opatch patch file: an ELF64 relocatable file holding the new code and
 * data with their relocations, plus .opus.target, .opus.funcs and .opus.meta
 * (see docs/patch-format.md). One writer (build) and one reader (apply,
 * inspect) share this in-memory form. */
#ifndef OPUS_PATCHFILE_OPATCH_H
#define OPUS_PATCHFILE_OPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/elf.h"
#include "util/hindex.h"

#define OPATCH_FORMAT_VERSION 2
#define OPATCH_ID_MAX	      128

struct opatch_rela {
	uint64_t offset;
	uint32_t type;
	uint32_t sym; /* index into opatch.syms */
	int64_t addend;
};

/* A section of new code or data, laid out in the target at apply time. */
struct opatch_section {
	char *name;
	uint32_t type;	/* SHT_PROGBITS or SHT_NOBITS */
	uint64_t flags; /* SHF_* as in the compiled object */
	uint64_t align;
	uint64_t size;
	uint8_t *data; /* NULL for SHT_NOBITS */
	struct opatch_rela *relas;
	size_t nrelas, relas_cap;
};

enum opatch_sym_kind {
	OPATCH_SYM_SECTION, /* start of a patch section */
	OPATCH_SYM_DEFINED, /* a function or object in a patch section */
	OPATCH_SYM_TARGET,  /* in the target object: value is its link-time address */
	OPATCH_SYM_EXTERN,  /* resolved by name in the process at apply time */
};

struct opatch_sym {
	char *name;
	enum opatch_sym_kind kind;
	uint32_t section; /* SECTION and DEFINED: index into opatch.sections */
	uint64_t value;
	uint64_t size;
	uint8_t type; /* STT_* */
};

/* A function of the target object replaced by the patch. A cold part
 * (foo.cold) is checked for activeness with its parent but not redirected. */
struct opatch_func {
	char *name;
	uint64_t old_addr; /* link-time address in the target object */
	uint64_t old_size;
	uint32_t new_sym; /* index into opatch.syms */
	/* The patch's copy of the function's old code, compiled from the
	 * original source and linked to the binary as the new code is (index
	 * into opatch.syms), or -1: the old path of a per-thread transition. */
	int32_t old_sym;
	bool cold;
	/* SHA-256 of its old_size bytes in the target object: apply refuses a
	 * process whose code there is anything else. */
	uint8_t old_sha256[32];
};

struct opatch {
	char *id;
	char *description;
	char *diff_sha256; /* hex digest of the source diff */
	char *findings;	   /* analysis findings, one per line, may be empty */
	/* Ids of the patches this one was built on top of, oldest first, one
	 * per line (NULL: none): it applies only where they are applied. */
	char *after;
	/* The hunks of its diff's C sources (diff_files_line_map's text, NULL:
	 * none): a patch built on top of this one tells by them the __LINE__
	 * constants this one moved in functions it left alone. */
	char *line_map;
	/* Why the patch must be applied with every thread stopped at once,
	 * one reason a line; "" when a per-thread transition may apply it
	 * (mkpatch/mixed.c), NULL when its build did not judge. */
	char *stop_world;
	uint8_t build_id[OPUS_BUILD_ID_MAX];
	size_t build_id_len;
	char *target_name; /* soname or path, for messages */

	struct opatch_section *sections;
	size_t nsections, sections_cap;
	struct opatch_sym *syms;
	size_t nsyms, syms_cap;
	struct opus_hindex sym_index; /* by name, kind and value: opatch_find_sym */
	struct opatch_func *funcs;
	size_t nfuncs, funcs_cap;
};

void opatch_init(struct opatch *p);
void opatch_free(struct opatch *p);

/* How far a patch under construction has grown: a build step that has to
 * start over takes back what it added. */
struct opatch_mark {
	size_t nsections, nsyms, nfuncs;
};
struct opatch_mark opatch_mark(const struct opatch *p);
void opatch_truncate(struct opatch *p, struct opatch_mark m);

/* Builders: return the new element's index or a negative errno. */
int opatch_add_section(struct opatch *p, const char *name, uint32_t type, uint64_t flags,
		       uint64_t align, const void *data, uint64_t size);
int opatch_add_sym(struct opatch *p, const char *name, enum opatch_sym_kind kind, uint32_t section,
		   uint64_t value, uint64_t size, uint8_t type);
int opatch_add_rela(struct opatch *p, uint32_t section, const struct opatch_rela *r);
/* The index of the section of this name, or -ENOENT. */
int opatch_find_section(const struct opatch *p, const char *name);
/* A symbol of this name, kind and value, or -ENOENT. */
int opatch_find_sym(const struct opatch *p, const char *name, enum opatch_sym_kind kind,
		    uint64_t value);
int opatch_add_func(struct opatch *p, const char *name, uint64_t old_addr, uint64_t old_size,
		    uint32_t new_sym, bool cold);
/* The sections and symbols of the copies of old code carry this suffix:
 * code nothing reaches until a transition sends a thread there. */
#define OPATCH_OLD_SUFFIX ".opus_old"
/* The unwind tables of the code the patch carries (mkpatch/cfi.c), laid
 * out with it and named in its record for the stack check. */
#define OPATCH_CFI_SECTION ".eh_frame"
bool opatch_is_old_copy(const char *name);

/* A patch id is 1..OPATCH_ID_MAX of [A-Za-z0-9._-]: it names a memfd. */
bool opatch_id_valid(const char *id);
/* Bytes a relocation of this type writes, 0 if the type is unsupported. */
unsigned opatch_rela_width(uint32_t type);

int opatch_write(const struct opatch *p, const char *path);
/* Validate and read, any signature trailer split off (not checked: that
 * is trust.h's); on error the message names path and what is wrong. */
int opatch_read(const char *path, struct opatch *p);
/* The same over a patch file's body already in memory, its trailer split
 * off (len is optrailer's body_len); name is for messages. */
int opatch_read_mem(const char *name, const void *buf, size_t len, struct opatch *p);

#endif
