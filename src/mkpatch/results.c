/* A result of the old code that a caller keeps. gcc finds functions const
 * (their result depends on their arguments alone) or pure (on their
 * arguments and memory they only read), and then calls one once for
 * several uses: before a loop, or once for two calls alike. A caller that
 * the patch leaves as it is and that made such a call before the patch
 * goes on using what the old code returned. Measured: main's loop printed
 * word()'s old string for ever after "applied", and nothing warned.
 *
 * The fix cannot reach a result already computed, so the build warns: for
 * each function the diff changes that gcc found const or pure, naming the
 * callers of its unit the patch keeps. gcc says what it found in its dumps
 * of the pure-const passes, which the patched compile writes (build.c):
 * a kept caller's code is the same in both compiles, so what it counts on
 * holds in both. A unit that clang built is not checked (no such dump). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "build_ctx.h"
#include "objdiff.h"
#include "util/err.h"
#include "util/file.h"

/* A changed function with callers the patch keeps, waiting for the dumps. */
struct kept_caller {
	size_t unit;
	char file[256]; /* the unit's name */
	char *callee;
	char callers[256]; /* their names, ", "-separated */
};

struct kept_callers {
	struct kept_caller *v;
	size_t n, cap;
};

/* Whether the 4 bytes at off of code section s are a call's or a jump's
 * displacement (e8, e9: a tail call), not an address taken. */
static bool branch_at(const struct obj_scn *s, uint64_t off)
{
	const uint8_t *code = s->data ? s->data->d_buf : NULL;

	return code && off >= 1 && off + 4 <= s->data->d_size &&
	       (code[off - 1] == 0xe8 || code[off - 1] == 0xe9);
}

/* Whether relocation r of code section scn calls function fo of o. */
static bool calls(const struct obj *o, size_t scn, const GElf_Rela *r, size_t fo,
		  const GElf_Sym *callee)
{
	size_t to = GELF_R_SYM(r->r_info);
	GElf_Sym sym;

	if (!branch_at(&o->scns[scn], r->r_offset) || !obj_sym(o, to, &sym))
		return false;
	if (to == fo)
		return true;
	return GELF_ST_TYPE(sym.st_info) == STT_SECTION && sym.st_shndx == callee->st_shndx &&
	       sym.st_shndx < o->nscn &&
	       obj_rela_lands(&o->scns[sym.st_shndx], r, 0) == (int64_t)callee->st_value;
}

/* Whether the patch keeps the code of orig's function name as it is. */
static bool kept(const struct obj *orig, const struct obj *patched, const char *name)
{
	size_t g = obj_find_sym(patched, name, STT_FUNC);

	return g && objdiff_func(orig, patched, g) == OBJDIFF_SAME;
}

static void add_caller(char *list, size_t len, const char *name)
{
	size_t used = strlen(list), nl = strlen(name);

	for (const char *at = list; (at = strstr(at, name)); at += nl)
		if ((at == list || at[-1] == ' ') && (at[nl] == ',' || !at[nl]))
			return;
	snprintf(list + used, len - used, "%s%s", used ? ", " : "", name);
}

/* The functions of orig that the patch keeps and that call fo, into list. */
static void kept_callers_of(const struct obj *orig, const struct obj *patched, size_t fo,
			    char *list, size_t len)
{
	GElf_Sym callee, sym;
	GElf_Rela r;

	list[0] = '\0';
	if (!obj_sym(orig, fo, &callee))
		return;
	for (size_t s = 1; s < orig->nscn; s++) {
		if (!(orig->scns[s].sh.sh_flags & SHF_EXECINSTR))
			continue;
		for (size_t i = 0; i < orig->scns[s].nrela; i++) {
			size_t by;
			const char *name;

			if (!obj_rela(orig, s, i, &r) || !calls(orig, s, &r, fo, &callee) ||
			    !(by = obj_sym_in_scn(orig, s, (long)r.r_offset, STT_FUNC)) ||
			    by == fo || !obj_sym(orig, by, &sym))
				continue;
			name = obj_sym_name(orig, &sym);
			if (name && kept(orig, patched, name))
				add_caller(list, len, name);
		}
	}
}

static int remember(struct kept_callers *k, size_t unit, const char *file, const char *callee,
		    const char *callers)
{
	struct kept_caller *c;

	if (opus_grow(&k->v, &k->cap, k->n + 1, sizeof(*k->v)))
		return -ENOMEM;
	c = &k->v[k->n];
	if (!(c->callee = strdup(callee)))
		return -ENOMEM;
	c->unit = unit;
	snprintf(c->file, sizeof(c->file), "%s", file ? file : "?");
	snprintf(c->callers, sizeof(c->callers), "%s", callers);
	k->n++;
	return 0;
}

/* The functions of unit that the diff changes and that functions the
 * patch keeps call, when gcc built the unit. */
static int find_kept_callers(const struct build *b, size_t unit, struct kept_callers *k)
{
	struct obj orig, patched;
	char callers[256];
	bool gcc;
	int ret = build_open_pair(b, unit, "orig", b->new_tag, &orig, &patched);

	if (ret)
		return ret;
	gcc = obj_built_by_gcc(&orig);
	for (size_t f = 1; !ret && gcc && f < patched.nsyms; f++) {
		GElf_Sym sym;
		const char *name;
		size_t fo;

		if (!obj_sym(&patched, f, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
		    sym.st_shndx == SHN_UNDEF || objdiff_func(&orig, &patched, f) == OBJDIFF_SAME ||
		    !(name = obj_sym_name(&patched, &sym)) ||
		    !(fo = obj_find_sym(&orig, name, STT_FUNC)))
			continue;
		kept_callers_of(&orig, &patched, fo, callers, sizeof(callers));
		if (callers[0])
			ret = remember(k, unit, orig.file, name, callers);
	}
	obj_close(&patched);
	obj_close(&orig);
	return ret;
}

/* The kind of a dump's line "Function found to be KIND: NAME/ORDER" if
 * it is about name and KIND is const or pure (perhaps looping): into kind. */
static bool line_finds(const char *line, const char *name, char *kind, size_t len)
{
	static const char *const kinds[] = {"const", "pure", "looping const", "looping pure"};
	const char *colon = strchr(line, ':');
	size_t kl = colon ? (size_t)(colon - line) : 0, nl = strlen(name);

	if (!colon || strncmp(colon + 2, name, nl) || colon[2 + nl] != '/')
		return false;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i]) == kl && !strncmp(line, kinds[i], kl)) {
			snprintf(kind, len, "%s", kinds[i]);
			return true;
		}
	return false;
}

/* The dumps of unit's patched compile, each NULL if it was not written
 * (clang, or no such pass ran: -O0). */
static void read_dumps(const struct build *b, size_t unit, char *text[COMPILE_PURE_CONST_DUMPS])
{
	char obj[256], path[300];
	size_t len;

	build_obj_path(b, b->new_tag, unit, obj, sizeof(obj));
	for (size_t d = 0; d < COMPILE_PURE_CONST_DUMPS; d++) {
		snprintf(path, sizeof(path), "%s.%s", obj, compile_pure_const_dumps[d]);
		if (opus_read_file(path, &text[d], &len))
			text[d] = NULL;
	}
}

static void free_dumps(char *text[COMPILE_PURE_CONST_DUMPS])
{
	for (size_t d = 0; d < COMPILE_PURE_CONST_DUMPS; d++) {
		free(text[d]);
		text[d] = NULL;
	}
}

/* Whether the dumps found name const or pure (which, into kind). */
static bool found_to_be(char *const text[COMPILE_PURE_CONST_DUMPS], const char *name, char *kind,
			size_t len)
{
	static const char lead[] = "Function found to be ";
	bool found = false;

	for (size_t d = 0; !found && d < COMPILE_PURE_CONST_DUMPS; d++)
		for (const char *at = text[d]; !found && at && (at = strstr(at, lead)); at++)
			found = line_finds(at + sizeof(lead) - 1, name, kind, len);
	return found;
}

static int warn(const struct kept_caller *c, const char *kind, struct build_notes *notes)
{
	return build_note_add(notes, BUILD_WARNING, c->callee, c->file,
			      "gcc found %s %s, and %s, which the patch keeps, call(s) it: gcc "
			      "may call such a function once for several uses (once before a "
			      "loop, say), and a result its old code returned before the patch "
			      "stays in use until the caller calls it again. The fix may not "
			      "take effect in a caller that is running (a loop it never leaves)",
			      c->callee, kind, c->callers);
}

int build_warn_kept_results(struct build *b, const bool *assembled, struct build_notes *notes)
{
	struct kept_callers k = {0};
	char *dumps[COMPILE_PURE_CONST_DUMPS] = {NULL};
	int ret = 0;

	for (size_t i = 0; !ret && i < b->ws.nunits; i++)
		if (assembled[i])
			ret = find_kept_callers(b, i, &k);
	/* In unit order: each unit's dumps (a callgraph, large for a large
	 * unit) are read once. */
	for (size_t i = 0; !ret && i < k.n; i++) {
		char kind[64];

		if (!i || k.v[i].unit != k.v[i - 1].unit) {
			free_dumps(dumps);
			read_dumps(b, k.v[i].unit, dumps);
		}
		if (found_to_be(dumps, k.v[i].callee, kind, sizeof(kind)))
			ret = warn(&k.v[i], kind, notes);
	}
	free_dumps(dumps);
	for (size_t i = 0; i < k.n; i++)
		free(k.v[i].callee);
	free(k.v);
	return ret;
}
