#include "build.h"
#include "assemble.h"
#include "cdb.h"
#include "compile.h"
#include "diff.h"
#include "explain.h"
#include "obj.h"
#include "patchfile/opatch.h"
#include "util/err.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/run.h"
#include "util/sha256.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct build {
	const struct build_opts *opts;
	char root[PATH_MAX];
	char scratch[64];
	char tree[128];
	char *diff_text;
	size_t diff_len;
	struct diff_files files;
	struct cdb cdb;
	const struct cdb_entry **units; /* the translation units to recompile */
	size_t nunits, units_cap;
	struct opus_elf bin;
	struct opus_symtab bin_syms, bin_exports;
	struct opatch patch;
};

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static int load_cdb(struct build *b)
{
	char path[PATH_MAX + 64];

	if (b->opts->cdb)
		return cdb_load(b->opts->cdb, &b->cdb);
	snprintf(path, sizeof(path), "%s/compile_commands.json", b->root);
	if (access(path, R_OK))
		snprintf(path, sizeof(path), "%s/build/compile_commands.json", b->root);
	if (access(path, R_OK))
		return opus_err(-ENOENT,
				"%s: no compile_commands.json in the tree or its build/; "
				"pass --cdb",
				b->root);
	return cdb_load(path, &b->cdb);
}

static int add_unit(struct build *b, const struct cdb_entry *e)
{
	for (size_t i = 0; i < b->nunits; i++)
		if (b->units[i] == e)
			return 0;
	if (OPUS_PUSH(b->units, b->nunits, b->units_cap))
		return -ENOMEM;
	b->units[b->nunits++] = e;
	return 0;
}

/* Does the dependency list (make syntax) name the file at canonical path? */
static bool deps_mention(const char *deps, const char *dir, const char *header)
{
	const char *p = strchr(deps, ':');

	while (p && *p) {
		char word[PATH_MAX], full[PATH_MAX * 2], real[PATH_MAX];
		size_t len;

		p += strspn(p, ": \\\n\t");
		len = strcspn(p, " \\\n\t");
		if (!len || len >= sizeof(word))
			break;
		snprintf(word, sizeof(word), "%.*s", (int)len, p);
		snprintf(full, sizeof(full), "%s%s%s", word[0] == '/' ? "" : dir,
			 word[0] == '/' ? "" : "/", word);
		if (realpath(full, real) && !strcmp(real, header))
			return true;
		p += len;
	}
	return false;
}

/* A changed header: every unit of the compile database that includes it. */
static int units_including(struct build *b, const char *header)
{
	char deps[256];
	size_t before = b->nunits;

	snprintf(deps, sizeof(deps), "%s/deps.d", b->scratch);
	for (size_t i = 0; i < b->cdb.n; i++) {
		char *text;
		size_t len;
		bool hit;
		int ret = compile_deps(&b->cdb.v[i], deps);

		if (ret)
			return ret;
		if ((ret = opus_read_file(deps, &text, &len)))
			return ret;
		hit = deps_mention(text, b->cdb.v[i].directory, header);
		free(text);
		if (hit && (ret = add_unit(b, &b->cdb.v[i])))
			return ret;
	}
	if (b->nunits == before)
		return opus_err(-ENOENT, "%s: no translation unit includes %s", b->opts->diff,
				header);
	return 0;
}

static int find_units(struct build *b)
{
	for (size_t i = 0; i < b->files.n; i++) {
		char path[PATH_MAX * 2], real[PATH_MAX];
		const char *f = b->files.v[i].path;
		const struct cdb_entry *e;
		size_t n = strlen(f);
		int ret;

		snprintf(path, sizeof(path), "%s/%s", b->root, f);
		if (!realpath(path, real))
			return opus_err(-ENOENT, "%s: %s is not in the source tree %s",
					b->opts->diff, f, b->root);
		if (n > 2 && !strcmp(f + n - 2, ".h")) {
			ret = units_including(b, real);
		} else if (n > 2 && !strcmp(f + n - 2, ".c")) {
			e = cdb_find(&b->cdb, real);
			if (!e)
				return opus_err(-ENOENT, "%s: no compile command for %s",
						b->opts->diff, real);
			ret = add_unit(b, e);
		} else {
			return opus_err(-ENOTSUP,
					"%s: the diff changes %s; only .c and .h files "
					"are supported",
					b->opts->diff, f);
		}
		if (ret)
			return ret;
	}
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

static int make_scratch(struct build *b)
{
	char src[PATH_MAX + 4];
	char *cp[] = {"cp", "-a", src, b->tree, NULL};

	strcpy(b->scratch, "/tmp/opus-build-XXXXXX");
	if (!mkdtemp(b->scratch)) {
		b->scratch[0] = '\0';
		return opus_err(-errno, "cannot create a scratch directory: %s", strerror(errno));
	}
	snprintf(b->tree, sizeof(b->tree), "%s/tree", b->scratch);
	snprintf(src, sizeof(src), "%s/.", b->root);
	return opus_run(cp, NULL);
}

static int apply_diff(struct build *b)
{
	char diff[PATH_MAX];
	char *argv[] = {"patch", "-p1",	  "-s", "--batch", "--forward",
			"-d",	 b->tree, "-i", diff,	   NULL};
	int ret;

	if (!realpath(b->opts->diff, diff))
		return opus_err(-errno, "%s: %s", b->opts->diff, strerror(errno));
	ret = opus_run(argv, NULL);
	return ret ? opus_err(ret, "%s: the diff does not apply to %s", b->opts->diff, b->root) : 0;
}

static int compile_all(struct build *b, const char *tag)
{
	char out[256];
	int ret;

	for (size_t i = 0; i < b->nunits; i++) {
		snprintf(out, sizeof(out), "%s/%s-%zu.o", b->scratch, tag, i);
		ret = compile_tu(b->units[i], b->root, b->tree, out);
		if (ret)
			return ret;
	}
	return 0;
}

static int assemble_all(struct build *b, struct build_notes *notes)
{
	char a[256], n[256];
	int ret = 0;

	for (size_t i = 0; !ret && i < b->nunits; i++) {
		struct obj orig, patched;
		struct src_map src;

		snprintf(a, sizeof(a), "%s/orig-%zu.o", b->scratch, i);
		snprintf(n, sizeof(n), "%s/new-%zu.o", b->scratch, i);
		if ((ret = obj_open(a, &orig)))
			break;
		if ((ret = obj_open(n, &patched))) {
			obj_close(&orig);
			break;
		}
		src_map_load(n, &src); /* explanations only: no DWARF, no reasons */
		ret = assemble_tu(&b->patch,
				  &(struct assemble_target){
				      &b->bin_syms, b->bin_exports.count ? &b->bin_exports : NULL},
				  &orig, &patched, &(struct assemble_why){&src, &b->files}, notes);
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
	char *id = strdup(base_name(output)), *dot;

	if (id && (dot = strrchr(id, '.')) && dot != id)
		*dot = '\0';
	return id;
}

static int fill_meta(struct build *b)
{
	uint8_t digest[OPUS_SHA256_LEN];
	char hex[2 * OPUS_SHA256_LEN + 1];
	struct opatch *p = &b->patch;

	opus_sha256(b->diff_text, b->diff_len, digest);
	opus_hex_encode(digest, sizeof(digest), hex);
	p->id = b->opts->id ? strdup(b->opts->id) : default_id(b->opts->output);
	p->description =
	    strdup(b->opts->description ? b->opts->description : base_name(b->opts->diff));
	p->diff_sha256 = strdup(hex);
	p->target_name = strdup(base_name(b->opts->binary));
	if (!p->id || !p->description || !p->diff_sha256 || !p->target_name)
		return -ENOMEM;
	if (!opatch_id_valid(p->id))
		return opus_err(-EINVAL, "patch id '%s' is invalid: use 1-%d of [A-Za-z0-9._-]",
				p->id, OPATCH_ID_MAX);
	return 0;
}

static int run_build(struct build *b, struct build_notes *notes)
{
	int ret;

	if (!realpath(b->opts->source, b->root))
		return opus_err(-errno, "%s: %s", b->opts->source, strerror(errno));
	if ((ret = opus_read_file(b->opts->diff, &b->diff_text, &b->diff_len)))
		return ret;
	if ((ret = diff_parse(b->opts->diff, b->diff_text, &b->files)))
		return ret;
	if ((ret = load_cdb(b)) || (ret = load_binary(b)) || (ret = make_scratch(b)) ||
	    (ret = find_units(b)))
		return ret;
	if ((ret = compile_all(b, "orig")) || (ret = apply_diff(b)) ||
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
	if (b.scratch[0] && !opts->keep_scratch) {
		char *rm[] = {"rm", "-rf", b.scratch, NULL};

		opus_run(rm, NULL);
	} else if (b.scratch[0])
		fprintf(stderr, "opus: scratch tree kept in %s\n", b.scratch);
	opatch_free(&b.patch);
	opus_symtab_free(&b.bin_syms);
	opus_symtab_free(&b.bin_exports);
	opus_elf_close(&b.bin);
	cdb_free(&b.cdb);
	free(b.units);
	diff_files_free(&b.files);
	free(b.diff_text);
	return ret;
}
