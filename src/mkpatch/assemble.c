#include "assemble_ctx.h"
#include "objdiff.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static bool has_rela_at(const struct obj *o, size_t scn, uint64_t off)
{
	GElf_Rela r;

	for (size_t i = 0; obj_rela(o, scn, i, &r); i++)
		if (r.r_offset == off)
			return true;
	return false;
}

/* A function that takes its own address (a handler that re-arms itself:
 * a libevent timer, a signal handler that installs itself again) does it
 * with `lea f(%rip), %reg` (REX.W 8d, ModRM mod 00 rm 101), which the
 * assembler resolves within the section and leaves no relocation for:
 * the program would store a pointer into the patch and call it after a
 * revert had unmapped the patch (a timer re-armed that way crashed the
 * program on its next tick). Bound like every other address taken: to
 * the binary's function, whose entry leads to the code in force. */
static int bind_own_address(struct asm_ctx *c, size_t scn, uint32_t pscn, size_t f)
{
	const struct obj_scn *os = &c->o->scns[scn];
	const uint8_t *b = os->data ? os->data->d_buf : NULL;
	GElf_Sym fs;
	int sym = -ENOENT;

	if (!b || !(os->sh.sh_flags & SHF_EXECINSTR) || !f || !obj_sym(c->o, f, &fs))
		return 0;
	for (uint64_t k = 3; k + 4 <= os->data->d_size; k++) {
		int32_t disp;

		memcpy(&disp, b + k, sizeof(disp));
		if ((b[k - 3] & 0xf8) != 0x48 || b[k - 2] != 0x8d || (b[k - 1] & 0xc7) != 0x05 ||
		    (int64_t)k + 4 + disp != (int64_t)fs.st_value || has_rela_at(c->o, scn, k))
			continue;
		if (sym == -ENOENT && (sym = asm_bin_function(c, f)) < 0)
			return 0; /* the binary has none: the new code's own, as before */
		if (opatch_add_rela(c->p, pscn,
				    &(struct opatch_rela){.offset = k,
							  .type = R_X86_64_PC32,
							  .sym = (uint32_t)sym,
							  .addend = -4}) < 0)
			return -ENOMEM;
	}
	return 0;
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

		if (pr.type == R_X86_64_GOTPC32_TLSDESC || pr.type == R_X86_64_TLSDESC_CALL)
			return opus_err(-ENOTSUP,
					"%s: %s uses TLS descriptors (-mtls-dialect=gnu2): not "
					"supported",
					c->o->file, os->name);
		if (!opatch_rela_width(pr.type))
			return opus_err(-ENOTSUP, "%s: section %s: unsupported relocation type %u",
					c->o->path, os->name, pr.type);
		if (pr.type == R_X86_64_PC32 && is_branch(os, r.r_offset))
			pr.type = R_X86_64_PLT32;
		sym = asm_resolve(c, &r, pr.type, &pr.addend);
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
	return bind_own_address(c, scn, pscn, f);
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

/* The name under which the DWARF describes function f: its own, or that of
 * an alias at the same place (the source defines one, the others are
 * aliases of it). Every name of one function gets the same verdict. */
static const char *dwarf_name(const struct asm_ctx *c, size_t f, const char *name)
{
	const size_t *v;
	GElf_Sym sym, other;
	size_t n;

	if (src_known(c->why->src, name) || !obj_sym(c->o, f, &sym))
		return name;
	v = obj_scn_syms(c->o, sym.st_shndx, &n);
	for (size_t k = 0; k < n; k++)
		if (v[k] != f && obj_sym(c->o, v[k], &other) &&
		    GELF_ST_TYPE(other.st_info) == STT_FUNC && other.st_value == sym.st_value &&
		    src_known(c->why->src, obj_sym_name(c->o, &other)))
			return obj_sym_name(c->o, &other);
	return name;
}

/* A change only in __LINE__ immediates is no change, if nothing in the
 * function's own source (or what it inlines) changed and no header did. */
static bool only_lines_moved(struct asm_ctx *c, size_t f, const char *name)
{
	const struct diff_file *df;

	name = dwarf_name(c, f, name);
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

/* Is name, or the function whose cold part it is, excluded? A cold part
 * left in would bring its function back in with it. */
static bool excluded(const struct asm_ctx *c, const char *name)
{
	size_t len = obj_is_cold_name(name) ? (size_t)(strstr(name, ".cold") - name) : strlen(name);

	for (size_t i = 0; i < c->scope->nexclude; i++)
		if (strlen(c->scope->exclude[i]) == len &&
		    !strncmp(c->scope->exclude[i], name, len))
			return true;
	return false;
}

static void mark_changed(struct asm_ctx *c, const struct obj *orig)
{
	GElf_Sym sym;

	for (size_t i = 1; i < c->o->nsyms; i++) {
		const char *name;

		if (!obj_sym(c->o, i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
		    sym.st_shndx == SHN_UNDEF)
			continue;
		name = obj_sym_name(c->o, &sym);
		if (c->scope->every_function) {
			c->changed[i] = !excluded(c, name);
			continue;
		}
		if (objdiff_func(orig, c->o, i) != OBJDIFF_CHANGED)
			continue;
		if (excluded(c, name))
			build_note_add(
			    c->notes, BUILD_WARNING, name, c->o->file,
			    "its code changed, but it is excluded: it keeps its old code");
		else if (only_lines_moved(c, i, name))
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
			if (parent)
				c->changed[i] = c->changed[parent] |= c->changed[i];
		} else if ((cold = cold_part_of(c->o, name))) {
			c->changed[i] = c->changed[cold] |= c->changed[i];
		}
	}
}

/* Redirect one changed function, and check its cold part. */
static int replace_func(struct asm_ctx *c, size_t f)
{
	const struct opus_sym *b, *bc = NULL;
	GElf_Sym sym, csym;
	const char *name;
	size_t cold;
	int scn, nsym, ret;
	char cname[512], why[512];
	enum src_reason reason = SRC_OWN;

	obj_sym(c->o, f, &sym);
	name = obj_sym_name(c->o, &sym);
	if ((ret = asm_bin_lookup(c, &sym, name, &b)))
		return ret;
	if (c->scope->every_function)
		snprintf(why, sizeof(why), "replaced by its own recompiled code");
	else
		reason = src_explain(c->why->src, c->why->diff, dwarf_name(c, f, name), why,
				     sizeof(why));
	if (!b && c->scope->every_function) {
		c->changed[f] = 0;
		return 0;
	}
	if (!b && GELF_ST_BIND(sym.st_info) != STB_LOCAL)
		return opus_err(-ENOENT,
				"%s (%s): its code changed, but the binary has no function of that "
				"name: is %s part of it?",
				name, c->o->file, c->o->file);
	if (!b)
		return build_note_add(c->notes, BUILD_INFO, name, c->o->file,
				      "%s, but the binary has no copy of its own (inlined into "
				      "its callers, which are replaced instead)",
				      why);
	if (b->size < 5 && c->scope->every_function) {
		c->changed[f] = 0;
		return build_note_add(c->notes, BUILD_INFO, name, c->o->file,
				      "left out: %llu bytes, too small for a jump",
				      (unsigned long long)b->size);
	}
	if (b->size < 5)
		return opus_err(-ENOTSUP, "%s: %llu bytes in the binary, too small for a jump",
				name, (unsigned long long)b->size);
	scn = asm_include_section(c, sym.st_shndx);
	if (scn < 0)
		return scn;
	nsym = c->sym_map[f];
	if (nsym < 0 || opatch_add_func(c->p, name, b->value, b->size, (uint32_t)nsym, false) < 0)
		return opus_err(-ENOMEM, "%s: cannot record replacement", name);
	if (!build_note_add(c->notes, BUILD_REPLACED, name, c->o->file, "%s", why))
		c->notes->v[c->notes->n - 1].inherited = reason != SRC_OWN;
	snprintf(cname, sizeof(cname), "%s.cold", name);
	if (opus_symtab_find_local(c->bin, c->o->file, cname, &bc) != 1 || !bc)
		return 0;
	/* The old cold part is checked for activeness with its function. The
	 * new one, if the new code has one, comes along; if not, the new
	 * function stands in as its counterpart. */
	cold = cold_part_of(c->o, name);
	if (cold && obj_sym(c->o, cold, &csym)) {
		if ((scn = asm_include_section(c, csym.st_shndx)) < 0)
			return scn;
		nsym = c->sym_map[cold];
	}
	if (nsym < 0 || opatch_add_func(c->p, cname, bc->value, bc->size, (uint32_t)nsym, true) < 0)
		return opus_err(-ENOMEM, "%s: cannot record cold part", name);
	return 0;
}

/* The relocations of every section copied in and not yet processed
 * (including those copied in while processing them). */
static int process_work(struct asm_ctx *c)
{
	int ret = 0;

	for (size_t w = 0; !ret && w < c->nwork; w++)
		ret = process_section(c, c->work[w]);
	c->nwork = 0;
	return ret;
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
	if (!ret)
		ret = process_work(c);
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

/* An assembly from object o into p, for bin, with its per-symbol and
 * per-section tables. */
static int ctx_alloc(struct asm_ctx *c, struct opatch *p, const struct assemble_target *bin,
		     const struct obj *o)
{
	c->p = p;
	c->bin_elf = bin->elf;
	c->bin = bin->syms;
	c->exports = bin->exports;
	c->o = o;

	c->scn_idx = malloc(o->nscn * sizeof(*c->scn_idx));
	c->scn_sym = malloc(o->nscn * sizeof(*c->scn_sym));
	c->sym_map = malloc((o->nsyms + 1) * sizeof(*c->sym_map));
	c->changed = calloc(o->nsyms + 1, 1);
	if (!c->scn_idx || !c->scn_sym || !c->sym_map || !c->changed)
		return -ENOMEM;
	for (size_t i = 0; i < o->nscn; i++)
		c->scn_idx[i] = c->scn_sym[i] = -1;
	for (size_t i = 0; i <= o->nsyms; i++)
		c->sym_map[i] = -ENOENT;
	return 0;
}

static void ctx_free(struct asm_ctx *c)
{
	free(c->scn_idx);
	free(c->scn_sym);
	free(c->sym_map);
	free(c->changed);
	free(c->work);
	asm_consts_free(&c->consts);
}

int assemble_tu(struct opatch *p, const struct assemble_target *bin,
		const struct assemble_scope *scope, const struct obj *orig,
		const struct obj *patched, const struct assemble_why *why,
		struct build_notes *notes)
{
	struct asm_ctx c = {.orig = orig, .why = why, .scope = scope, .notes = notes};
	int ret = ctx_alloc(&c, p, bin, patched);

	if (!ret)
		ret = assemble(&c);
	if (!ret)
		ret = asm_add_cfi(&c);
	ctx_free(&c);
	return ret;
}

/* Patch symbol i, an extern by name, leads to patch symbol def instead. */
static void link_to_defined(struct opatch *p, size_t i, size_t def)
{
	p->syms[i].kind = OPATCH_SYM_DEFINED;
	p->syms[i].section = p->syms[def].section;
	p->syms[i].value = p->syms[def].value;
	p->syms[i].size = p->syms[def].size;
}

/* Does patch symbol def lie in a copy of the object's section os? */
static bool same_section(const struct opatch *p, size_t def, const struct obj_scn *os)
{
	const struct opatch_section *ps = &p->sections[p->syms[def].section];

	return ps->size == os->sh.sh_size && os->data && ps->data &&
	       !memcmp(ps->data, os->data->d_buf, ps->size);
}

/* Global i of the unit, which the binary lacks and the patch's code of
 * another unit names (an extern symbol of that name): a function is
 * copied in with what it uses, and those calls sent to it; a variable is
 * refused. 1 if a function was linked, 0 if i is no such global. */
static int add_new_global(struct asm_ctx *c, size_t i)
{
	const struct opus_sym *b = NULL;
	const char *name;
	GElf_Sym sym;
	int ext, def, ret;

	if (!obj_sym(c->o, i, &sym) || GELF_ST_BIND(sym.st_info) != STB_GLOBAL ||
	    sym.st_shndx == SHN_UNDEF || sym.st_shndx >= c->o->nscn)
		return 0;
	name = obj_sym_name(c->o, &sym);
	if ((ext = opatch_find_sym(c->p, name, OPATCH_SYM_EXTERN, 0)) < 0)
		return 0;
	if ((ret = asm_bin_lookup(c, &sym, name, &b)) || b)
		return ret;
	/* Said at build: apply would find it in no loaded object. */
	if (GELF_ST_TYPE(sym.st_info) != STT_FUNC)
		return opus_err(-ENOTSUP,
				"%s (%s): a new variable that the fix's code in another unit "
				"uses: not supported (a patch adds a variable only for the unit "
				"that defines it)",
				name, c->o->file);
	/* Already in, for a caller in its own unit: the same code (a static
	 * of another unit may have the name). */
	def = opatch_find_sym(c->p, name, OPATCH_SYM_DEFINED, 0);
	if (def >= 0 && same_section(c->p, (size_t)def, &c->o->scns[sym.st_shndx])) {
		link_to_defined(c->p, (size_t)ext, (size_t)def);
		return 1;
	}
	if ((ret = asm_include_section(c, sym.st_shndx)) < 0 || (ret = process_work(c)))
		return ret;
	if (c->sym_map[i] < 0)
		return opus_err(-ENOENT, "%s (%s): copied in, but not found in the patch", name,
				c->o->file);
	link_to_defined(c->p, (size_t)ext, (size_t)c->sym_map[i]);
	build_note_add(c->notes, BUILD_ADDED, name, c->o->file,
		       "new function, called by the fix's code in another unit");
	return 1;
}

int assemble_new_globals(struct opatch *p, const struct assemble_target *bin,
			 const struct obj *orig, const struct obj *patched,
			 struct build_notes *notes, size_t *added)
{
	struct asm_ctx c = {.orig = orig, .notes = notes};
	int ret = ctx_alloc(&c, p, bin, patched);

	*added = 0;
	for (size_t i = 1; !ret && i < patched->nsyms; i++)
		if ((ret = add_new_global(&c, i)) > 0) {
			(*added)++;
			ret = 0;
		}
	if (!ret)
		ret = asm_add_cfi(&c);
	ctx_free(&c);
	return ret;
}

/* The copy of one replaced function's old code: its section of the
 * original compile, under the old-copy suffix. */
static int copy_old_func(struct asm_ctx *c, struct opatch_func *f)
{
	size_t k = obj_find_sym(c->o, f->name, STT_FUNC);
	GElf_Sym sym;
	int scn;

	if (!k || !obj_sym(c->o, k, &sym) || sym.st_shndx == SHN_UNDEF)
		return opus_err(-ENOENT, "%s: not in the original compile of %s", f->name,
				c->o->file);
	if ((scn = asm_include_section(c, sym.st_shndx)) < 0)
		return scn;
	f->old_sym = c->sym_map[k];
	return f->old_sym < 0 ? -ENOMEM : 0;
}

/* One copy, all of it or nothing: its sections and what they refer to. */
static int copy_old_code(struct opatch *p, const struct assemble_target *bin,
			 const struct obj *orig, struct opatch_func *f)
{
	struct assemble_scope none = {0};
	struct build_notes notes = {0};
	struct asm_ctx c = {
	    .orig = orig, .scope = &none, .notes = &notes, .suffix = OPATCH_OLD_SUFFIX};
	struct opatch_mark mark = opatch_mark(p);
	int ret = ctx_alloc(&c, p, bin, orig);

	/* Nothing is marked changed: every reference but the copied code's
	 * own sections binds to the running binary, as the original's did. */
	if (!ret)
		ret = copy_old_func(&c, f);
	if (!ret)
		ret = process_work(&c);
	/* A note is something the binary lacks (a variable): the copy would
	 * not be the running code. */
	if (!ret && notes.n)
		ret = opus_err(-ENOTSUP, "%s: %s", notes.v[0].function, notes.v[0].message);
	if (!ret)
		ret = asm_add_cfi(&c);
	if (ret) {
		opatch_truncate(p, (struct opatch_mark){mark.nsections, mark.nsyms, p->nfuncs});
		f->old_sym = -1;
	}
	build_notes_free(&notes);
	ctx_free(&c);
	return ret;
}

int assemble_old_copies(struct opatch *p, const struct assemble_target *bin, const struct obj *orig,
			const size_t *which, size_t n, struct build_notes *notes)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < n; i++) {
		struct opatch_func *f = &p->funcs[which[i]];

		ret = copy_old_code(p, bin, orig, f);
		if (ret && ret != -ENOMEM)
			ret = build_note_add(notes, BUILD_INFO, f->name, orig->file,
					     "the patch carries no copy of its old code: %s",
					     opus_errmsg());
	}
	return ret;
}
