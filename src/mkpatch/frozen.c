/* A static variable the original program writes but the patched unit no
 * longer does (the fix took out its last write) is made a constant by gcc
 * (-fipa-reference-addressable): the new code is compiled with its initial
 * value, where the running program may hold another. Measured: a mode set
 * to 2 at start-up, read back as 1 by the patched reader; nothing warned.
 *
 * Such a variable is writable in the original compile, and read-only or
 * gone in the patched one. Gone may also mean that no code uses it any
 * more: the patched unit is compiled again with
 * -fno-ipa-reference-addressable, where a variable still used is still
 * there, and the build is refused, naming it. */
#include <stdlib.h>
#include <string.h>

#include "build_ctx.h"
#include "util/err.h"

#define KEPT_TAG "new-vars"

/* A variable of o's that code may write while the program runs. */
static bool writable_var(const struct obj *o, const GElf_Sym *sym)
{
	return GELF_ST_TYPE(sym->st_info) == STT_OBJECT && sym->st_shndx != SHN_UNDEF &&
	       sym->st_shndx < o->nscn && obj_scn_holds_state(&o->scns[sym->st_shndx]);
}

/* Whether name is a variable of o that code may write. */
static bool writable_in(const struct obj *o, const char *name)
{
	size_t i = obj_find_sym(o, name, STT_OBJECT);
	GElf_Sym sym;

	return i && obj_sym(o, i, &sym) && writable_var(o, &sym);
}

/* The variables written in orig but not in patched, one at a time: the
 * first from index *next on, or NULL. */
static const char *next_frozen(const struct obj *orig, const struct obj *patched, size_t *next)
{
	for (; *next < orig->nsyms; (*next)++) {
		GElf_Sym sym;
		const char *name;

		if (!obj_sym(orig, *next, &sym) || !writable_var(orig, &sym))
			continue;
		name = obj_sym_name(orig, &sym);
		if (name && *name && !writable_in(patched, name)) {
			(*next)++;
			return name;
		}
	}
	return NULL;
}

/* Whether unit i has a variable frozen in its patched compile (*any), and
 * whether gcc compiled it, so that it can be compiled keeping them. */
static int has_frozen(const struct build *b, size_t unit, bool *any, bool *gcc)
{
	struct obj orig, patched;
	size_t next = 1;
	int ret = build_open_pair(b, unit, "orig", b->new_tag, &orig, &patched);

	if (ret)
		return ret;
	*any = next_frozen(&orig, &patched, &next) != NULL;
	*gcc = *any && obj_built_by_gcc(&orig);
	obj_close(&patched);
	obj_close(&orig);
	return 0;
}

/* Refused if a variable frozen in the patched compile is still used: in
 * the compile that keeps variables (gcc), or always (clang, which has no
 * such flag, so that none is proven gone). */
static int check_unit(const struct build *b, size_t unit)
{
	struct obj orig, patched, kept;
	char path[4096];
	size_t next = 1;
	const char *name;
	bool gcc;
	int ret = build_open_pair(b, unit, "orig", b->new_tag, &orig, &patched);

	if (ret)
		return ret;
	gcc = obj_built_by_gcc(&orig);
	build_obj_path(b, KEPT_TAG, unit, path, sizeof(path));
	if (gcc && (ret = obj_open(path, &kept)))
		gcc = false;
	while (!ret && (name = next_frozen(&orig, &patched, &next)))
		if (!gcc || obj_find_sym(&kept, name, STT_OBJECT))
			ret = opus_err(-ENOTSUP,
				       "%s (%s): the fix takes out the program's last write to it, "
				       "so %s compiled the new code with its initial value, where "
				       "the running program may hold another. Not built: keep a "
				       "write to it in the fix",
				       name, orig.file ? orig.file : "?",
				       gcc ? "gcc" : "the compiler");
	if (gcc)
		obj_close(&kept);
	obj_close(&patched);
	obj_close(&orig);
	return ret;
}

int build_check_frozen(struct build *b, const bool *assembled)
{
	bool *need = calloc(b->ws.nunits + 1, sizeof(*need));
	bool *gcc = calloc(b->ws.nunits + 1, sizeof(*gcc)), any_gcc = false;
	int ret = need && gcc ? 0 : -ENOMEM;

	for (size_t i = 0; !ret && i < b->ws.nunits; i++)
		if (assembled[i] && !(ret = has_frozen(b, i, &need[i], &gcc[i])))
			any_gcc |= gcc[i];
	if (!ret && any_gcc)
		ret =
		    build_compile_as(b, KEPT_TAG, COMPILE_SECTIONS_KEEP_VARIABLES, gcc,
				     "patched units compiled with -fno-ipa-reference-addressable");
	for (size_t i = 0; !ret && i < b->ws.nunits; i++)
		if (need[i])
			ret = check_unit(b, i);
	free(need);
	free(gcc);
	return ret;
}
