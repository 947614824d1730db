#include "assemble.h"
#include "objdiff.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct asm_ctx {
	struct opatch *p;
	const struct opus_symtab *bin;
	const struct opus_symtab *exports; /* a library's: interposable by name */
	const struct obj *o, *orig;
	const char *from; /* the function whose relocations are being bound */
	const struct assemble_why *why;
	int32_t *scn_idx; /* object section -> patch section, -1 if not included */
	int32_t *scn_sym; /* object section -> its patch section symbol */
	uint8_t *changed; /* per object symbol */
	size_t *work;
	size_t nwork, work_cap;
	struct build_notes *notes;
};

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
static int bin_lookup(struct asm_ctx *c, const GElf_Sym *sym, const char *name,
		      const struct opus_sym **out)
{
	const char *orig_name;
	int n;

	if (GELF_ST_BIND(sym->st_info) != STB_LOCAL) {
		*out = bin_find_global(c, name);
		return 0;
	}
	if (GELF_ST_TYPE(sym->st_info) == STT_OBJECT && base_len(name) != strlen(name)) {
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

static int include_section(struct asm_ctx *c, size_t scn)
{
	const struct obj_scn *s = &c->o->scns[scn];
	uint64_t flags =
	    s->sh.sh_flags & (SHF_ALLOC | SHF_WRITE | SHF_EXECINSTR | SHF_MERGE | SHF_STRINGS);
	GElf_Sym sym;
	int idx, sym_idx;

	if (c->scn_idx[scn] >= 0)
		return c->scn_idx[scn];
	if (s->sh.sh_flags & SHF_TLS)
		return opus_err(-ENOTSUP,
				"%s: thread-local variables in new code are not supported yet",
				s->name);
	idx = opatch_add_section(c->p, s->name, s->sh.sh_type, flags, s->sh.sh_addralign,
				 s->data ? s->data->d_buf : NULL, s->sh.sh_size);
	if (idx < 0)
		return idx;
	sym_idx =
	    opatch_add_sym(c->p, s->name, OPATCH_SYM_SECTION, (uint32_t)idx, 0, 0, STT_SECTION);
	if (sym_idx < 0 || OPUS_PUSH(c->work, c->nwork, c->work_cap))
		return -ENOMEM;
	c->scn_idx[scn] = idx;
	c->scn_sym[scn] = sym_idx;
	c->work[c->nwork++] = scn;
	for (size_t i = 1; i < c->o->nsyms; i++) {
		int t;

		if (!obj_sym(c->o, i, &sym) || sym.st_shndx != scn)
			continue;
		t = GELF_ST_TYPE(sym.st_info);
		if ((t == STT_FUNC || t == STT_OBJECT) &&
		    opatch_add_sym(c->p, obj_sym_name(c->o, &sym), OPATCH_SYM_DEFINED,
				   (uint32_t)idx, sym.st_value, sym.st_size, (uint8_t)t) < 0)
			return -ENOMEM;
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
	for (size_t i = 0; i < p->nsyms; i++)
		if (p->syms[i].kind == kind && p->syms[i].value == value &&
		    !strcmp(p->syms[i].name, name))
			return (int)i;
	return opatch_add_sym(p, name, kind, 0, value, 0, type);
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
		ret = bin_lookup(c, &hs, name, &b);
		if (ret)
			return ret;
		if (b && interposable(c, &hs, name, type)) {
			*addend += (int64_t)v - (int64_t)hs.st_value;
			return find_or_add_sym(c->p, name, OPATCH_SYM_EXTERN, 0,
					       GELF_ST_TYPE(hs.st_info));
		}
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
	ret = include_section(c, scn);
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

/* Patch symbol a relocation binds to; *addend is adjusted to match. */
static int resolve(struct asm_ctx *c, const GElf_Rela *r, uint32_t type, int64_t *addend)
{
	size_t symidx = GELF_R_SYM(r->r_info), scn, holder;
	const struct obj_scn *t;
	const struct opus_sym *b;
	const char *name;
	GElf_Sym sym;
	uint64_t v;

	*addend = r->r_addend;
	if (!obj_sym(c->o, symidx, &sym))
		return opus_err(-EINVAL, "%s: bad relocation symbol", c->o->path);
	name = obj_sym_name(c->o, &sym);
	if (sym.st_shndx == SHN_UNDEF) {
		b = bin_find_global(c, name);
		if (b && !interposable(c, &sym, name, type))
			return find_or_add_sym(c->p, name, OPATCH_SYM_TARGET, b->value,
					       GELF_ST_TYPE(sym.st_info));
		return find_or_add_sym(c->p, name, OPATCH_SYM_EXTERN, 0, GELF_ST_TYPE(sym.st_info));
	}
	if (sym.st_shndx >= c->o->nscn)
		return opus_err(-ENOTSUP, "%s: symbol %s has an unsupported section", c->o->path,
				name);
	scn = sym.st_shndx;
	t = &c->o->scns[scn];
	v = GELF_ST_TYPE(sym.st_info) == STT_SECTION ? 0 : sym.st_value;
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
	if (!(t->sh.sh_flags & SHF_WRITE) || !strncmp(t->name, ".data.rel.ro", 12))
		return bind_or_include(c, scn, 0, addend, v, false, type);
	holder = data_holder(c, symidx, &sym, scn, r);
	return bind_or_include(c, scn, holder, addend, v, true, type);
}

/* A PC32 relocation on a call, jmp or jcc rel32: a branch, which may go
 * through a stub like a PLT32 one. A RIP-relative operand is preceded by
 * its ModRM byte (mod 00, rm 101: 05, 0d ... 3d), never by e8, e9 or 0f 8x. */
static bool is_branch(const struct obj_scn *s, uint64_t off)
{
	const uint8_t *b = s->data ? s->data->d_buf : NULL;

	if (!b || !(s->sh.sh_flags & SHF_EXECINSTR) || off < 2 || off > s->data->d_size)
		return false;
	return b[off - 1] == 0xe8 || b[off - 1] == 0xe9 ||
	       (b[off - 2] == 0x0f && (b[off - 1] & 0xf0) == 0x80);
}

static int process_section(struct asm_ctx *c, size_t scn)
{
	const struct obj_scn *os = &c->o->scns[scn];
	uint32_t pscn = (uint32_t)c->scn_idx[scn];
	size_t f = obj_sym_in_scn(c->o, scn, -1, STT_FUNC);
	GElf_Rela r;
	GElf_Sym fs;

	c->from = f && obj_sym(c->o, f, &fs) ? obj_sym_name(c->o, &fs) : NULL;

	for (size_t i = 0; obj_rela(c->o, scn, i, &r); i++) {
		struct opatch_rela pr = {.offset = r.r_offset,
					 .type = (uint32_t)GELF_R_TYPE(r.r_info)};
		int sym;

		if (!opatch_rela_width(pr.type))
			return opus_err(-ENOTSUP, "%s: section %s: unsupported relocation type %u",
					c->o->path, os->name, pr.type);
		if (pr.type == R_X86_64_PC32 && is_branch(os, r.r_offset))
			pr.type = R_X86_64_PLT32;
		sym = resolve(c, &r, pr.type, &pr.addend);
		if (sym < 0)
			return sym;
		/* Data of another object is usually beyond 2 GiB of the patch:
		 * only a GOT slot reaches it. */
		if (c->p->syms[sym].kind == OPATCH_SYM_EXTERN && obj_rela_is_direct(pr.type))
			return opus_err(ASSEMBLE_EFARDATA,
					"%s reads %s, a variable of another object, at a 32-bit "
					"distance",
					c->from ? c->from : os->name, c->p->syms[sym].name);
		pr.sym = (uint32_t)sym;
		if (opatch_add_rela(c->p, pscn, &pr) < 0)
			return -ENOMEM;
	}
	return 0;
}

static size_t cold_part_of(const struct obj *o, const char *parent)
{
	char name[512];

	snprintf(name, sizeof(name), "%s.cold", parent);
	return obj_find_sym(o, name, STT_FUNC);
}

static bool map_line(void *ctx, int old, int *new_line)
{
	return diff_file_map_line(ctx, old, new_line);
}

/* A change only in __LINE__ immediates is no change, if nothing in the
 * function's own source (or what it inlines) changed and no header did. */
static bool only_lines_moved(struct asm_ctx *c, size_t f, const char *name)
{
	const struct diff_file *df;

	for (size_t i = 0; i < c->why->diff->n; i++) {
		const char *p = c->why->diff->v[i].path;
		size_t n = strlen(p);

		if (n < 2 || strcmp(p + n - 2, ".c"))
			return false;
	}
	if (src_touched(c->why->src, c->why->diff, name))
		return false;
	df = src_diff_of(c->why->src, c->why->diff, name);
	return df && objdiff_only_lines(c->orig, c->o, f, map_line, (void *)df);
}

static void mark_changed(struct asm_ctx *c, const struct obj *orig)
{
	GElf_Sym sym;

	for (size_t i = 1; i < c->o->nsyms; i++) {
		const char *name;

		if (!obj_sym(c->o, i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
		    sym.st_shndx == SHN_UNDEF || objdiff_func(orig, c->o, i) != OBJDIFF_CHANGED)
			continue;
		name = obj_sym_name(c->o, &sym);
		if (only_lines_moved(c, i, name))
			build_note_add(c->notes, BUILD_INFO, name, c->o->file,
				       "only line numbers in its code moved (__LINE__); left out");
		else
			c->changed[i] = 1;
	}
	/* A function and its cold part change together. */
	for (size_t i = 1; i < c->o->nsyms; i++) {
		const char *name;
		size_t cold, parent;
		char pname[512];

		if (!obj_sym(c->o, i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC)
			continue;
		name = obj_sym_name(c->o, &sym);
		if (obj_is_cold_name(name)) {
			snprintf(pname, sizeof(pname), "%.*s", (int)(strstr(name, ".cold") - name),
				 name);
			parent = obj_find_sym(c->o, pname, STT_FUNC);
			if (c->changed[i] && parent)
				c->changed[parent] = 1;
		} else if (c->changed[i] && (cold = cold_part_of(c->o, name)))
			c->changed[cold] = 1;
	}
}

static int new_func_sym(struct opatch *p, const char *name, uint32_t section)
{
	for (size_t i = 0; i < p->nsyms; i++)
		if (p->syms[i].kind == OPATCH_SYM_DEFINED && p->syms[i].section == section &&
		    p->syms[i].type == STT_FUNC && !strcmp(p->syms[i].name, name))
			return (int)i;
	return -ENOENT;
}

/* Redirect one changed function (and check its cold part) if it exists. */
/* Our compile puts each function in its own section, so a short jump to a
 * neighbour becomes a long one and alignment padding moves: a few bytes
 * either way are the same code. A larger gap means other flags or source. */
static bool sizes_agree(uint64_t ours, uint64_t binary)
{
	uint64_t gap = ours > binary ? ours - binary : binary - ours;
	uint64_t slack = binary / 8 > 16 ? binary / 8 : 16;

	return gap <= slack;
}

static int replace_func(struct asm_ctx *c, size_t f)
{
	const struct opus_sym *b, *bc = NULL;
	GElf_Sym sym, csym, osym;
	const char *name;
	size_t cold, fo;
	int scn, nsym, ret;
	char cname[512], why[512];

	obj_sym(c->o, f, &sym);
	name = obj_sym_name(c->o, &sym);
	if ((ret = bin_lookup(c, &sym, name, &b)))
		return ret;
	src_explain(c->why->src, c->why->diff, name, why, sizeof(why));
	if (!b)
		return build_note_add(c->notes, BUILD_INFO, name, c->o->file,
				      "%s, but the binary has no copy of its own (inlined into "
				      "its callers, which are replaced instead)",
				      why);
	if ((fo = obj_find_sym(c->orig, name, STT_FUNC)) && obj_sym(c->orig, fo, &osym) &&
	    !sizes_agree(osym.st_size, b->size))
		build_note_add(c->notes, BUILD_WARNING, name, c->o->file,
			       "the original compile has %llu bytes, the binary %llu: was the "
			       "binary built from this tree with these flags?",
			       (unsigned long long)osym.st_size, (unsigned long long)b->size);
	if (b->size < 5)
		return opus_err(-ENOTSUP, "%s: %llu bytes in the binary, too small for a jump",
				name, (unsigned long long)b->size);
	scn = include_section(c, sym.st_shndx);
	if (scn < 0)
		return scn;
	nsym = new_func_sym(c->p, name, (uint32_t)scn);
	if (nsym < 0 || opatch_add_func(c->p, name, b->value, b->size, (uint32_t)nsym, false) < 0)
		return opus_err(-ENOMEM, "%s: cannot record replacement", name);
	build_note_add(c->notes, BUILD_REPLACED, name, c->o->file, "%s", why);
	snprintf(cname, sizeof(cname), "%s.cold", name);
	if (opus_symtab_find_local(c->bin, c->o->file, cname, &bc) != 1 || !bc)
		return 0;
	/* The old cold part is checked for activeness; the new one comes along. */
	cold = cold_part_of(c->o, name);
	if (!cold || !obj_sym(c->o, cold, &csym))
		return opus_err(-EINVAL, "%s: the binary has %s but the new code has none", name,
				cname);
	scn = include_section(c, csym.st_shndx);
	if (scn < 0)
		return scn;
	nsym = new_func_sym(c->p, cname, (uint32_t)scn);
	if (nsym < 0 || opatch_add_func(c->p, cname, bc->value, bc->size, (uint32_t)nsym, true) < 0)
		return opus_err(-ENOMEM, "%s: cannot record cold part", name);
	return 0;
}

static int assemble(struct asm_ctx *c)
{
	GElf_Sym sym;
	int ret = 0;

	mark_changed(c, c->orig);
	for (size_t i = 1; !ret && i < c->o->nsyms; i++)
		if (c->changed[i] && obj_sym(c->o, i, &sym) &&
		    !obj_is_cold_name(obj_sym_name(c->o, &sym)))
			ret = replace_func(c, i);
	for (size_t w = 0; !ret && w < c->nwork; w++)
		ret = process_section(c, c->work[w]);
	for (size_t s = 1; !ret && s < c->o->nscn; s++) {
		GElf_Sym fs;
		size_t f;

		if (c->scn_idx[s] < 0 || !(c->o->scns[s].sh.sh_flags & SHF_EXECINSTR))
			continue;
		f = obj_sym_in_scn(c->o, s, -1, STT_FUNC);
		if (f && !c->changed[f] && obj_sym(c->o, f, &fs) &&
		    !obj_is_cold_name(obj_sym_name(c->o, &fs)))
			build_note_add(c->notes, BUILD_ADDED, obj_sym_name(c->o, &fs), c->o->file,
				       "new function, or one the running binary only has inlined");
	}
	return ret;
}

int assemble_tu(struct opatch *p, const struct assemble_target *bin, const struct obj *orig,
		const struct obj *patched, const struct assemble_why *why,
		struct build_notes *notes)
{
	struct asm_ctx c = {.p = p,
			    .bin = bin->syms,
			    .exports = bin->exports,
			    .o = patched,
			    .orig = orig,
			    .why = why,
			    .notes = notes};
	int ret = -ENOMEM;

	c.scn_idx = malloc(patched->nscn * sizeof(*c.scn_idx));
	c.scn_sym = malloc(patched->nscn * sizeof(*c.scn_sym));
	c.changed = calloc(patched->nsyms + 1, 1);
	if (c.scn_idx && c.scn_sym && c.changed) {
		for (size_t i = 0; i < patched->nscn; i++)
			c.scn_idx[i] = c.scn_sym[i] = -1;
		ret = assemble(&c);
	}
	free(c.scn_idx);
	free(c.scn_sym);
	free(c.changed);
	free(c.work);
	return ret;
}
