#include "build.h"
#include "assemble.h"
#include "compile.h"
#include "explain.h"
#include "obj.h"
#include "objdiff.h"
#include "workspace.h"
#include "patchfile/opatch.h"
#include "util/err.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/sha256.h"

#include <errno.h>
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
};

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

static void obj_path(const struct build *b, const char *tag, size_t unit, char *out, size_t len)
{
	snprintf(out, len, "%s/%s-%zu.o", b->ws.scratch, tag, unit);
}

/* Compile the units (those marked in only, or all) as tag-N.o. */
static int compile_units(struct build *b, const char *tag, enum compile_flavour flavour,
			 const bool *only)
{
	char out[256];
	int ret;

	for (size_t i = 0; i < b->ws.nunits; i++) {
		if (only && !only[i])
			continue;
		obj_path(b, tag, i, out, sizeof(out));
		ret = compile_tu(b->ws.units[i], b->ws.root, b->ws.tree, flavour, out);
		if (ret)
			return ret;
	}
	return 0;
}

static int open_pair(const struct build *b, size_t unit, const char *orig_tag,
		     const char *new_tag, struct obj *orig, struct obj *patched)
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
	struct assemble_target bin = {&b->bin_syms,
				      b->bin_exports.count ? &b->bin_exports : NULL};
	struct obj orig, patched;
	struct src_map src;
	char n[256];
	int ret = open_pair(b, unit, orig_tag, new_tag, &orig, &patched);

	if (ret)
		return ret;
	obj_path(b, new_tag, unit, n, sizeof(n));
	src_map_load(n, &src); /* explanations only: no DWARF, no reasons */
	ret = assemble_tu(&b->patch, &bin, &orig, &patched,
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
	int ret = workspace_unapply_diff(&b->ws);

	if (!ret)
		ret = compile_units(b, "orig-got", COMPILE_SECTIONS_GOT, far);
	if (!ret)
		ret = workspace_apply_diff(&b->ws);
	if (!ret)
		ret = compile_units(b, "new-got", COMPILE_SECTIONS_GOT, far);
	for (size_t i = 0; !ret && i < b->ws.nunits; i++) {
		if (!far[i])
			continue;
		ret = check_same_changes(b, i);
		if (!ret)
			ret = assemble_unit(b, i, "orig-got", "new-got", notes);
		if (ret == ASSEMBLE_EFARDATA)
			ret = opus_err_wrap(-ENOTSUP, "compiled with -mno-direct-extern-access");
	}
	return ret;
}

static int assemble_all(struct build *b, struct build_notes *notes)
{
	bool *far = calloc(b->ws.nunits + 1, sizeof(*far)), any_far = false;
	int ret = far ? 0 : -ENOMEM;

	for (size_t i = 0; !ret && i < b->ws.nunits; i++) {
		struct opatch_mark mark = opatch_mark(&b->patch);
		size_t nnotes = notes->n;

		ret = assemble_unit(b, i, "orig", "new", notes);
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
	if (!ret && !b->patch.nfuncs)
		ret = opus_err(-ENODATA, "%s: the diff changes no function of %s", b->opts->diff,
			       b->opts->binary);
	return ret;
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

	opus_sha256(b->ws.diff_text, b->ws.diff_len, digest);
	opus_hex_encode(digest, sizeof(digest), hex);
	p->id = b->opts->id ? strdup(b->opts->id) : default_id(b->opts->output);
	p->description =
	    strdup(b->opts->description ? b->opts->description : opus_base_name(b->opts->diff));
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
	int ret;

	if ((ret = load_binary(b)) ||
	    (ret = workspace_open(&b->ws, b->opts->source, b->opts->diff, b->opts->cdb)))
		return ret;
	if ((ret = compile_units(b, "orig", COMPILE_SECTIONS, NULL)) ||
	    (ret = workspace_apply_diff(&b->ws)) ||
	    (ret = compile_units(b, "new", COMPILE_SECTIONS, NULL)))
		return ret;
	if ((ret = assemble_all(b, notes)) || (ret = fill_meta(b)))
		return ret;
	return opatch_write(&b->patch, b->opts->output);
}

int opus_build(const struct build_opts *opts, struct build_notes *notes)
{
	struct build b = {.opts = opts, .bin = {.fd = -1}};
	int ret;

	opatch_init(&b.patch);
	ret = run_build(&b, notes);
	workspace_close(&b.ws, opts->keep_scratch);
	opatch_free(&b.patch);
	opus_symtab_free(&b.bin_syms);
	opus_symtab_free(&b.bin_exports);
	opus_elf_close(&b.bin);
	return ret;
}
