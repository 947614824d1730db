#include "build.h"
#include "assemble.h"
#include "bind.h"
#include "compile.h"
#include "explain.h"
#include "obj.h"
#include "objdiff.h"
#include "workspace.h"
#include "patchfile/opatch.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/sha256.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The patches this one goes on top of: for the same binary, each read. */
static int load_after(struct build *b)
{
	b->after = calloc(b->opts->nafter + 1, sizeof(*b->after));
	if (!b->after)
		return -ENOMEM;
	for (size_t i = 0; i < b->opts->nafter; i++) {
		struct opatch *q = &b->after[i];
		int ret = opatch_read(b->opts->after[i], q);

		if (ret)
			return ret;
		if (q->build_id_len != b->patch.build_id_len ||
		    memcmp(q->build_id, b->patch.build_id, q->build_id_len))
			return opus_err(-EINVAL, "%s: is for another build-id than %s",
					b->opts->after[i], b->opts->binary);
		if (opus_append_line(&b->patch.after, q->id))
			return -ENOMEM;
	}
	return 0;
}

#define LTO_REASON                                                                                 \
	"link-time optimisation moves code across translation units, so the binary's functions "   \
	"cannot be matched to a unit's; LTO builds are not supported"

/* A binary linked with -flto: its units' DWARF says GCC compiled them from
 * GIMPLE at link time. */
static bool binary_is_lto(Elf *elf)
{
	Dwarf *dw = dwarf_begin_elf(elf, DWARF_C_READ, NULL);
	Dwarf_Off off = 0, next;
	size_t hsize;
	bool lto = false;

	while (dw && !lto && dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu;
		Dwarf_Attribute a;
		const char *producer;

		if (dwarf_offdie(dw, off + hsize, &cu) &&
		    (producer = dwarf_formstring(dwarf_attr(&cu, DW_AT_producer, &a))))
			lto = !strncmp(producer, "GNU GIMPLE", 10);
		off = next;
	}
	if (dw)
		dwarf_end(dw);
	return lto;
}

/* Does path end with the relative path tail, at a component boundary?
 * (A build's file-prefix map can leave DWARF with relative paths only.) */
static bool ends_with_path(const char *path, const char *tail)
{
	size_t n = strlen(path), t = strlen(tail);

	while (!strncmp(tail, "./", 2))
		tail += 2, t -= 2;
	return tail[0] != '/' && n > t && path[n - t - 1] == '/' && !strcmp(path + n - t, tail);
}

/* Is unit e one the binary was compiled from? Its DWARF names each unit's
 * source (relative to the unit's compile directory). Without DWARF, every
 * unit may be. */
static bool binary_has_unit(Dwarf *dw, const struct cdb_entry *e)
{
	Dwarf_Off off = 0, next;
	size_t hsize;

	if (!dw)
		return true;
	for (; dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0; off = next) {
		Dwarf_Die cu;
		Dwarf_Attribute a;
		const char *name, *dir;
		char path[PATH_MAX * 2], real[PATH_MAX];

		if (!dwarf_offdie(dw, off + hsize, &cu) ||
		    !(name = dwarf_formstring(dwarf_attr(&cu, DW_AT_name, &a))))
			continue;
		dir = dwarf_formstring(dwarf_attr(&cu, DW_AT_comp_dir, &a));
		snprintf(path, sizeof(path), "%s%s%s", name[0] == '/' || !dir ? "" : dir,
			 name[0] == '/' || !dir ? "" : "/", name);
		if (!strcmp(realpath(path, real) ? real : path, e->file) ||
		    ends_with_path(e->file, name))
			return true;
	}
	return false;
}

/* A self-replacement of every unit keeps those the binary has. */
static void keep_units_of_binary(struct build *b, struct build_notes *notes)
{
	Dwarf *dw = dwarf_begin_elf(b->bin.elf, DWARF_C_READ, NULL);
	size_t kept = 0;

	for (size_t i = 0; i < b->ws.nunits; i++)
		if (binary_has_unit(dw, b->ws.units[i]))
			b->ws.units[kept++] = b->ws.units[i];
	if (kept < b->ws.nunits)
		build_note_add(notes, BUILD_INFO, "", "compile database",
			       "%zu of %zu units are not in %s (its DWARF): left out",
			       b->ws.nunits - kept, b->ws.nunits, b->opts->binary);
	b->ws.nunits = kept;
	if (dw)
		dwarf_end(dw);
}

static int refuse_lto(const struct build *b)
{
	if (binary_is_lto(b->bin.elf))
		return opus_err(-ENOTSUP, "%s was linked with -flto: " LTO_REASON, b->opts->binary);
	for (size_t i = 0; i < b->ws.nunits; i++)
		if (compile_uses_lto(b->ws.units[i]))
			return opus_err(-ENOTSUP, "%s is compiled with -flto: " LTO_REASON,
					b->ws.units[i]->file);
	return 0;
}

static int load_binary(struct build *b)
{
	int n, ret = opus_elf_open(b->opts->binary, &b->bin);

	if (ret)
		return ret;
	n = opus_elf_build_id(b->bin.elf, b->patch.build_id);
	if (n <= 0)
		return opus_err(-EINVAL, "%s: has no build-id; link with --build-id",
				b->opts->binary);
	b->patch.build_id_len = (size_t)n;
	if (opus_symtab_load(b->bin.elf, false, &b->bin_syms))
		return opus_err(-EINVAL, "%s: has no symbol table; pass the unstripped binary",
				b->opts->binary);
	if (opus_elf_is_library(b->bin.elf) && opus_symtab_load(b->bin.elf, true, &b->bin_exports))
		return opus_err(-EINVAL, "%s: a shared library without .dynsym", b->opts->binary);
	return 0;
}

static void progress(const struct build *b, const char *phase, size_t done, size_t total)
{
	if (b->opts->progress)
		b->opts->progress(b->opts->progress_ctx, phase, done, total);
}

static void obj_path(const struct build *b, const char *tag, size_t unit, char *out, size_t len)
{
	snprintf(out, len, "%s/%s-%zu.o", b->ws.scratch, tag, unit);
}

/* One compile of a unit, as tag-N.o. */
struct compile_req {
	size_t unit;
	const char *tag;
	enum compile_flavour flavour;
};

/* Run the compiles, one per CPU at a time. On failure, the rest started
 * are waited for, and the first error is returned. */
static int compile_batch(struct build *b, const struct compile_req *reqs, size_t n,
			 const char *phase)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t width = cpus > 1 ? (size_t)cpus : 1, started = 0, done = 0;
	struct compile_job *jobs = calloc(n + 1, sizeof(*jobs));
	char out[256];
	int ret = jobs ? 0 : -ENOMEM;

	/* Until every started compile is waited for, and, without an error,
	 * every one was started. */
	while (jobs && (done < started || (!ret && started < n))) {
		while (!ret && started < n && started - done < width) {
			const struct compile_req *r = &reqs[started];

			obj_path(b, r->tag, r->unit, out, sizeof(out));
			ret = compile_start(b->ws.units[r->unit], b->ws.root, b->ws.tree,
					    r->flavour, out, &jobs[started]);
			started += !ret;
		}
		if (done < started) {
			int r = compile_finish(&jobs[done++]);

			if (!ret)
				ret = r;
			progress(b, phase, done, n);
		}
	}
	free(jobs);
	return ret;
}

/* Compile the units (those marked in only, or all) in each flavour given. */
static int compile_units(struct build *b, const char *const *tags,
			 const enum compile_flavour *flavours, size_t nflavours, const bool *only,
			 const char *phase)
{
	struct compile_req *reqs = calloc(b->ws.nunits * nflavours + 1, sizeof(*reqs));
	size_t n = 0;
	int ret;

	if (!reqs)
		return -ENOMEM;
	for (size_t f = 0; f < nflavours; f++)
		for (size_t i = 0; i < b->ws.nunits; i++)
			if (!only || only[i])
				reqs[n++] = (struct compile_req){i, tags[f], flavours[f]};
	ret = compile_batch(b, reqs, n, phase);
	free(reqs);
	return ret;
}

/* Compile the units in one flavour. */
static int compile_as(struct build *b, const char *tag, enum compile_flavour flavour,
		      const bool *only, const char *phase)
{
	return compile_units(b, &tag, &flavour, 1, only, phase);
}

static int open_pair(const struct build *b, size_t unit, const char *orig_tag, const char *new_tag,
		     struct obj *orig, struct obj *patched)
{
	char a[256], n[256];
	int ret;

	obj_path(b, orig_tag, unit, a, sizeof(a));
	obj_path(b, new_tag, unit, n, sizeof(n));
	if ((ret = obj_open(a, orig)))
		return ret;
	if ((ret = obj_open(n, patched)))
		obj_close(orig);
	return ret;
}

/* One unit's changed functions into the patch, from the compiles tagged
 * orig_tag and new_tag. */
static int assemble_unit(struct build *b, size_t unit, const char *orig_tag, const char *new_tag,
			 struct build_notes *notes)
{
	struct assemble_target bin = {b->bin.elf, &b->bin_syms,
				      b->bin_exports.count ? &b->bin_exports : NULL};
	struct obj orig, patched;
	struct src_map src;
	char n[256];
	int ret = open_pair(b, unit, orig_tag, new_tag, &orig, &patched);

	if (ret)
		return ret;
	obj_path(b, new_tag, unit, n, sizeof(n));
	src_map_load(n, &src); /* explanations only: no DWARF, no reasons */
	ret = assemble_tu(&b->patch, &bin, &b->scope, &orig, &patched,
			  &(struct assemble_why){&src, &b->ws.files}, notes);
	src_map_free(&src);
	obj_close(&orig);
	obj_close(&patched);
	return ret;
}

/* The GOT compiles must change the same functions as the plain ones:
 * otherwise their code is not a drop-in for what the diff found. */
static int check_same_changes(struct build *b, size_t unit)
{
	struct obj a1, b1, a2, b2;
	const char *name = NULL;
	int ret = open_pair(b, unit, "orig", "new", &a1, &b1);

	if (ret)
		return ret;
	ret = open_pair(b, unit, "orig-got", "new-got", &a2, &b2);
	if (!ret) {
		if (!objdiff_same_changes(&a1, &b1, &a2, &b2, &name))
			ret = opus_err(-ENOTSUP,
				       "%s: compiled with -mno-direct-extern-access, %s changes "
				       "differently; cannot reach the variable safely",
				       b->ws.units[unit]->file, name ? name : "a function");
		obj_close(&a2);
		obj_close(&b2);
	}
	obj_close(&a1);
	obj_close(&b1);
	return ret;
}

/* Units whose new code reads variables of other objects directly are
 * compiled again, original and patched, with those reads through the GOT. */
static int assemble_far(struct build *b, const bool *far, struct build_notes *notes)
{
	bool self = b->opts->replace_all;
	const char *new_tag = self ? "orig-got" : "new-got";
	int ret = workspace_unapply_diff(&b->ws);

	if (!ret)
		ret = compile_as(b, "orig-got", COMPILE_SECTIONS_GOT, far,
				 "original units compiled with -mno-direct-extern-access");
	if (!ret)
		ret = workspace_apply_diff(&b->ws);
	if (!ret && !self)
		ret = compile_as(b, "new-got", COMPILE_SECTIONS_GOT, far,
				 "patched units compiled with -mno-direct-extern-access");
	for (size_t i = 0; !ret && i < b->ws.nunits; i++) {
		if (!far[i])
			continue;
		ret = self ? 0 : check_same_changes(b, i);
		if (!ret)
			ret = assemble_unit(b, i, "orig-got", new_tag, notes);
		if (ret == ASSEMBLE_EFARDATA)
			ret = opus_err_wrap(-ENOTSUP, "compiled with -mno-direct-extern-access");
	}
	return ret;
}

/* The patch function replacing name (or name.localalias, gcc's local name
 * for the same global function) at addr, or NULL. */
static const struct opatch_func *replacement(const struct opatch *p, const char *name,
					     uint64_t addr)
{
	size_t len = strlen(name);

	if (len > 11 && !strcmp(name + len - 11, ".localalias"))
		len -= 11;
	for (size_t i = 0; i < p->nfuncs; i++)
		if (p->funcs[i].old_addr == addr && !strncmp(name, p->funcs[i].name, len) &&
		    (!p->funcs[i].name[len] || !strcmp(p->funcs[i].name + len, ".localalias")))
			return &p->funcs[i];
	return NULL;
}

/* Both replacements are one piece of new code. */
static bool same_new_code(const struct opatch *p, const struct opatch_func *x,
			  const struct opatch_func *y)
{
	const struct opatch_sym *a = &p->syms[x->new_sym], *b = &p->syms[y->new_sym];

	return a->section == b->section && a->value == b->value;
}

/* Names of one function in the binary (aliases, or identical code that the
 * compiler or the linker folded) share the one jump written there: each
 * must be replaced, and by the same new code. */
static int check_folded(const struct build *b)
{
	const struct opatch *p = &b->patch;

	for (size_t i = 0; i < p->nfuncs; i++) {
		const struct opatch_func *f = &p->funcs[i];
		size_t first, n = opus_symtab_funcs_starting(&b->bin_syms, f->old_addr, &first);

		for (size_t k = 0; n > 1 && k < n; k++) {
			const struct opus_sym *g =
			    &b->bin_syms.syms[b->bin_syms.funcs_by_addr[first + k]];
			const struct opatch_func *r = replacement(p, g->name, g->value);

			if (!r || !same_new_code(p, f, r))
				return opus_err(
				    -ENOTSUP,
				    "%s and %s are one function in %s (their identical code was "
				    "folded): %s, and one jump there would run the new code of %s "
				    "for both",
				    f->name, g->name, b->opts->binary,
				    r ? "the patch gives them different code"
				      : "the patch replaces only the first",
				    f->name);
		}
	}
	return 0;
}

static int assemble_all(struct build *b, struct build_notes *notes)
{
	bool *far = calloc(b->ws.nunits + 1, sizeof(*far)), any_far = false;
	int ret = far ? 0 : -ENOMEM;

	for (size_t i = 0; !ret && i < b->ws.nunits; i++) {
		struct opatch_mark mark = opatch_mark(&b->patch);
		size_t nnotes = notes->n;

		progress(b, "units compared", i, b->ws.nunits);
		ret = assemble_unit(b, i, "orig", b->new_tag, notes);
		if (!ret && b->opts->replace_all && b->patch.nfuncs == mark.nfuncs)
			build_note_add(notes, BUILD_INFO, opus_base_name(b->ws.units[i]->file),
				       "unit", "no function of it is in %s", b->opts->binary);
		if (ret == ASSEMBLE_EFARDATA) {
			opus_info("%s; compiling %s again with -mno-direct-extern-access",
				  opus_errmsg(), b->ws.units[i]->file);
			opatch_truncate(&b->patch, mark);
			build_notes_truncate(notes, nnotes);
			far[i] = any_far = true;
			ret = 0;
		}
	}
	if (!ret && any_far)
		ret = assemble_far(b, far, notes);
	free(far);
	if (!ret)
		ret = check_folded(b);
	if (!ret && !b->patch.nfuncs && b->opts->replace_all)
		ret = opus_err(-ENODATA, "no function of the units is in %s", b->opts->binary);
	else if (!ret && !b->patch.nfuncs)
		ret = opus_err(-ENODATA, "%s: the diff changes no function of %s", b->opts->diff,
			       b->opts->binary);
	return ret;
}

/* The as-built compiles of the units, opened. */
struct bases {
	struct obj *v;
	size_t n;
};

static int open_bases(const struct build *b, const char *tag, struct bases *bs)
{
	char path[256];
	int ret = 0;

	bs->v = calloc(b->ws.nunits + 1, sizeof(*bs->v));
	if (!bs->v)
		return -ENOMEM;
	for (bs->n = 0; !ret && bs->n < b->ws.nunits; bs->n += !ret) {
		obj_path(b, tag, bs->n, path, sizeof(path));
		ret = obj_open(path, &bs->v[bs->n]);
	}
	return ret;
}

static void close_bases(struct bases *bs)
{
	for (size_t i = 0; i < bs->n; i++)
		obj_close(&bs->v[i]);
	free(bs->v);
}

/* The binary's symbol named name at value, or NULL. */
static const struct opus_sym *bin_sym_at(const struct build *b, const char *name, uint64_t value)
{
	size_t first, n = opus_symtab_named(&b->bin_syms, name, &first);

	for (size_t k = 0; k < n; k++) {
		const struct opus_sym *s = &b->bin_syms.syms[b->bin_syms.by_name[first + k]];

		if (s->value == value && s->shndx != SHN_UNDEF && opus_sym_name_eq(s->name, name))
			return s;
	}
	return NULL;
}

/* The as-built compile among bs that defines the binary's symbol s (of
 * type type), and the index of its symbol there; 0 if none does. */
static size_t base_defining(const struct bases *bs, const struct opus_sym *s, int type,
			    const struct obj **o)
{
	/* A static is filed under its source file; a hidden global is made
	 * local by the link and filed under none. */
	bool is_static = s->bind == STB_LOCAL && s->file && s->file[0];

	for (size_t i = 0; i < bs->n; i++) {
		size_t k = obj_find_sym(&bs->v[i], s->name, type);
		GElf_Sym ks;

		if (!k || !obj_sym(&bs->v[i], k, &ks) ||
		    is_static != (GELF_ST_BIND(ks.st_info) == STB_LOCAL))
			continue;
		if (is_static && strcmp(opus_base_name(s->file), opus_base_name(bs->v[i].file)))
			continue;
		*o = &bs->v[i];
		return k;
	}
	return 0;
}

/* The newest of the earlier patches that replaces the function at addr. */
static const struct opatch_func *replaced_before(const struct build *b, uint64_t addr,
						 const struct opatch **by)
{
	for (size_t i = b->opts->nafter; i-- > 0;)
		for (size_t k = 0; k < b->after[i].nfuncs; k++)
			if (b->after[i].funcs[k].old_addr == addr) {
				*by = &b->after[i];
				return &b->after[i].funcs[k];
			}
	return NULL;
}

/* One function of a touched unit that the patch replaces or calls: what the
 * tree compiles to is what runs there, the binary's code or an earlier
 * patch's. */
static int check_func(const struct build *b, const struct bind_bin *bin, const struct bases *base,
		      const struct bases *orig, const struct opus_sym *s)
{
	const struct opatch *by = NULL;
	const struct opatch_func *f = replaced_before(b, s->value, &by);
	const struct obj *o = NULL;
	size_t k = base_defining(f ? orig : base, s, STT_FUNC, &o);

	if (!k)
		return 0;
	return f ? bind_check_patched(o, k, by, f) : bind_check_func(bin, o, k, s);
}

/* Every function the patch replaces, and every function or variable of a
 * touched unit its code binds to, is in the binary what the unit compiles
 * to with its own flags. */
static int check_binding(struct build *b, const struct bases *base, const struct bases *orig)
{
	struct bind_bin bin = {b->bin.elf, &b->bin_syms};
	const struct opatch *p = &b->patch;
	const struct obj *o;
	int ret = 0;

	for (size_t i = 0; !ret && i < p->nfuncs; i++) {
		const struct opus_sym *s = bin_sym_at(b, p->funcs[i].name, p->funcs[i].old_addr);

		progress(b, "functions checked against the binary", i, p->nfuncs);
		if (!s || !base_defining(base, s, STT_FUNC, &o))
			return opus_err(-EINVAL,
					"%s: the binary has it at 0x%" PRIx64
					" but no compile of the "
					"changed units does",
					p->funcs[i].name, p->funcs[i].old_addr);
		ret = check_func(b, &bin, base, orig, s);
	}
	for (size_t i = 0; !ret && i < p->nsyms; i++) {
		const struct opatch_sym *t = &p->syms[i];
		const struct opus_sym *s;
		size_t k;

		if (t->kind != OPATCH_SYM_TARGET || !(s = bin_sym_at(b, t->name, t->value)))
			continue;
		if (t->type == STT_FUNC)
			ret = check_func(b, &bin, base, orig, s);
		else if (t->type == STT_OBJECT && (k = base_defining(base, s, STT_OBJECT, &o)))
			ret = bind_check_object(o, k, s);
	}
	return ret;
}

/* What apply expects to find in the process at each replaced function. */
static int record_old_code(struct build *b)
{
	for (size_t i = 0; i < b->patch.nfuncs; i++) {
		struct opatch_func *f = &b->patch.funcs[i];
		uint8_t *code = malloc(f->old_size + 1);
		int ret = code ? opus_elf_read_vaddr(b->bin.elf, f->old_addr, code, f->old_size)
			       : -ENOMEM;

		if (!ret)
			opus_sha256(code, f->old_size, f->old_sha256);
		free(code);
		if (ret)
			return opus_err(ret == -ENOMEM ? ret : -EINVAL,
					"%s: no code for %s at 0x%" PRIx64, b->opts->binary,
					f->name, f->old_addr);
	}
	return 0;
}

static char *default_id(const char *output)
{
	char *id = strdup(opus_base_name(output)), *dot;

	if (id && (dot = strrchr(id, '.')) && dot != id)
		*dot = '\0';
	return id;
}

static int fill_meta(struct build *b)
{
	uint8_t digest[OPUS_SHA256_LEN];
	char hex[2 * OPUS_SHA256_LEN + 1];
	struct opatch *p = &b->patch;

	opus_sha256(b->ws.diff_text ? b->ws.diff_text : "", b->ws.diff_len, digest);
	opus_hex_encode(digest, sizeof(digest), hex);
	p->id = b->opts->id ? strdup(b->opts->id) : default_id(b->opts->output);
	p->description = strdup(b->opts->description ? b->opts->description
				: b->opts->diff	     ? opus_base_name(b->opts->diff)
						     : "every function replaced by its own code");
	p->diff_sha256 = strdup(hex);
	if (b->opts->findings) {
		int ret = b->opts->findings(b->opts->findings_ctx, &p->findings);

		if (ret)
			return ret;
	} else {
		p->findings = strdup("");
	}
	p->target_name = strdup(opus_base_name(b->opts->binary));
	if (!p->id || !p->description || !p->diff_sha256 || !p->target_name || !p->findings)
		return -ENOMEM;
	if (!opatch_id_valid(p->id))
		return opus_err(-EINVAL, "patch id '%s' is invalid: use 1-%d of [A-Za-z0-9._-]",
				p->id, OPATCH_ID_MAX);
	return 0;
}

static int run_build(struct build *b, struct build_notes *notes)
{
	struct bases bases = {0}, origs = {0};
	int ret;

	if ((ret = load_binary(b)) || (ret = load_after(b)))
		return ret;
	if (b->opts->replace_all)
		ret = workspace_open_units(&b->ws, b->opts->source, b->opts->cdb, b->opts->units,
					   b->opts->nunits);
	else
		ret = workspace_open(&b->ws, b->opts->source, b->opts->diff, b->opts->cdb);
	if (ret)
		return ret;
	if ((ret = refuse_lto(b)))
		return ret;
	if (b->opts->replace_all && !b->opts->nunits)
		keep_units_of_binary(b, notes);
	for (size_t i = 0; i < b->ws.nskipped; i++)
		build_note_add(notes, BUILD_INFO, b->ws.skipped[i], "diff",
			       "not a C source or header: left out of the patch");
	/* The binary's code as built, and the original for the diff, at once. */
	if ((ret = compile_units(b, (const char *[]){"base", "orig"},
				 (const enum compile_flavour[]){COMPILE_AS_BUILT, COMPILE_SECTIONS},
				 2, NULL,
				 "compiles of the original units (as built, and for the diff)")) ||
	    (ret = workspace_apply_diff(&b->ws)) ||
	    (!b->opts->replace_all &&
	     (ret = compile_as(b, "new", COMPILE_SECTIONS, NULL, "patched units compiled"))))
		return ret;
	if ((ret = assemble_all(b, notes)))
		return ret;
	ret = open_bases(b, "base", &bases);
	if (!ret)
		ret = open_bases(b, "orig", &origs);
	if (!ret)
		ret = check_binding(b, &bases, &origs);
	close_bases(&bases);
	close_bases(&origs);
	if (ret || (ret = record_old_code(b)) || (ret = fill_meta(b)))
		return ret;
	return opatch_write(&b->patch, b->opts->output);
}

int opus_build(const struct build_opts *opts, struct build_notes *notes)
{
	struct build b = {.opts = opts,
			  .bin = {.fd = -1},
			  .scope = {opts->replace_all, opts->exclude, opts->nexclude},
			  .new_tag = opts->replace_all ? "orig" : "new"};
	int ret;

	opatch_init(&b.patch);
	ret = run_build(&b, notes);
	workspace_close(&b.ws, opts->keep_scratch);
	opatch_free(&b.patch);
	for (size_t i = 0; b.after && i < opts->nafter; i++)
		opatch_free(&b.after[i]);
	free(b.after);
	opus_symtab_free(&b.bin_syms);
	opus_symtab_free(&b.bin_exports);
	opus_elf_close(&b.bin);
	return ret;
}
