#include "assemble_ctx.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of name without a compiler-added ".N" suffix (static locals). */
static size_t base_len(const char *name)
{
	const char *dot = strrchr(name, '.');

	if (!dot || dot == name || !dot[1] || strspn(dot + 1, "0123456789") != strlen(dot + 1))
		return strlen(name);
	return (size_t)(dot - name);
}

/* Does section scn of o refer to object symbol symidx (by name or section)? */
static bool refers_to(const struct obj *o, size_t scn, size_t symidx)
{
	GElf_Sym target, s;
	GElf_Rela r;

	if (!obj_sym(o, symidx, &target))
		return false;
	for (size_t i = 0; obj_rela(o, scn, i, &r); i++) {
		if (GELF_R_SYM(r.r_info) == symidx)
			return true;
		if (obj_sym(o, GELF_R_SYM(r.r_info), &s) &&
		    GELF_ST_TYPE(s.st_info) == STT_SECTION && s.st_shndx == target.st_shndx)
			return true;
	}
	return false;
}

/* The original compile's name for a static local of function c->from:
 * adding a static local renumbers the others (count.1 becomes count.2), so
 * match the base name among the statics the same function used before. A
 * static of a function the original did not have is new. */
static const char *orig_static_name(struct asm_ctx *c, const char *name)
{
	size_t len = base_len(name), f;
	GElf_Sym s;

	if (!c->from || !(f = obj_find_sym(c->orig, c->from, STT_FUNC)) || !obj_sym(c->orig, f, &s))
		return NULL;
	f = s.st_shndx;
	for (size_t i = 1; i < c->orig->nsyms; i++) {
		const char *n;

		if (!obj_sym(c->orig, i, &s) || GELF_ST_TYPE(s.st_info) != STT_OBJECT ||
		    GELF_ST_BIND(s.st_info) != STB_LOCAL)
			continue;
		n = obj_sym_name(c->orig, &s);
		if (base_len(n) == len && !strncmp(n, name, len) && refers_to(c->orig, f, i))
			return n;
	}
	return NULL;
}

/* A global of the compile in the binary. A hidden one (visibility
 * attribute, -fvisibility=hidden) is made local by the link, filed under no
 * source file: take it when its name is unique among the binary's locals. */
static const struct opus_sym *bin_find_global(const struct asm_ctx *c, const char *name)
{
	const struct opus_sym *s = opus_symtab_find_global(c->bin, name);

	if (!s && opus_symtab_find_local(c->bin, NULL, name, &s) != 1)
		s = NULL;
	return s;
}

/* The running binary's copy of an object symbol; NULL if it has none. */
int asm_bin_lookup(struct asm_ctx *c, const GElf_Sym *sym, const char *name,
		   const struct opus_sym **out)
{
	const char *orig_name;
	int n;

	if (GELF_ST_BIND(sym->st_info) != STB_LOCAL) {
		*out = bin_find_global(c, name);
		return 0;
	}
	/* Assembling from the original compile itself (copies of old code),
	 * its names are the original's. */
	if (GELF_ST_TYPE(sym->st_info) == STT_OBJECT && base_len(name) != strlen(name) &&
	    c->o != c->orig) {
		orig_name = orig_static_name(c, name);
		*out = NULL;
		if (!orig_name)
			return 0;
		name = orig_name;
	}
	n = opus_symtab_find_local(c->bin, c->o->file, name, out);
	if (n > 1)
		return opus_err(-EINVAL,
				"static symbol %s of %s is ambiguous in the binary (%d copies)",
				name, c->o->file, n);
	return 0;
}

/* name, with the suffix of what this assembly copies in. */
static const char *copied_name(const struct asm_ctx *c, const char *name, char *buf, size_t size)
{
	if (!c->suffix)
		return name;
	snprintf(buf, size, "%s%s", name, c->suffix);
	return buf;
}

int asm_include_section(struct asm_ctx *c, size_t scn)
{
	const struct obj_scn *s = &c->o->scns[scn];
	uint64_t flags =
	    s->sh.sh_flags & (SHF_ALLOC | SHF_WRITE | SHF_EXECINSTR | SHF_MERGE | SHF_STRINGS);
	const char *name;
	const size_t *syms;
	GElf_Sym sym;
	int idx, sym_idx;
	size_t n;
	char buf[1024];

	if (c->scn_idx[scn] >= 0)
		return c->scn_idx[scn];
	if (s->sh.sh_flags & SHF_TLS)
		return opus_err(-ENOTSUP,
				"%s: thread-local variables in new code are not supported yet",
				s->name);
	name = copied_name(c, s->name, buf, sizeof(buf));
	idx = opatch_add_section(c->p, name, s->sh.sh_type, flags, s->sh.sh_addralign,
				 s->data ? s->data->d_buf : NULL, s->sh.sh_size);
	if (idx < 0)
		return idx;
	sym_idx = opatch_add_sym(c->p, name, OPATCH_SYM_SECTION, (uint32_t)idx, 0, 0, STT_SECTION);
	if (sym_idx < 0 || OPUS_PUSH(c->work, c->nwork, c->work_cap))
		return -ENOMEM;
	c->scn_idx[scn] = idx;
	c->scn_sym[scn] = sym_idx;
	c->work[c->nwork++] = scn;
	syms = obj_scn_syms(c->o, scn, &n);
	for (size_t k = 0; k < n; k++) {
		int t;

		if (!obj_sym(c->o, syms[k], &sym))
			continue;
		t = GELF_ST_TYPE(sym.st_info);
		if (t != STT_FUNC && t != STT_OBJECT)
			continue;
		name = copied_name(c, obj_sym_name(c->o, &sym), buf, sizeof(buf));
		sym_idx = opatch_add_sym(c->p, name, OPATCH_SYM_DEFINED, (uint32_t)idx,
					 sym.st_value, sym.st_size, (uint8_t)t);
		if (sym_idx < 0)
			return -ENOMEM;
		c->sym_map[syms[k]] = sym_idx;
	}
	return idx;
}

/* A library's exported symbol is looked up in the process's global scope,
 * as its own code does through the GOT and PLT (and its data through
 * dynamic relocations): the executable may hold a copy-relocated variable
 * or an interposed function of that name. A direct reference (PC32, 32)
 * cannot have been interposed: the linker bound it to the library's own. */
static bool interposable(const struct asm_ctx *c, const GElf_Sym *sym, const char *name,
			 uint32_t type)
{
	return c->exports && !obj_rela_is_direct(type) && GELF_ST_BIND(sym->st_info) != STB_LOCAL &&
	       opus_symtab_find_global(c->exports, name);
}

static int find_or_add_sym(struct opatch *p, const char *name, enum opatch_sym_kind kind,
			   uint64_t value, uint8_t type)
{
	int i = opatch_find_sym(p, name, kind, value);

	return i >= 0 ? i : opatch_add_sym(p, name, kind, 0, value, 0, type);
}

int asm_target_sym(struct asm_ctx *c, const char *name, uint64_t addr, uint8_t type)
{
	return find_or_add_sym(c->p, name, OPATCH_SYM_TARGET, addr, type);
}

/* A reference to section scn's content at object-symbol sym (value v):
 * bind to the running binary's copy of holder, or include the section. */
static int bind_or_include(struct asm_ctx *c, size_t scn, size_t holder, int64_t *addend,
			   uint64_t v, bool data, uint32_t type)
{
	const struct opus_sym *b = NULL;
	GElf_Sym hs;
	const char *name;
	int ret;

	if (holder && obj_sym(c->o, holder, &hs)) {
		name = obj_sym_name(c->o, &hs);
		ret = asm_bin_lookup(c, &hs, name, &b);
		if (ret)
			return ret;
		if (b && interposable(c, &hs, name, type)) {
			*addend += (int64_t)v - (int64_t)hs.st_value;
			return find_or_add_sym(c->p, name, OPATCH_SYM_EXTERN, 0,
					       GELF_ST_TYPE(hs.st_info));
		}
		if (b && data && !opus_elf_writable_at(c->bin_elf, b->value))
			return opus_err(-ENOTSUP,
					"%s (%s): the patched unit writes it, but the binary keeps "
					"it read-only at 0x%" PRIx64 " (the original program never "
					"writes it, so the compiler made it a constant): the new "
					"code would crash the process writing it. Not built",
					name, c->o->file, b->value);
		if (b) {
			*addend += (int64_t)v;
			return find_or_add_sym(c->p, name, OPATCH_SYM_TARGET,
					       b->value - hs.st_value, GELF_ST_TYPE(hs.st_info));
		}
		if (data && c->scn_idx[scn] < 0)
			build_note_add(c->notes, BUILD_WARNING, name, c->o->file,
				       "new variable: it starts from its initial value, not from "
				       "the running program's state");
	}
	ret = asm_include_section(c, scn);
	if (ret < 0)
		return ret;
	*addend += (int64_t)v;
	return c->scn_sym[scn];
}

static size_t data_holder(struct asm_ctx *c, size_t symidx, const GElf_Sym *sym, size_t scn,
			  const GElf_Rela *r)
{
	int64_t off = r->r_addend;
	size_t h;

	if (GELF_ST_TYPE(sym->st_info) == STT_OBJECT)
		return symidx;
	if (obj_rela_is_pcrel((uint32_t)GELF_R_TYPE(r->r_info)) &&
	    (h = obj_sym_in_scn(c->o, scn, (long)(off + 4), STT_OBJECT)))
		return h;
	if ((h = obj_sym_in_scn(c->o, scn, (long)off, STT_OBJECT)))
		return h;
	return obj_sym_in_scn(c->o, scn, -1, STT_OBJECT);
}

/* The binary's own IFUNC b: new code calls it through the GOT entry the
 * loader filled by running the resolver (IRELATIVE), as the binary's own
 * calls do, never the resolver itself. */
static int ifunc_target(struct asm_ctx *c, const char *name, const struct opus_sym *b)
{
	uint64_t slot;

	if (opus_elf_irelative_slot(c->bin_elf, b->value, &slot))
		return opus_err(-ENOTSUP,
				"%s is an IFUNC of the binary with no IRELATIVE entry to find its "
				"implementation in: not supported",
				name);
	return find_or_add_sym(c->p, name, OPATCH_SYM_TARGET, slot, STT_GNU_IFUNC);
}

/* A TLS reference through a GOT entry made for one variable (the entry
 * holds its offset), as opposed to an offset in the code itself. */
static bool tls_through_got(uint32_t type)
{
	return type == R_X86_64_GOTTPOFF || type == R_X86_64_TLSGD || type == R_X86_64_TLSLD;
}

/* A thread-local variable is the running program's: its block exists in
 * every thread, laid out at load time. New code can reach it, never add
 * one. A static's reference is to its section plus an offset: it becomes
 * one to the variable, *addend adjusted. */
static int resolve_tls(struct asm_ctx *c, const GElf_Sym *sym, size_t symidx, uint32_t type,
		       int64_t *addend)
{
	const char *name = obj_sym_name(c->o, sym);
	const struct opus_sym *b = NULL;
	size_t holder = symidx;
	GElf_Sym hs = *sym;
	int ret;

	if (sym->st_shndx == SHN_UNDEF) {
		b = bin_find_global(c, name);
		return find_or_add_sym(c->p, name, b ? OPATCH_SYM_TARGET : OPATCH_SYM_EXTERN,
				       b ? b->value : 0, STT_TLS);
	}
	if (GELF_ST_TYPE(sym->st_info) == STT_SECTION) {
		if (tls_through_got(type) ||
		    !(holder = obj_sym_in_scn(c->o, sym->st_shndx, (long)*addend, STT_TLS)) ||
		    !obj_sym(c->o, holder, &hs))
			return opus_err(-ENOTSUP,
					"%s: a thread-local reference to %s+%lld that no "
					"variable holds",
					c->o->file, name, (long long)*addend);
		*addend -= (int64_t)hs.st_value;
	}
	name = obj_sym_name(c->o, &hs);
	if ((ret = asm_bin_lookup(c, &hs, name, &b)))
		return ret;
	if (!b || b->type != STT_TLS)
		return opus_err(-ENOTSUP,
				"%s (%s): a new thread-local variable: not supported (existing "
				"threads have no room for it)",
				name, c->o->file);
	return find_or_add_sym(c->p, name, OPATCH_SYM_TARGET, b->value, STT_TLS);
}

/* A function's address taken (a handler stored in the program's state, a
 * table of pointers): the binary's function, when it has one. Its entry
 * leads to the new code while the patch is in, pointers compare equal with
 * those the old code took, and they stay valid once the patch is reverted
 * and unmapped. -ENOENT: not such a reference (a branch, a label inside a
 * function, a function the binary lacks), bind as usual. */
static int function_address(struct asm_ctx *c, const GElf_Rela *r, size_t scn, uint64_t v,
			    int64_t *addend)
{
	int64_t at =
	    (int64_t)v + *addend + (obj_rela_is_pcrel((uint32_t)GELF_R_TYPE(r->r_info)) ? 4 : 0);
	const struct opus_sym *b = NULL;
	size_t holder;
	GElf_Sym hs;

	if (at < 0 || !(holder = obj_sym_in_scn(c->o, scn, at, STT_FUNC)) ||
	    !obj_sym(c->o, holder, &hs) || (int64_t)hs.st_value != at ||
	    obj_is_cold_name(obj_sym_name(c->o, &hs)) ||
	    asm_bin_lookup(c, &hs, obj_sym_name(c->o, &hs), &b) || !b || b->type != STT_FUNC)
		return -ENOENT;
	*addend += (int64_t)v - (int64_t)hs.st_value;
	return find_or_add_sym(c->p, obj_sym_name(c->o, &hs), OPATCH_SYM_TARGET, b->value,
			       STT_FUNC);
}

int asm_bin_function(struct asm_ctx *c, size_t f)
{
	const struct opus_sym *b = NULL;
	GElf_Sym fs;

	if (!obj_sym(c->o, f, &fs) || asm_bin_lookup(c, &fs, obj_sym_name(c->o, &fs), &b) || !b ||
	    b->type != STT_FUNC)
		return -ENOENT;
	return find_or_add_sym(c->p, obj_sym_name(c->o, &fs), OPATCH_SYM_TARGET, b->value,
			       STT_FUNC);
}

/* Patch symbol a relocation binds to; *addend is adjusted to match. */
int asm_resolve(struct asm_ctx *c, const GElf_Rela *r, uint32_t type, int64_t *addend)
{
	size_t symidx = GELF_R_SYM(r->r_info), scn, holder;
	const struct obj_scn *t;
	const struct opus_sym *b;
	const char *name;
	GElf_Sym sym;
	uint64_t v;
	int ret;

	*addend = r->r_addend;
	if (!obj_sym(c->o, symidx, &sym))
		return opus_err(-EINVAL, "%s: bad relocation symbol", c->o->path);
	name = obj_sym_name(c->o, &sym);
	if (obj_rela_is_tls(type))
		return resolve_tls(c, &sym, symidx, type, addend);
	if (sym.st_shndx == SHN_COMMON) {
		/* A common variable is the binary's, like any global. */
		b = bin_find_global(c, name);
		if (!b)
			return opus_err(-ENOTSUP, "%s (%s): a new common variable: not supported",
					name, c->o->file);
		return find_or_add_sym(c->p, name, OPATCH_SYM_TARGET, b->value, STT_OBJECT);
	}
	if (sym.st_shndx == SHN_UNDEF) {
		b = bin_find_global(c, name);
		if (b && b->type == STT_GNU_IFUNC && !interposable(c, &sym, name, type))
			return ifunc_target(c, name, b);
		if (b && !interposable(c, &sym, name, type))
			return find_or_add_sym(c->p, name, OPATCH_SYM_TARGET, b->value,
					       GELF_ST_TYPE(sym.st_info));
		return find_or_add_sym(c->p, name, OPATCH_SYM_EXTERN, 0, GELF_ST_TYPE(sym.st_info));
	}
	if (sym.st_shndx >= c->o->nscn)
		return opus_err(-ENOTSUP, "%s: symbol %s has an unsupported section", c->o->path,
				name);
	if (GELF_ST_TYPE(sym.st_info) == STT_GNU_IFUNC) {
		/* An IFUNC of this unit: through the binary's entry for it. */
		if ((ret = asm_bin_lookup(c, &sym, name, &b)))
			return ret;
		if (b && !interposable(c, &sym, name, type))
			return ifunc_target(c, name, b);
		if (b)
			return find_or_add_sym(c->p, name, OPATCH_SYM_EXTERN, 0, STT_GNU_IFUNC);
		return opus_err(-ENOTSUP, "%s (%s): a new IFUNC: not supported", name, c->o->file);
	}
	scn = sym.st_shndx;
	t = &c->o->scns[scn];
	v = GELF_ST_TYPE(sym.st_info) == STT_SECTION ? 0 : sym.st_value;
	if ((t->sh.sh_flags & SHF_EXECINSTR) && type != R_X86_64_PLT32 &&
	    (ret = function_address(c, r, scn, v, addend)) != -ENOENT)
		return ret;
	if ((t->sh.sh_flags & SHF_ALLOC) && !(t->sh.sh_flags & SHF_EXECINSTR) &&
	    !obj_scn_holds_state(t) && !(t->sh.sh_flags & SHF_TLS) &&
	    (ret = asm_bin_const(c, r, scn, v, addend)) != -ENOENT)
		return ret;
	if (c->scn_idx[scn] >= 0) {
		*addend += (int64_t)v;
		return c->scn_sym[scn];
	}
	if (t->sh.sh_flags & SHF_EXECINSTR) {
		holder = GELF_ST_TYPE(sym.st_info) == STT_FUNC
			     ? symidx
			     : obj_sym_in_scn(c->o, scn, -1, STT_FUNC);
		/* Changed code and cold parts travel with the patch. */
		if (holder && (c->changed[holder] || obj_is_cold_name(name)))
			holder = 0;
		return bind_or_include(c, scn, holder, addend, v, false, type);
	}
	/* Read-only data, and data only the loader writes (relro tables of
	 * pointers), carries no running state: the new version comes along. */
	if (!obj_scn_holds_state(t))
		return bind_or_include(c, scn, 0, addend, v, false, type);
	holder = data_holder(c, symidx, &sym, scn, r);
	return bind_or_include(c, scn, holder, addend, v, true, type);
}
