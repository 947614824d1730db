/* A scratch copy of a source tree, the diff that applies to it, the compile
 * database, and the translation units the diff reaches. Shared by build and
 * analyze; the user's tree is only ever read. */
#include "workspace.h"
#include "reach.h"
#include "compile.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/err.h"
#include "util/file.h"
#include "util/run.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int load_cdb(struct workspace *b)
{
	char path[PATH_MAX + 64];

	if (b->cdb_path)
		return cdb_load(b->cdb_path, &b->cdb);
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

static int add_unit(struct workspace *b, const struct cdb_entry *e)
{
	for (size_t i = 0; i < b->nunits; i++)
		if (b->units[i] == e)
			return 0;
	if (OPUS_PUSH(b->units, b->nunits, b->units_cap))
		return -ENOMEM;
	b->units[b->nunits++] = e;
	return 0;
}

/* Every compile command of e's file: the build keeps the one its binary
 * was compiled with (build_choose_variants). */
static int add_variants(struct workspace *b, const struct cdb_entry *e)
{
	int ret = 0;

	for (; !ret && e; e = cdb_find_next(&b->cdb, e))
		ret = add_unit(b, e);
	return ret;
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

/* Every in-tree unit's list of included files, read once, the lists made
 * side by side: a header fix asks each unit of the database, and a diff
 * may change several headers. */
static int load_deps(struct workspace *b)
{
	struct compile_req *reqs = calloc(b->cdb.n + 1, sizeof(*reqs));
	char(*outs)[256] = calloc(b->cdb.n + 1, sizeof(*outs));
	size_t *at = calloc(b->cdb.n + 1, sizeof(*at)), n = 0;
	int ret = reqs && outs && at ? 0 : -ENOMEM;

	b->deps = calloc(b->cdb.n + 1, sizeof(*b->deps));
	if (!b->deps)
		ret = -ENOMEM;
	/* A unit outside the tree is not one the scratch copy compiles
	 * (another flavour's copy of the sources, under debian/). */
	for (size_t i = 0; !ret && i < b->cdb.n; i++)
		if (workspace_in_tree(b, b->cdb.v[i].file)) {
			snprintf(outs[n], sizeof(outs[n]), "%s/deps-%zu.d", b->scratch, i);
			reqs[n] = (struct compile_req){&b->cdb.v[i], COMPILE_DEPS, outs[n]};
			at[n++] = i;
		}
	if (!ret)
		ret = compile_all(reqs, n, b->root, b->tree, NULL, NULL);
	for (size_t k = 0; !ret && k < n; k++) {
		size_t len;

		ret = opus_read_file(outs[k], &b->deps[at[k]], &len);
		unlink(outs[k]);
	}
	free(reqs);
	free(outs);
	free(at);
	return ret;
}

/* A changed header: every unit of the compile database that includes it. */
static int units_including(struct workspace *b, const char *header)
{
	size_t before = b->nunits;
	int ret = b->deps ? 0 : load_deps(b);

	for (size_t i = 0; !ret && i < b->cdb.n; i++)
		if (b->deps[i] && deps_mention(b->deps[i], b->cdb.v[i].directory, header))
			ret = add_unit(b, &b->cdb.v[i]);
	/* None, before the fix: the units the fix makes include it are in the
	 * diff themselves. */
	if (!ret && b->nunits == before)
		opus_info("%s: no translation unit includes %s yet", b->diff_path, header);
	return ret;
}

static int add_uncompiled(struct workspace *b, const char *path)
{
	if (OPUS_PUSH(b->uncompiled, b->nuncompiled, b->uncompiled_cap))
		return -ENOMEM;
	b->uncompiled[b->nuncompiled++] = path;
	return 0;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n > t && !strcmp(s + n - t, tail);
}

/* The units one C file of the diff brings: a source its own, a header its
 * includers; a new header none (its includers are in the diff). */
static int units_for(struct workspace *b, const struct diff_file *df)
{
	char path[PATH_MAX * 2], real[PATH_MAX];
	const struct cdb_entry *e;

	if (df->deleted)
		return opus_err(-ENOTSUP, "%s: the diff deletes %s; not supported", b->diff_path,
				df->path);
	/* A new source (a test program, say) has no compile command: left
	 * out, as code the build does not compile. Should the fix's code call
	 * a function it defines, the patch names it unresolved. */
	if (df->added && ends_with(df->path, ".c"))
		return add_uncompiled(b, df->path);
	if (df->added)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", b->root, df->path);
	if (!realpath(path, real))
		return opus_err(-ENOENT, "%s: %s is not in the source tree %s", b->diff_path,
				df->path, b->root);
	if (ends_with(df->path, ".h"))
		return units_including(b, real);
	if ((e = cdb_find(&b->cdb, real)))
		return add_variants(b, e);
	return add_uncompiled(b, df->path);
}

static int find_units(struct workspace *b)
{
	for (size_t i = 0; i < b->files.n; i++) {
		const struct diff_file *df = &b->files.v[i];
		int ret;

		if (!ends_with(df->path, ".c") && !ends_with(df->path, ".h")) {
			if (OPUS_PUSH(b->skipped, b->nskipped, b->skipped_cap))
				return -ENOMEM;
			b->skipped[b->nskipped++] = df->path;
			continue;
		}
		if ((ret = units_for(b, df)))
			return ret;
	}
	if (b->nskipped == b->files.n)
		return opus_err(-ENOTSUP, "%s: the diff changes no C source or header (%s%s)",
				b->diff_path, b->skipped[0], b->nskipped > 1 ? ", ..." : "");
	/* A fix to code this build does not compile (a feature configured
	 * out) is no error: there is nothing to apply, and it is said so. */
	if (!b->nunits && b->nuncompiled)
		return opus_err(-ENODATA,
				"nothing to apply: %s changes only code this build does not "
				"compile (%s%s has no compile command in %s; were it built, the "
				"compile database would be incomplete)",
				b->diff_path, b->uncompiled[0], b->nuncompiled > 1 ? ", ..." : "",
				b->cdb_path ? b->cdb_path : "the tree's compile_commands.json");
	if (!b->nunits)
		return opus_err(-ENODATA,
				"nothing to apply: %s changes only headers no unit of this build "
				"includes",
				b->diff_path);
	return 0;
}

/* The diff cut down to its C files, in the scratch directory. */
static int write_c_diff(struct workspace *b)
{
	struct opus_buf d = {0};
	int ret;

	if (!b->nskipped)
		return realpath(b->diff_path, b->apply_diff)
			   ? 0
			   : opus_err(-errno, "%s: %s", b->diff_path, strerror(errno));
	for (size_t i = 0; i < b->files.n; i++) {
		const struct diff_file *df = &b->files.v[i];

		if (ends_with(df->path, ".c") || ends_with(df->path, ".h"))
			opus_buf_add(&d, b->diff_text + df->text_start,
				     df->text_end - df->text_start);
	}
	snprintf(b->apply_diff, sizeof(b->apply_diff), "%s/c-only.diff", b->scratch);
	ret = d.data ? opus_write_file(b->apply_diff, d.data, d.len) : -ENOMEM;
	opus_buf_free(&d);
	return ret;
}

static int make_scratch(struct workspace *b)
{
	char src[PATH_MAX + 4];
	char *cp[] = {"cp", "-a", src, b->tree, NULL};

	const char *tmp = getenv("TMPDIR");

	/* As mkdtemp(3) users do: an unusable $TMPDIR means /tmp. */
	if (!tmp || tmp[0] != '/' || strlen(tmp) > sizeof(b->scratch) - 32)
		tmp = "/tmp";
	snprintf(b->scratch, sizeof(b->scratch), "%s/opus-build-XXXXXX", tmp);
	if (!opus_cleanup_mkdtemp(b->scratch)) { /* gone if opus is interrupted */
		int err = errno;

		b->scratch[0] = '\0';
		return opus_err(-err, "cannot create a scratch directory under %s: %s", tmp,
				strerror(err));
	}
	snprintf(b->tree, sizeof(b->tree), "%s/tree", b->scratch);
	snprintf(src, sizeof(src), "%s/.", b->root);
	return opus_run(cp, NULL);
}

static int run_patch(struct workspace *b, bool reverse)
{
	char *argv[] = {"patch",   "-p1",	  "-s",
			"--batch", "-d",	  b->tree,
			"-i",	   b->apply_diff, reverse ? "-R" : "--forward",
			NULL};
	int ret = opus_run(argv, NULL);

	if (ret && reverse)
		return opus_err(ret, "%s: cannot take the diff out of the scratch copy again",
				b->diff_path);
	return ret ? opus_err(ret, "%s: the diff does not apply to %s", b->diff_path, b->root) : 0;
}

int workspace_apply_diff(struct workspace *b)
{
	return b->diff_path ? run_patch(b, false) : 0;
}

int workspace_unapply_diff(struct workspace *b)
{
	return b->diff_path ? run_patch(b, true) : 0;
}

int workspace_open(struct workspace *w, const char *source, const char *diff, const char *cdb)
{
	int ret;

	memset(w, 0, sizeof(*w));
	w->diff_path = diff;
	w->cdb_path = cdb;
	if (!realpath(source, w->root))
		return opus_err(-errno, "%s: %s", source, strerror(errno));
	if ((ret = opus_read_file(diff, &w->diff_text, &w->diff_len)) ||
	    (ret = diff_parse(diff, w->diff_text, &w->files)) || (ret = load_cdb(w)) ||
	    (ret = make_scratch(w)) || (ret = find_units(w)) || (ret = write_c_diff(w)) ||
	    (ret = workspace_drop_unreached(w)))
		return ret;
	return 0;
}

static int named_units(struct workspace *w, const char *const *units, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX * 2], real[PATH_MAX];
		const struct cdb_entry *e;
		int ret;

		snprintf(path, sizeof(path), "%s%s%s", units[i][0] == '/' ? "" : w->root,
			 units[i][0] == '/' ? "" : "/", units[i]);
		if (!realpath(path, real))
			return opus_err(-ENOENT, "%s: not in the source tree %s", units[i],
					w->root);
		if (!(e = cdb_find(&w->cdb, real)))
			return opus_err(-ENOENT, "%s: no compile command for it", real);
		if ((ret = add_variants(w, e)))
			return ret;
	}
	for (size_t i = 0; !n && i < w->cdb.n; i++) {
		int ret = add_unit(w, &w->cdb.v[i]);

		if (ret)
			return ret;
	}
	return 0;
}

int workspace_open_units(struct workspace *w, const char *source, const char *cdb,
			 const char *const *units, size_t n)
{
	int ret;

	memset(w, 0, sizeof(*w));
	w->cdb_path = cdb;
	if (!realpath(source, w->root))
		return opus_err(-errno, "%s: %s", source, strerror(errno));
	if ((ret = load_cdb(w)) || (ret = make_scratch(w)) || (ret = named_units(w, units, n)))
		return ret;
	return 0;
}

/* In a diff's new text, after the parameter list that opens at p: is the
 * next thing a body ("{", past blanks and the lines' "+")? */
static bool body_follows(const char *p, const char *end)
{
	int depth = 0;

	for (; p < end; p++) {
		depth += (*p == '(') - (*p == ')');
		if (!depth)
			break;
	}
	for (p++; p < end && strchr(" \t\n+", *p); p++)
		;
	return p < end && *p == '{';
}

/* Does text [start, end) define a function called name? */
static bool defines_function(const char *start, const char *end, const char *name)
{
	size_t n = strlen(name);

	for (const char *at = start; (at = memmem(at, (size_t)(end - at), name, n)); at += n) {
		const char *after = at + n;

		while (after < end && (*after == ' ' || *after == '\t'))
			after++;
		if (after < end && *after == '(' &&
		    (at == start || (!isalnum((unsigned char)at[-1]) && at[-1] != '_')) &&
		    body_follows(after, end))
			return true;
	}
	return false;
}

const char *workspace_new_file_defining(const struct workspace *w, const char *name)
{
	/* An added C source never has a compile command (units_for). */
	for (size_t i = 0; i < w->files.n; i++) {
		const struct diff_file *df = &w->files.v[i];

		if (df->added && ends_with(df->path, ".c") &&
		    defines_function(w->diff_text + df->text_start, w->diff_text + df->text_end,
				     name))
			return df->path;
	}
	return NULL;
}

const char *workspace_in_tree(const struct workspace *w, const char *file)
{
	size_t n = strlen(w->root);

	return !strncmp(file, w->root, n) && file[n] == '/' ? file + n + 1 : NULL;
}

bool workspace_is_variant(const struct workspace *w, size_t i)
{
	for (size_t j = 0; j < i && i < w->nunits; j++)
		if (!strcmp(w->units[i]->file, w->units[j]->file))
			return true;
	return false;
}

void workspace_close(struct workspace *w, bool keep)
{
	if (w->scratch[0] && !keep) {
		char *rm[] = {"rm", "-rf", w->scratch, NULL};

		opus_run(rm, NULL);
		opus_cleanup_dir(NULL);
	} else if (w->scratch[0])
		fprintf(stderr, "opus: scratch tree kept in %s\n", w->scratch);
	for (size_t i = 0; w->deps && i < w->cdb.n; i++)
		free(w->deps[i]);
	free(w->deps);
	cdb_free(&w->cdb);
	free(w->units);
	free(w->skipped);
	free(w->uncompiled);
	diff_files_free(&w->files);
	free(w->diff_text);
	memset(w, 0, sizeof(*w));
}
