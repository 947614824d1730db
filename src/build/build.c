#include "build.h"
#include "assemble.h"
#include "compile.h"
#include "explain.h"
#include "obj.h"
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

static int compile_all(struct build *b, const char *tag)
{
	char out[256];
	int ret;

	for (size_t i = 0; i < b->ws.nunits; i++) {
		snprintf(out, sizeof(out), "%s/%s-%zu.o", b->ws.scratch, tag, i);
		ret = compile_tu(b->ws.units[i], b->ws.root, b->ws.tree, out);
		if (ret)
			return ret;
	}
	return 0;
}

static int assemble_all(struct build *b, struct build_notes *notes)
{
	char a[256], n[256];
	int ret = 0;

	for (size_t i = 0; !ret && i < b->ws.nunits; i++) {
		struct obj orig, patched;
		struct src_map src;

		snprintf(a, sizeof(a), "%s/orig-%zu.o", b->ws.scratch, i);
		snprintf(n, sizeof(n), "%s/new-%zu.o", b->ws.scratch, i);
		if ((ret = obj_open(a, &orig)))
			break;
		if ((ret = obj_open(n, &patched))) {
			obj_close(&orig);
			break;
		}
		src_map_load(n, &src); /* explanations only: no DWARF, no reasons */
		ret =
		    assemble_tu(&b->patch,
				&(struct assemble_target){
				    &b->bin_syms, b->bin_exports.count ? &b->bin_exports : NULL},
				&orig, &patched, &(struct assemble_why){&src, &b->ws.files}, notes);
		src_map_free(&src);
		obj_close(&orig);
		obj_close(&patched);
	}
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
	if ((ret = compile_all(b, "orig")) || (ret = workspace_apply_diff(&b->ws)) ||
	    (ret = compile_all(b, "new")))
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
