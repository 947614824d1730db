#include "build_ctx.h"
#include "assemble.h"
#include "bind.h"
#include "callers.h"
#include "source/compile.h"
#include "explain.h"
#include "obj.h"
#include "objdiff.h"
#include "rebuild.h"
#include "source/workspace.h"
#include "patchfile/opatch.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/err.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/sha256.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The rebuild's build-id differs from the installed file's, but the
 * loaded images are one: the patch takes the installed file's build-id. */
static int bind_equal_image(struct build *b, const char *path, const uint8_t *id, size_t n,
			    struct build_notes *notes)
{
	char mine[2 * OPUS_BUILD_ID_MAX + 1], theirs[2 * OPUS_BUILD_ID_MAX + 1];

	opus_hex_encode(b->patch.build_id, b->patch.build_id_len, mine);
	opus_hex_encode(id, n, theirs);
	memcpy(b->patch.build_id, id, n);
	b->patch.build_id_len = n;
	return build_note_add(notes, BUILD_INFO, opus_base_name(path), path,
			      "bound to its build-id %s: the rebuild %s (build-id %s) has every "
			      "loaded section byte-equal at the same address",
			      theirs, b->opts->binary, mine);
}

/* Bind the patch to the installed file the rebuild stands in for, or
 * refuse, naming each section that differs. */
static int bind_installed(struct build *b, struct build_notes *notes)
{
	const char *path = b->opts->installed;
	uint8_t id[OPUS_BUILD_ID_MAX];
	struct opus_elf inst;
	char *diffs = NULL;
	int n, ret = opus_elf_open(path, &inst);

	if (ret)
		return ret;
	n = opus_elf_build_id(inst.elf, id);
	if (n <= 0)
		ret = opus_err(-EINVAL, "%s: has no build-id to bind the patch to", path);
	else if ((size_t)n == b->patch.build_id_len && !memcmp(id, b->patch.build_id, (size_t)n))
		ret = build_note_add(notes, BUILD_INFO, opus_base_name(path), path,
				     "the rebuild %s has its build-id", b->opts->binary);
	else if (!(ret = rebuild_compare(b->bin.elf, inst.elf, &diffs)))
		ret = bind_equal_image(b, path, id, (size_t)n, notes);
	else if (ret == -EINVAL)
		ret = opus_err(-EINVAL,
			       "%s is not a rebuild of %s: another build-id, and the loaded "
			       "image differs:\n%s",
			       b->opts->binary, path, diffs);
	free(diffs);
	opus_elf_close(&inst);
	return ret;
}

static int load_binary(struct build *b, struct build_notes *notes)
{
	int n, ret = opus_elf_open(b->opts->binary, &b->bin);

	if (ret)
		return ret;
	n = opus_elf_build_id(b->bin.elf, b->patch.build_id);
	if (n <= 0)
		return opus_err(-EINVAL, "%s: has no build-id; link with --build-id",
				b->opts->binary);
	b->patch.build_id_len = (size_t)n;
	if (b->opts->installed && (ret = bind_installed(b, notes)))
		return ret;
	if (opus_symtab_load(b->bin.elf, false, &b->bin_syms))
		return opus_err(-EINVAL, "%s: has no symbol table; pass the unstripped binary",
				b->opts->binary);
	if (opus_symtab_index_funcs(&b->bin_syms))
		return -ENOMEM;
	if (opus_elf_is_library(b->bin.elf) && opus_symtab_load(b->bin.elf, true, &b->bin_exports))
		return opus_err(-EINVAL, "%s: a shared library without .dynsym", b->opts->binary);
	return 0;
}

struct batch_progress {
	const struct build *b;
	const char *phase;
};

static void tell_progress(void *ctx, size_t done, size_t n)
{
	const struct batch_progress *bp = ctx;

	build_progress(bp->b, bp->phase, done, n);
}

/* Compile the units (those marked in only, or all) in each flavour given. */
static int compile_units(struct build *b, const char *const *tags,
			 const enum compile_flavour *flavours, size_t nflavours, const bool *only,
			 const char *phase)
{
	size_t max = b->ws.nunits * nflavours, n = 0;
	struct compile_req *reqs = calloc(max + 1, sizeof(*reqs));
	char(*outs)[256] = calloc(max + 1, sizeof(*outs));
	int ret = reqs && outs ? 0 : -ENOMEM;

	for (size_t f = 0; !ret && f < nflavours; f++)
		for (size_t i = 0; i < b->ws.nunits; i++)
			if (!only || only[i]) {
				build_obj_path(b, tags[f], i, outs[n], sizeof(outs[n]));
				reqs[n] =
				    (struct compile_req){b->ws.units[i], flavours[f], outs[n]};
				n++;
			}
	if (!ret)
		ret = compile_all(reqs, n, b->ws.root, b->ws.tree, tell_progress,
				  &(struct batch_progress){b, phase});
	free(reqs);
	free(outs);
	return ret;
}

int build_compile_as(struct build *b, const char *tag, enum compile_flavour flavour,
		     const bool *only, const char *phase)
{
	return compile_units(b, &tag, &flavour, 1, only, phase);
}

int build_open_pair(const struct build *b, size_t unit, const char *orig_tag, const char *new_tag,
		    struct obj *orig, struct obj *patched)
{
	char a[256], n[256];
	int ret;

	build_obj_path(b, orig_tag, unit, a, sizeof(a));
	build_obj_path(b, new_tag, unit, n, sizeof(n));
	if ((ret = obj_open(a, orig)))
		return ret;
	if ((ret = obj_open(n, patched)))
		obj_close(orig);
	return ret;
}

/* The copies of old code a per-thread transition sends threads not yet
 * switched to, for the functions from first on whose old code is the
 * binary's (an earlier patch's is not in this tree's compile). */
static int copy_unit_old_code(struct build *b, const struct assemble_target *bin,
			      const struct obj *orig, size_t first, struct build_notes *notes)
{
	size_t *which = malloc((b->patch.nfuncs - first + 1) * sizeof(*which)), n = 0;
	const struct opatch *by;
	int ret;

	if (!which)
		return -ENOMEM;
	for (size_t i = first; i < b->patch.nfuncs; i++)
		if (!b->patch.funcs[i].cold &&
		    !build_replaced_before(b, b->patch.funcs[i].old_addr, &by))
			which[n++] = i;
	ret = assemble_old_copies(&b->patch, bin, orig, which, n, notes);
	free(which);
	return ret;
}

/* One unit's changed functions into the patch, from the compiles tagged
 * orig_tag and new_tag, with copies of their old code. */
static int assemble_unit(struct build *b, size_t unit, const char *orig_tag, const char *new_tag,
			 struct build_notes *notes)
{
	struct assemble_target bin = {b->bin.elf, &b->bin_syms,
				      b->bin_exports.count ? &b->bin_exports : NULL};
	struct obj orig, patched;
	struct src_map src;
	char n[256];
	size_t first = b->patch.nfuncs;
	int ret = build_open_pair(b, unit, orig_tag, new_tag, &orig, &patched);

	if (ret)
		return ret;
	build_obj_path(b, new_tag, unit, n, sizeof(n));
	src_map_load(n, &src); /* explanations only: no DWARF, no reasons */
	ret = assemble_tu(&b->patch, &bin, &b->scope, &orig, &patched,
			  &(struct assemble_why){&src, &b->ws.files}, notes);
	if (!ret)
		ret = copy_unit_old_code(b, &bin, &orig, first, notes);
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
	int ret = build_open_pair(b, unit, "orig", "new", &a1, &b1);

	if (ret)
		return ret;
	ret = build_open_pair(b, unit, "orig-got", "new-got", &a2, &b2);
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
		ret = build_compile_as(b, "orig-got", COMPILE_SECTIONS_GOT, far,
				       "original units compiled with -mno-direct-extern-access");
	if (!ret)
		ret = workspace_apply_diff(&b->ws);
	if (!ret && !self)
		ret = build_compile_as(b, "new-got", COMPILE_SECTIONS_GOT, far,
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

/* Does the patch name a symbol the loaded objects must define? */
static bool calls_out(const struct opatch *p)
{
	for (size_t i = 0; i < p->nsyms; i++)
		if (p->syms[i].kind == OPATCH_SYM_EXTERN)
			return true;
	return false;
}

/* A function the fix adds to one unit and calls from another is in no
 * loaded object: copied in from the unit that defines it, in rounds (a new
 * function may call one of a third unit), until a round adds none. */
static int assemble_cross_unit_calls(struct build *b, const bool *assembled, const bool *far,
				     struct build_notes *notes)
{
	struct assemble_target bin = {b->bin.elf, &b->bin_syms,
				      b->bin_exports.count ? &b->bin_exports : NULL};
	size_t added = 1;
	int ret = 0;

	for (int round = 0; !ret && added && round < 8 && calls_out(&b->patch); round++) {
		added = 0;
		for (size_t i = 0; !ret && i < b->ws.nunits; i++) {
			struct obj orig, patched;
			size_t n = 0;

			if (!assembled[i] || far[i])
				continue;
			if ((ret = build_open_pair(b, i, "orig", b->new_tag, &orig, &patched)))
				break;
			ret = assemble_new_globals(&b->patch, &bin, &orig, &patched, notes, &n);
			added += n;
			obj_close(&orig);
			obj_close(&patched);
		}
	}
	return ret;
}

static int assemble_all(struct build *b, struct build_notes *notes)
{
	bool *far = calloc(b->ws.nunits + 1, sizeof(*far)), any_far = false;
	bool *assembled = calloc(b->ws.nunits + 1, sizeof(*assembled));
	int ret = far && assembled ? 0 : -ENOMEM;

	for (size_t i = 0; !ret && i < b->ws.nunits; i++) {
		struct opatch_mark mark = opatch_mark(&b->patch);
		size_t nnotes = notes->n;

		build_progress(b, "units compared", i, b->ws.nunits);
		if (!b->opts->replace_all && !build_unit_in_binary(b, i, notes))
			continue;
		ret = assemble_unit(b, i, "orig", b->new_tag, notes);
		assembled[i] = true;
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
	if (!ret && !b->opts->replace_all)
		ret = assemble_cross_unit_calls(b, assembled, far, notes);
	free(far);
	if (!ret)
		ret = check_folded(b);
	if (!ret && !b->opts->replace_all && b->scope.nexclude)
		ret = build_check_kept(b, assembled);
	if (!ret && !b->opts->replace_all)
		ret = build_check_frozen(b, assembled);
	if (!ret && !b->opts->replace_all)
		ret = build_warn_kept_results(b, assembled, notes);
	if (!ret)
		ret = build_judge_shared_vars(b, assembled);
	if (!ret)
		ret = build_judge_old_copies(b);
	free(assembled);
	if (!ret && !b->patch.nfuncs && b->opts->replace_all)
		ret = opus_err(-ENODATA, "no function of the units is in %s", b->opts->binary);
	else if (!ret && !b->patch.nfuncs)
		ret = opus_err(-ENODATA,
			       "nothing to apply: %s: the diff changes no function of %s as "
			       "built (the lines it changes are not compiled in this "
			       "configuration, or change no code)",
			       b->opts->diff, b->opts->binary);
	return ret;
}

/* The fix's code calls a function that only a new file of the diff
 * defines: a patch adds no translation unit, and apply would find the
 * function nowhere. Said now, at build, naming both. */
static int refuse_calls_into_new_files(const struct build *b)
{
	for (size_t i = 0; i < b->patch.nsyms; i++) {
		const struct opatch_sym *s = &b->patch.syms[i];
		const char *file;

		if (s->kind == OPATCH_SYM_EXTERN &&
		    (file = workspace_new_file_defining(&b->ws, s->name)))
			return opus_err(-ENOTSUP,
					"%s: the fix's code uses %s, which %s, a file the diff "
					"adds, defines: a live patch cannot add a translation "
					"unit (move the function into a file the build compiles)",
					b->opts->diff, s->name, file);
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

/* The never_left line of function name defined in file (by base names: the
 * analysis parsed a copy of the tree); its line number, or 0 if none. */
static int never_left_line(const char *never_left, const char *name, const char *file)
{
	size_t nl = strlen(name);

	for (const char *at = never_left; at && *at;) {
		const char *tab = strchr(at, '\t'), *eol = strchrnul(at, '\n');
		const char *ftab =
		    tab && tab < eol ? memchr(tab + 1, '\t', (size_t)(eol - tab - 1)) : NULL;

		if (ftab && (size_t)(tab - at) == nl && !memcmp(at, name, nl)) {
			char path[4096];

			snprintf(path, sizeof(path), "%.*s", (int)(ftab - tab - 1), tab + 1);
			if (!strcmp(opus_base_name(path), opus_base_name(file)))
				return atoi(ftab + 1) > 0 ? atoi(ftab + 1) : 1;
		}
		at = *eol ? eol + 1 : eol;
	}
	return 0;
}

/* A function entered once and never left (main, a thread's loop), replaced
 * only for the code it inlines: its old code runs on, the fix never takes
 * effect there, and apply finds it busy to the end of its timeout. The
 * analysis warned only if its own lines changed; say it here, and in the
 * patch's findings. */
static int warn_never_left(struct build *b, struct build_notes *notes, const char *never_left)
{
	struct opatch *p = &b->patch;
	size_t n = notes->n;

	for (size_t i = 0; i < n; i++) {
		const struct build_note *r = &notes->v[i];
		char base[256], msg[1024], *line;
		int at;

		snprintf(base, sizeof(base), "%.*s", (int)strcspn(r->function, "."), r->function);
		if (r->kind != BUILD_REPLACED || !r->inherited ||
		    !(at = never_left_line(never_left, base, r->file)))
			continue;
		snprintf(msg, sizeof(msg),
			 "%s never returns, and is replaced because %s: the running program "
			 "never leaves its old code, so the fix cannot take effect there, and "
			 "apply will find %s busy until its timeout. Keep the fixed function out "
			 "of line (noinline), or leave %s its old code with --exclude %s",
			 base, r->message, base, base, base);
		if (build_note_add(notes, BUILD_WARNING, r->function, r->file, "%s", msg) ||
		    asprintf(&line, "%s%s:%d: warning: never-left-inlines: %s\n",
			     p->findings ? p->findings : "", opus_base_name(r->file), at, msg) < 0)
			return -ENOMEM;
		free(p->findings);
		p->findings = line;
	}
	return 0;
}

/* The analysis's findings, with the errors the binary disproves lifted:
 * the patch is refused if one remains, unless forced. */
static int take_findings(struct build *b, struct build_notes *notes)
{
	struct build_findings f = {0};
	char *why = NULL;
	int ret = b->opts->findings(b->opts->findings_ctx, &f);

	if (!ret)
		ret = build_prove_callers(b, notes, &f, &why);
	if (!ret && f.unsafe && !b->opts->force)
		ret = opus_err(BUILD_REFUSED,
			       "%s: refused: the analysis found errors%s (pass --force to build "
			       "anyway)",
			       b->opts->diff, why ? why : "");
	b->patch.findings = f.text; /* freed with the patch */
	if (!ret && f.text)
		ret = warn_never_left(b, notes, f.never_left);
	free(f.never_left);
	free(f.callers_to_prove);
	free(why);
	return ret;
}

static int fill_meta(struct build *b, struct build_notes *notes)
{
	uint8_t digest[OPUS_SHA256_LEN];
	char hex[2 * OPUS_SHA256_LEN + 1];
	struct opatch *p = &b->patch;
	int ret;

	opus_sha256(b->ws.diff_text ? b->ws.diff_text : "", b->ws.diff_len, digest);
	opus_hex_encode(digest, sizeof(digest), hex);
	p->id = b->opts->id ? strdup(b->opts->id) : default_id(b->opts->output);
	p->description = strdup(b->opts->description ? b->opts->description
				: b->opts->diff	     ? opus_base_name(b->opts->diff)
						     : "every function replaced by its own code");
	p->diff_sha256 = strdup(hex);
	if (diff_files_line_map(&b->ws.files, &p->line_map))
		return -ENOMEM;
	if (b->opts->findings) {
		if ((ret = take_findings(b, notes)))
			return ret;
	} else {
		p->findings = strdup("");
	}
	if (p->findings && (ret = build_judge_findings(b)))
		return ret;
	if (p->stop_world && !*p->stop_world)
		build_note_add(notes, BUILD_INFO, "", "transition",
			       "old and new code agree on the data they share: a per-thread "
			       "transition may apply the patch");
	else if (p->stop_world)
		build_note_add(notes, BUILD_INFO, "", "transition",
			       "every thread is stopped at once to apply the patch: %.*s",
			       (int)strcspn(p->stop_world, "\n"), p->stop_world);
	p->target_name =
	    strdup(opus_base_name(b->opts->installed ? b->opts->installed : b->opts->binary));
	if (!p->id || !p->description || !p->diff_sha256 || !p->target_name || !p->findings)
		return -ENOMEM;
	if (!opatch_id_valid(p->id))
		return opus_err(-EINVAL, "patch id '%s' is invalid: use 1-%d of [A-Za-z0-9._-]",
				p->id, OPATCH_ID_MAX);
	return 0;
}

/* Whether gcc compiled unit i's original (its compile tagged orig). */
static bool built_by_gcc(const struct build *b, size_t i)
{
	char path[256];
	struct obj o;
	bool gcc;

	build_obj_path(b, "orig", i, path, sizeof(path));
	if (obj_open(path, &o))
		return false;
	gcc = obj_built_by_gcc(&o);
	obj_close(&o);
	return gcc;
}

/* The patched units, those gcc builds with its dumps of what it found
 * const or pure (results.c reads them; they change no code). */
static int compile_patched(struct build *b)
{
	bool *gcc = calloc(b->ws.nunits + 1, sizeof(*gcc));
	bool *other = calloc(b->ws.nunits + 1, sizeof(*other));
	int ret = gcc && other ? 0 : -ENOMEM;

	for (size_t i = 0; !ret && i < b->ws.nunits; i++)
		other[i] = !(gcc[i] = built_by_gcc(b, i));
	if (!ret)
		ret = build_compile_as(b, "new", COMPILE_SECTIONS_PURE_CONST_DUMPS, gcc,
				       "patched units compiled");
	if (!ret)
		ret = build_compile_as(b, "new", COMPILE_SECTIONS, other, "patched units compiled");
	free(gcc);
	free(other);
	return ret;
}

static int run_build(struct build *b, struct build_notes *notes)
{
	int ret;

	if ((ret = load_binary(b, notes)) || (ret = load_after(b)))
		return ret;
	if (b->opts->replace_all)
		ret = workspace_open_units(&b->ws, b->opts->source, b->opts->cdb, b->opts->units,
					   b->opts->nunits);
	else
		ret = workspace_open(&b->ws, b->opts->source, b->opts->diff, b->opts->cdb);
	if (ret)
		return ret;
	if ((ret = build_refuse_lto(b)) || (ret = build_choose_variants(b, notes)))
		return ret;
	if (b->opts->replace_all && !b->opts->nunits)
		build_keep_units_of_binary(b, notes);
	for (size_t i = 0; i < b->ws.nskipped; i++)
		build_note_add(notes, BUILD_INFO, b->ws.skipped[i], "diff",
			       "not a C source or header: left out of the patch");
	if (b->ws.nunreached)
		build_note_add(notes, BUILD_INFO, "", "diff",
			       "%zu unit(s) include a changed header but preprocess the same with "
			       "and without the diff (it changes nothing they use): left out",
			       b->ws.nunreached);
	for (size_t i = 0; i < b->ws.nuncompiled; i++)
		build_note_add(notes, BUILD_INFO, b->ws.uncompiled[i], "diff",
			       "no compile command builds it (code this build's configuration "
			       "leaves out): left out of the patch");
	/* The binary's code as built, and the original for the diff, at once. */
	if ((ret = compile_units(b, (const char *[]){"base", "orig"},
				 (const enum compile_flavour[]){COMPILE_AS_BUILT, COMPILE_SECTIONS},
				 2, NULL,
				 "compiles of the original units (as built, and for the diff)")) ||
	    (ret = workspace_apply_diff(&b->ws)) ||
	    (!b->opts->replace_all && (ret = compile_patched(b))))
		return ret;
	if ((ret = assemble_all(b, notes)) || (ret = refuse_calls_into_new_files(b)))
		return ret;
	if ((ret = build_bind_content(b)) || (ret = fill_meta(b, notes)))
		return ret;
	/* Interrupted once the patch is in place, the build is done, not
	 * killed: the signal waits until it exits. */
	opus_cleanup_hold();
	if ((ret = opatch_write(&b->patch, b->opts->output)))
		opus_cleanup_release();
	return ret;
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
