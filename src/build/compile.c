#include "compile.h"
#include "util/err.h"
#include "util/file.h"
#include "util/run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *compile_rebase(const char *arg, const char *orig_root, const char *scratch_root)
{
	size_t ol = orig_root ? strlen(orig_root) : 0;
	const char *hit = orig_root ? strstr(arg, orig_root) : NULL;
	char *out;

	if (!hit || (hit[ol] != '/' && hit[ol] != '\0'))
		return strdup(arg);
	out = malloc(strlen(arg) - ol + strlen(scratch_root) + 1);
	if (out)
		sprintf(out, "%.*s%s%s", (int)(hit - arg), arg, scratch_root, hit + ol);
	return out;
}

static bool drops_next(const char *a)
{
	return !strcmp(a, "-o") || !strcmp(a, "-MF") || !strcmp(a, "-MT") || !strcmp(a, "-MQ");
}

static bool dropped(const char *a, const struct cdb_entry *e)
{
	static const char *const flags[] = {"-c", "-MD", "-MMD", "-MP", "-M", "-MM"};
	char real[4096];

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (!strcmp(a, flags[i]))
			return true;
	if (!strncmp(a, "-o", 2) || !strncmp(a, "-MF", 3))
		return true;
	/* The source file: we name it ourselves. */
	if (a[0] != '-') {
		char path[8192];

		snprintf(path, sizeof(path), "%s%s%s", a[0] == '/' ? "" : e->directory,
			 a[0] == '/' ? "" : "/", a);
		if (realpath(path, real) && !strcmp(real, e->file))
			return true;
	}
	return false;
}

static int add(char ***argv, size_t *n, size_t *cap, char *s)
{
	if (!s || opus_grow(argv, cap, *n + 1, sizeof(char *))) {
		free(s);
		return -ENOMEM;
	}
	(*argv)[(*n)++] = s;
	(*argv)[*n] = NULL;
	return 0;
}

/* The entry's own flags, paths moved into the scratch tree, without its
 * output, dependency-file and source arguments. */
int compile_base_args(const struct cdb_entry *e, const char *orig_root, const char *scratch_root,
		      char ***argv, size_t *n, size_t *cap)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < e->argc; i++) {
		if (i > 0 && drops_next(e->argv[i])) {
			i++;
			continue;
		}
		if (i > 0 && dropped(e->argv[i], e))
			continue;
		ret = add(argv, n, cap, compile_rebase(e->argv[i], orig_root, scratch_root));
	}
	return ret;
}

void compile_free_args(char **argv, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
}

int compile_deps(const struct cdb_entry *e, const char *out_deps)
{
	char **argv = NULL;
	size_t n = 0, cap = 0;
	int ret = compile_base_args(e, NULL, NULL, &argv, &n, &cap);
	const char *extra[] = {"-M", "-MG", "-MF", out_deps, e->file};

	for (size_t i = 0; !ret && i < sizeof(extra) / sizeof(extra[0]); i++)
		ret = add(&argv, &n, &cap, strdup(extra[i]));
	if (!ret)
		ret = opus_run(argv, e->directory);
	if (ret)
		opus_err_wrap(ret, "listing the headers of %s", e->file);
	compile_free_args(argv, n);
	return ret;
}

/* The flags a flavour adds to the unit's own. */
static int add_flavour(char ***argv, size_t *n, size_t *cap, enum compile_flavour flavour,
		       const char *orig_root, const char *scratch_root)
{
	static const char *const sections[] = {"-ffunction-sections", "-fdata-sections",
					       "-fno-lto"};
	char map[8192];
	int ret = 0;

	snprintf(map, sizeof(map), "-ffile-prefix-map=%s=%s", scratch_root, orig_root);
	if (flavour != COMPILE_AS_BUILT)
		for (size_t i = 0; !ret && i < sizeof(sections) / sizeof(sections[0]); i++)
			ret = add(argv, n, cap, strdup(sections[i]));
	if (!ret && flavour == COMPILE_SECTIONS_GOT)
		ret = add(argv, n, cap, strdup("-mno-direct-extern-access"));
	if (!ret)
		ret = add(argv, n, cap, strdup(map));
	return ret;
}

int compile_tu(const struct cdb_entry *e, const char *orig_root, const char *scratch_root,
	       enum compile_flavour flavour, const char *out_obj)
{
	char **argv = NULL, *cwd = compile_rebase(e->directory, orig_root, scratch_root);
	size_t n = 0, cap = 0;
	int ret = cwd ? compile_base_args(e, orig_root, scratch_root, &argv, &n, &cap) : -ENOMEM;

	if (!ret)
		ret = add_flavour(&argv, &n, &cap, flavour, orig_root, scratch_root);
	if (!ret)
		ret = add(&argv, &n, &cap, strdup("-c"));
	if (!ret)
		ret = add(&argv, &n, &cap, compile_rebase(e->file, orig_root, scratch_root));
	if (!ret)
		ret = add(&argv, &n, &cap, strdup("-o"));
	if (!ret)
		ret = add(&argv, &n, &cap, strdup(out_obj));
	if (!ret) {
		opus_info("compiling %s", e->file);
		ret = opus_run(argv, cwd);
		if (ret)
			opus_err_wrap(ret, "compiling %s", e->file);
	}
	compile_free_args(argv, n);
	free(cwd);
	return ret;
}
