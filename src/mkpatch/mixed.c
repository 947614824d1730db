/* Whether a per-thread transition may apply the patch (issue 15,
 * docs/reliability.md "The mixed period"). During one, some threads run
 * the old functions and the others the new ones, each thread all of one or
 * all of the other, as the kernel's per-task model has it. Every thread
 * then runs code that is consistent within itself; what two threads share
 * is data. So the two sides may run at once only where they agree on the
 * shared data they read and write: a replaced function that reads or
 * writes a variable its old code does not (or no longer one it did), and a
 * fix the analysis finds writing non-local state anew or changing a global
 * or a type, are applied with every thread stopped at once. The judgement
 * travels in the patch: each reason one line of opatch.stop_world. */
#include <stdlib.h>
#include <string.h>

#include "build_ctx.h"
#include "objdiff.h"
#include "util/buf.h"
#include "util/err.h"

#define MAX_NAMES 4096

/* The names of shared variables a function's code refers to, sorted. */
struct names {
	const char *v[MAX_NAMES];
	size_t n;
	bool full; /* more than MAX_NAMES: judged as different */
};

static bool is_call(uint32_t type)
{
	return type == R_X86_64_PLT32;
}

/* An undefined symbol o refers to by r: a variable unless the binary has
 * a function of that name (a function's address is no shared state). */
static bool extern_var(const struct build *b, const char *name)
{
	size_t first, n = opus_symtab_named(&b->bin_syms, name, &first);

	for (size_t k = 0; k < n; k++)
		if (b->bin_syms.syms[b->bin_syms.by_name[first + k]].type == STT_FUNC)
			return false;
	return true;
}

/* The shared variable r refers to, or NULL: a writable, non-thread-local
 * one of the unit (by its symbol, or its section's name where no symbol
 * covers the place), or one defined elsewhere. */
static const char *shared_var(const struct build *b, const struct obj *o, const GElf_Rela *r)
{
	uint32_t type = (uint32_t)GELF_R_TYPE(r->r_info);
	GElf_Sym sym;
	size_t scn, at;

	if (obj_rela_is_tls(type) || !obj_sym(o, GELF_R_SYM(r->r_info), &sym))
		return NULL;
	if (sym.st_shndx == SHN_UNDEF) {
		const char *name = obj_sym_name(o, &sym);

		return !is_call(type) && name && *name && extern_var(b, name) ? name : NULL;
	}
	scn = sym.st_shndx;
	if (scn >= o->nscn || !obj_scn_holds_state(&o->scns[scn]))
		return NULL;
	if (GELF_ST_TYPE(sym.st_info) == STT_OBJECT)
		return obj_sym_name(o, &sym);
	if (GELF_ST_TYPE(sym.st_info) != STT_SECTION)
		return NULL;
	at = obj_sym_in_scn(o, scn, (long)obj_rela_lands(&o->scns[scn], r, (int64_t)sym.st_value),
			    STT_OBJECT);
	return at && obj_sym(o, at, &sym) ? obj_sym_name(o, &sym) : o->scns[scn].name;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void add_name(struct names *ns, const char *name)
{
	for (size_t i = 0; i < ns->n; i++)
		if (!strcmp(ns->v[i], name))
			return;
	if (ns->n == MAX_NAMES)
		ns->full = true;
	else
		ns->v[ns->n++] = name;
}

/* The shared variables function f of o refers to (none if f is 0). */
static void vars_of(const struct build *b, const struct obj *o, size_t f, struct names *ns)
{
	GElf_Sym sym;
	GElf_Rela r;

	ns->n = 0;
	ns->full = false;
	if (!f || !obj_sym(o, f, &sym) || sym.st_shndx >= o->nscn)
		return;
	for (size_t i = 0; i < o->scns[sym.st_shndx].nrela; i++) {
		const char *name;

		if (!obj_rela(o, sym.st_shndx, i, &r) || r.r_offset < sym.st_value ||
		    r.r_offset >= sym.st_value + (sym.st_size ? sym.st_size : 1))
			continue;
		if ((name = shared_var(b, o, &r)))
			add_name(ns, name);
	}
	qsort(ns->v, ns->n, sizeof(ns->v[0]), by_name);
}

static int add_reason(struct opatch *p, const char *fmt, const char *func, const char *var,
		      const char *file)
{
	char *line;
	int n = asprintf(&line, fmt, func, var, file);

	if (n < 0)
		return -ENOMEM;
	n = opus_append_line(&p->stop_world, line);
	free(line);
	return n;
}

/* One reason for the first variable of one side the other lacks. */
static int compare_vars(struct build *b, const char *func, const char *file,
			const struct names *old, const struct names *new)
{
	size_t i = 0, j = 0;

	if (old->full || new->full)
		return add_reason(&b->patch,
				  "%s refers to more shared variables than opus compares%s", func,
				  "", file);
	while (i < old->n || j < new->n) {
		int c = i == old->n ? 1 : j == new->n ? -1 : strcmp(old->v[i], new->v[j]);

		if (c < 0)
			return add_reason(&b->patch,
					  "%s no longer reads or writes %s (%s), where its old "
					  "code does",
					  func, old->v[i], file);
		if (c > 0)
			return add_reason(&b->patch,
					  "%s reads or writes %s (%s), which its old code does not",
					  func, new->v[j], file);
		i++, j++;
	}
	return 0;
}

static int judge_unit(struct build *b, size_t unit, struct names *old, struct names *new)
{
	struct obj orig, patched;
	int ret = build_open_pair(b, unit, "orig", b->new_tag, &orig, &patched);

	if (ret)
		return ret;
	for (size_t f = 1; !ret && f < patched.nsyms; f++) {
		GElf_Sym sym;
		const char *name;

		if (!obj_sym(&patched, f, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
		    sym.st_shndx == SHN_UNDEF || objdiff_func(&orig, &patched, f) == OBJDIFF_SAME)
			continue;
		name = obj_sym_name(&patched, &sym);
		vars_of(b, &orig, obj_find_sym(&orig, name, STT_FUNC), old);
		vars_of(b, &patched, f, new);
		ret = compare_vars(b, name, orig.file ? orig.file : "?", old, new);
	}
	obj_close(&patched);
	obj_close(&orig);
	return ret;
}

int build_judge_shared_vars(struct build *b, const bool *assembled)
{
	struct names *old = malloc(sizeof(*old)), *new = malloc(sizeof(*new));
	int ret = old && new ? 0 : -ENOMEM;

	if (!ret && !b->patch.stop_world && !(b->patch.stop_world = strdup("")))
		ret = -ENOMEM;
	for (size_t i = 0; !ret && !b->opts->replace_all && i < b->ws.nunits; i++)
		if (assembled[i])
			ret = judge_unit(b, i, old, new);
	free(old);
	free(new);
	return ret;
}

int build_judge_old_copies(struct build *b)
{
	const struct opatch *p = &b->patch;
	char line[512];
	int ret = 0;

	for (size_t i = 0; !ret && i < p->nfuncs; i++) {
		if (p->funcs[i].cold || p->funcs[i].old_sym >= 0)
			continue;
		snprintf(line, sizeof(line),
			 "%s: the patch carries no copy of its old code, which threads not yet "
			 "switched would run",
			 p->funcs[i].name);
		ret = opus_append_line(&b->patch.stop_world, line);
	}
	return ret;
}

/* Kinds of finding that say the fix changes how shared data is written
 * or laid out (analyze/analyze.c). */
static const char *const data_kinds[] = {
    "nonlocal-write",	  "global-added",	"global-removed", "global-init-change",
    "global-type-change", "static-local-added", "type-change",
};

/* The finding line's kind ("file:line: severity: kind: message"), in k. */
static bool finding_kind(const char *line, size_t len, char *k, size_t klen)
{
	const char *p = line, *end = line + len;
	size_t n;

	for (int colons = 0; p < end && colons < 3; p++)
		colons += *p == ':';
	if (p >= end || *p++ != ' ')
		return false;
	n = strcspn(p, ":\n");
	if (p + n >= end)
		return false;
	snprintf(k, klen, "%.*s", (int)n, p);
	return true;
}

int build_judge_findings(struct build *b)
{
	struct opatch *p = &b->patch;
	const char *at = p->findings ? p->findings : "";
	int ret = p->stop_world ? 0 : -ENOMEM;

	if (!ret && !strncmp(at, "analysis unavailable", 20))
		return opus_append_line(&p->stop_world,
					"no analysis of the sources: the writes of the fix are "
					"unknown");
	while (!ret && *at) {
		size_t len = strcspn(at, "\n");
		char kind[64], line[1024];

		snprintf(line, sizeof(line), "the analysis found: %.*s", (int)len, at);
		for (size_t k = 0; k < sizeof(data_kinds) / sizeof(data_kinds[0]); k++)
			if (finding_kind(at, len, kind, sizeof(kind)) &&
			    !strcmp(kind, data_kinds[k]))
				ret = opus_append_line(&p->stop_world, line);
		at += len + (at[len] == '\n');
	}
	return ret;
}
