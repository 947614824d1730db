#include "compile.h"
#include "util/err.h"
#include "util/file.h"
#include "util/run.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static char *dir_of(const char *file)
{
	const char *slash = strrchr(file, '/');

	return slash ? strndup(file, (size_t)(slash - file)) : strdup(".");
}

static bool drops_next(const char *a)
{
	return !strcmp(a, "-o") || !strcmp(a, "-MF") || !strcmp(a, "-MT") || !strcmp(a, "-MQ");
}

/* Is a the unit's source file, however the command spelled it? */
static bool is_source(const char *a, const struct cdb_entry *e)
{
	char path[8192], real[4096];

	if (a[0] == '-')
		return false;
	snprintf(path, sizeof(path), "%s%s%s", a[0] == '/' ? "" : e->directory,
		 a[0] == '/' ? "" : "/", a);
	return realpath(path, real) && !strcmp(real, e->file);
}

static bool dropped(const char *a, const struct cdb_entry *e)
{
	static const char *const flags[] = {"-c", "-MD", "-MMD", "-MP", "-M", "-MM"};

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (!strcmp(a, flags[i]))
			return true;
	if (!strncmp(a, "-o", 2) || !strncmp(a, "-MF", 3))
		return true;
	/* The source file: we name it ourselves. */
	return is_source(a, e);
}

/* The source file as the command names it: __FILE__ is that spelling
 * (relative in most make builds), and the code's literals carry it. */
static const char *source_arg(const struct cdb_entry *e)
{
	for (size_t i = 1; i < e->argc; i++)
		if (is_source(e->argv[i], e))
			return e->argv[i];
	return e->file;
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

/* Options naming a directory or file to include, relative to the unit's
 * directory: "-I dir" or "-Idir". */
static const char *const path_opts[] = {"-I",	    "-iquote",	"-isystem", "-idirafter",
					"-include", "-imacros", "-iprefix"};

/* The length of the path option arg starts with (0: none). */
static size_t path_opt(const char *arg)
{
	for (size_t i = 0; i < sizeof(path_opts) / sizeof(path_opts[0]); i++)
		if (!strncmp(arg, path_opts[i], strlen(path_opts[i])))
			return strlen(path_opts[i]);
	return 0;
}

/* arg's path made absolute against dir (the compile moves to the scratch
 * copy, and a relative path may lead out of the tree), then rebased. */
static char *absolute_rebased(const char *opt, size_t optlen, const char *path, const char *dir,
			      const char *orig_root, const char *scratch_root)
{
	char *full, *out;

	if (path[0] == '/' || !path[0])
		full = strdup(path);
	else if (asprintf(&full, "%s/%s", dir, path) < 0)
		full = NULL;
	if (!full)
		return NULL;
	/* dir/../../src/lib names the tree only once normalized (a build
	 * directory beside the source root). */
	opus_normalize_path(full);
	out = compile_rebase(full, orig_root, scratch_root);
	free(full);
	if (out && optlen) {
		char *joined;

		if (asprintf(&joined, "%.*s%s", (int)optlen, opt, out) < 0)
			joined = NULL;
		free(out);
		out = joined;
	}
	return out;
}

/* The entry's own flags, paths moved into the scratch tree, without its
 * output, dependency-file and source arguments. */
int compile_base_args(const struct cdb_entry *e, const char *orig_root, const char *scratch_root,
		      char ***argv, size_t *n, size_t *cap)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < e->argc; i++) {
		const char *a = e->argv[i];
		size_t ol = i > 0 ? path_opt(a) : 0;

		if (i > 0 && drops_next(a)) {
			i++;
			continue;
		}
		if (i > 0 && dropped(a, e))
			continue;
		if (ol && !a[ol] && i + 1 < e->argc) {
			ret = add(argv, n, cap, strdup(a));
			if (!ret)
				ret = add(argv, n, cap,
					  absolute_rebased("", 0, e->argv[++i], e->directory,
							   orig_root, scratch_root));
		} else if (ol && a[ol]) {
			ret = add(
			    argv, n, cap,
			    absolute_rebased(a, ol, a + ol, e->directory, orig_root, scratch_root));
		} else {
			ret = add(argv, n, cap, compile_rebase(a, orig_root, scratch_root));
		}
	}
	/* In the scratch copy, "#include "../common/x.h"" may climb out of
	 * the tree from the unit's directory: let it land where the original
	 * compile found it. */
	if (!ret && scratch_root)
		ret = add(argv, n, cap, strdup("-iquote"));
	if (!ret && scratch_root)
		ret = add(argv, n, cap, dir_of(e->file));
	return ret;
}

void compile_free_args(char **argv, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
}

/* The list runs in the user's tree, where the unit was compiled. */
static int deps_start(const struct cdb_entry *e, const char *out_deps, struct compile_job *job)
{
	char **argv = NULL, *cwd = strdup(e->directory);
	size_t n = 0, cap = 0;
	int ret = cwd ? compile_base_args(e, NULL, NULL, &argv, &n, &cap) : -ENOMEM;
	const char *extra[] = {"-M", "-MG", "-MF", out_deps, e->file};

	for (size_t i = 0; !ret && i < sizeof(extra) / sizeof(extra[0]); i++)
		ret = add(&argv, &n, &cap, strdup(extra[i]));
	if (!ret)
		ret = opus_run_start(argv, cwd);
	compile_free_args(argv, n);
	if (ret < 0) {
		free(cwd);
		return opus_err_wrap(ret, "listing the headers of %s", e->file);
	}
	*job = (struct compile_job){e, ret, cwd, "listing the headers of"};
	return 0;
}

/* path as the unit's own prefix maps spell it in __FILE__: GCC takes the
 * last -ffile-prefix-map or -fmacro-prefix-map whose OLD begins path. */
static void macro_mapped(const struct cdb_entry *e, const char *path, char *out, size_t len)
{
	snprintf(out, len, "%s", path);
	for (size_t i = e->argc; i-- > 1;) {
		const char *a = e->argv[i], *eq, *old;
		size_t ol;

		if (!strncmp(a, "-ffile-prefix-map=", 18))
			old = a + 18;
		else if (!strncmp(a, "-fmacro-prefix-map=", 19))
			old = a + 19;
		else
			continue;
		if (!(eq = strchr(old, '=')))
			continue;
		ol = (size_t)(eq - old);
		if (!strncmp(path, old, ol) && (path[ol] == '/' || !path[ol])) {
			snprintf(out, len, "%s%s", eq + 1, path + ol);
			return;
		}
	}
}

/* The flags a flavour adds to the unit's own. */
static int add_flavour(const struct cdb_entry *e, char ***argv, size_t *n, size_t *cap,
		       enum compile_flavour flavour, const char *orig_root,
		       const char *scratch_root)
{
	static const char *const sections[] = {"-ffunction-sections", "-fdata-sections",
					       "-fno-lto"};
	/* What gcc learns of a callee's body and lets its callers count on
	 * (the registers it leaves alone, that it is pure or const or never
	 * returns, the statics and memory it does not touch, its stack's
	 * alignment), and of its callers' arguments, for which it compiles
	 * the callee, or a clone of it, specialised. */
	static const char *const blind[] = {"-fno-ipa-ra",	  "-fno-ipa-pure-const",
					    "-fno-ipa-reference", "-fno-ipa-reference-addressable",
					    "-fno-ipa-modref",	  "-fno-ipa-stack-alignment",
					    "-fno-ipa-cp",	  "-fno-ipa-vrp",
					    "-fno-ipa-bit-cp",	  "-fno-ipa-sra"};
	const size_t nblind = sizeof(blind) / sizeof(blind[0]);
	char map[8192], root[4096];
	int ret = 0;

	/* Ours comes last, so it wins for the scratch copy: it must lead
	 * where the unit's own maps would have taken the tree. */
	macro_mapped(e, orig_root, root, sizeof(root));
	snprintf(map, sizeof(map), "-ffile-prefix-map=%s=%s", scratch_root, root);
	if (flavour == COMPILE_SECTIONS || flavour == COMPILE_SECTIONS_GOT ||
	    flavour == COMPILE_SECTIONS_NO_CALLEE_IPA ||
	    flavour == COMPILE_SECTIONS_KEEP_VARIABLES ||
	    flavour == COMPILE_SECTIONS_PURE_CONST_DUMPS)
		for (size_t i = 0; !ret && i < sizeof(sections) / sizeof(sections[0]); i++)
			ret = add(argv, n, cap, strdup(sections[i]));
	if (!ret && flavour == COMPILE_SECTIONS_GOT)
		ret = add(argv, n, cap, strdup("-mno-direct-extern-access"));
	for (size_t i = 0; !ret && flavour == COMPILE_SECTIONS_NO_CALLEE_IPA && i < nblind; i++)
		ret = add(argv, n, cap, strdup(blind[i]));
	if (!ret && flavour == COMPILE_SECTIONS_KEEP_VARIABLES)
		ret = add(argv, n, cap, strdup("-fno-ipa-reference-addressable"));
	if (!ret)
		ret = add(argv, n, cap, strdup(map));
	return ret;
}

const char *const compile_pure_const_dumps[COMPILE_PURE_CONST_DUMPS] = {"pure-const",
									"pure-const1"};

/* gcc's reports of what it found const or pure, beside out_obj. */
static int add_pure_const_dumps(char ***argv, size_t *n, size_t *cap, const char *out_obj)
{
	static const char *const passes[COMPILE_PURE_CONST_DUMPS] = {"ipa-pure-const",
								     "tree-local-pure-const1"};
	char *opt;
	int ret = 0;

	for (size_t i = 0; !ret && i < COMPILE_PURE_CONST_DUMPS; i++)
		ret = asprintf(&opt, "-fdump-%s=%s.%s", passes[i], out_obj,
			       compile_pure_const_dumps[i]) < 0
			  ? -ENOMEM
			  : add(argv, n, cap, opt);
	return ret;
}

/* dir's link name to target, made once (compiles run side by side). */
static int link_to(const char *name, const char *target)
{
	char now[PATH_MAX];
	ssize_t n;

	if (!symlink(target, name))
		return 0;
	if (errno != EEXIST)
		return -errno;
	n = readlink(name, now, sizeof(now) - 1);
	if (n < 0)
		return -errno;
	now[n] = '\0';
	return strcmp(now, target) ? -EEXIST : 0;
}

#define STAND_IN ".opus-cwd"

/* A build directory outside the tree (expat's build/lib beside src/,
 * which compiles ../../src/lib/xmlparse.c) does not move into the scratch
 * copy, and the source's spelling from it leads to the original. The
 * compile runs in a stand-in instead: k levels below a directory whose
 * link Q leads to the scratch copy, so that "../../Q/lib/xmlparse.c"
 * reaches the copy spelled as the build spelled it (__FILE__, in the
 * binary's strings, is that spelling). The command's other relative paths
 * are absolute against the build directory already. NULL: no such shape
 * (an absolute source, one outside the tree), or it could not be made. */
static char *stand_in_cwd(const struct cdb_entry *e, const char *orig_root,
			  const char *scratch_root)
{
	const char *tail = source_arg(e), *inside;
	size_t k = 0, rootlen = strlen(orig_root), qlen;
	char link[PATH_MAX], *cwd;
	int n;

	if (tail[0] == '/' || strncmp(e->file, orig_root, rootlen) || e->file[rootlen] != '/')
		return NULL;
	inside = e->file + rootlen + 1;
	for (; !strncmp(tail, "../", 3); tail += 3)
		k++;
	if (!k || strlen(tail) <= strlen(inside) + 1)
		return NULL;
	qlen = strlen(tail) - strlen(inside) - 1; /* tail is Q/inside */
	if (tail[qlen] != '/' || strcmp(tail + qlen + 1, inside) || strstr(tail, "./"))
		return NULL;
	n = snprintf(link, sizeof(link), "%s.cwd/%.*s", scratch_root, (int)qlen, tail);
	if (n < 0 || (size_t)n >= sizeof(link))
		return NULL;
	*strrchr(link, '/') = '\0';
	if (opus_private_dir(link, "compile's stand-in directory", true))
		return NULL;
	link[strlen(link)] = '/';
	if (link_to(link, scratch_root))
		return NULL;
	if (!(cwd = malloc(strlen(scratch_root) + 5 + k * sizeof("/" STAND_IN))))
		return NULL;
	n = sprintf(cwd, "%s.cwd", scratch_root);
	for (size_t i = 0; i < k; i++)
		n += sprintf(cwd + n, "/%s", STAND_IN);
	if (opus_private_dir(cwd, "compile's stand-in directory", true)) {
		free(cwd);
		return NULL;
	}
	return cwd;
}

/* Where the compile runs and how it names its source. A build directory
 * inside the tree moves to the scratch copy with it, and a relative source
 * stays as the build wrote it. One outside runs in a stand-in (above), or
 * failing that names the copy by its absolute path (then __FILE__ differs
 * from the binary's, and binding refuses what uses it). */
static int place_compile(const struct cdb_entry *e, const char *orig_root, const char *scratch_root,
			 char **cwd, char **src)
{
	char *stand_in;

	*cwd = compile_rebase(e->directory, orig_root, scratch_root);
	*src = NULL;
	if (!*cwd)
		return -ENOMEM;
	if (!scratch_root || strcmp(*cwd, e->directory))
		*src = compile_rebase(source_arg(e), orig_root, scratch_root);
	else if ((stand_in = stand_in_cwd(e, orig_root, scratch_root))) {
		free(*cwd);
		*cwd = stand_in;
		*src = strdup(source_arg(e));
	} else if (!(*src = compile_rebase(e->file, orig_root, scratch_root))) {
		return -ENOMEM;
	} else if (strncmp(*src, scratch_root, strlen(scratch_root))) {
		/* a unit outside the tree: compiled where it is */
		free(*src);
		*src = strdup(source_arg(e));
	}
	return *src ? 0 : -ENOMEM;
}

int compile_start(const struct cdb_entry *e, const char *orig_root, const char *scratch_root,
		  enum compile_flavour flavour, const char *out_obj, struct compile_job *job)
{
	char **argv = NULL, *cwd = NULL, *src = NULL;
	size_t n = 0, cap = 0;
	int ret;

	if (flavour == COMPILE_DEPS)
		return deps_start(e, out_obj, job);
	ret = place_compile(e, orig_root, scratch_root, &cwd, &src);

	if (!ret)
		ret = compile_base_args(e, orig_root, scratch_root, &argv, &n, &cap);
	if (!ret)
		ret = add_flavour(e, &argv, &n, &cap, flavour, orig_root, scratch_root);
	if (!ret && flavour == COMPILE_SECTIONS_PURE_CONST_DUMPS)
		ret = add_pure_const_dumps(&argv, &n, &cap, out_obj);
	if (!ret && flavour == COMPILE_PREPROCESSED)
		ret = add(&argv, &n, &cap, strdup("-E")) ?: add(&argv, &n, &cap, strdup("-P"));
	else if (!ret)
		ret = add(&argv, &n, &cap, strdup("-c"));
	if (!ret)
		ret = add(&argv, &n, &cap, src);
	else
		free(src);
	if (!ret)
		ret = add(&argv, &n, &cap, strdup("-o"));
	if (!ret)
		ret = add(&argv, &n, &cap, strdup(out_obj));
	if (!ret) {
		opus_info("compiling %s", e->file);
		ret = opus_run_start(argv, cwd);
	}
	compile_free_args(argv, n);
	if (ret < 0) {
		free(cwd);
		return opus_err_wrap(ret, "compiling %s", e->file);
	}
	*job = (struct compile_job){e, ret, cwd, "compiling"};
	return 0;
}

int compile_finish(struct compile_job *job)
{
	int ret = opus_run_wait(job->pid, "the compiler", job->cwd);

	free(job->cwd);
	job->cwd = NULL;
	return ret ? opus_err_wrap(ret, "%s %s", job->doing, job->e->file) : 0;
}

int compile_all(const struct compile_req *reqs, size_t n, const char *orig_root,
		const char *scratch_root, void (*progress)(void *ctx, size_t done, size_t n),
		void *ctx)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t width = cpus > 1 ? (size_t)cpus : 1, started = 0, done = 0;
	struct compile_job *jobs = calloc(n + 1, sizeof(*jobs));
	int ret = jobs ? 0 : -ENOMEM;

	/* Until every started compile is waited for, and, without an error,
	 * every one was started. */
	while (jobs && (done < started || (!ret && started < n))) {
		while (!ret && started < n && started - done < width) {
			const struct compile_req *r = &reqs[started];

			ret = compile_start(r->e, orig_root, scratch_root, r->flavour, r->out,
					    &jobs[started]);
			started += !ret;
		}
		if (done < started) {
			int r = compile_finish(&jobs[done++]);

			if (!ret)
				ret = r;
			if (progress)
				progress(ctx, done, n);
		}
	}
	free(jobs);
	return ret;
}

int compile_tu(const struct cdb_entry *e, const char *orig_root, const char *scratch_root,
	       enum compile_flavour flavour, const char *out_obj)
{
	struct compile_job job;
	int ret = compile_start(e, orig_root, scratch_root, flavour, out_obj, &job);

	return ret ? ret : compile_finish(&job);
}

bool compile_uses_lto(const struct cdb_entry *e)
{
	bool lto = false;

	for (size_t i = 1; i < e->argc; i++)
		if (!strncmp(e->argv[i], "-flto", 5))
			lto = true;
		else if (!strcmp(e->argv[i], "-fno-lto"))
			lto = false;
	return lto;
}
