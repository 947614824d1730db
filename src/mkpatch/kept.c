/* A function left out with --exclude keeps its old code while functions it
 * calls are replaced. At -O2 a compiler lets a caller count on what it
 * learnt of its callees' bodies in the same unit: gcc keeps values in the
 * call-clobbered registers a callee leaves alone (-fipa-ra), keeps a
 * static's value in a register across a call that does not write it
 * (-fipa-reference, -fipa-modref), calls a pure function once. The
 * replacement was compiled for callers that no longer count on the old
 * body. Measured: a loop counter kept in %edx across a static helper, the
 * helper's fix computing a remainder in %edx, and the old loop never ended.
 * The object diff sees such callers change (their patched compile counts on
 * less) and replaces them; only an excluded one is left with its old code.
 *
 * The same holds the other way: gcc compiles a function, or a clone of it,
 * for the arguments its callers pass (-fipa-cp, -fipa-vrp), and a patched
 * caller may pass others.
 *
 * So an excluded function that the diff changed keeps its old code only if
 * that code counts on no other function: compiled again with gcc's
 * -fno-ipa-* for all of that (source/compile.h), it is the same. Otherwise,
 * or if another compiler built it (clang infers the same attributes, and
 * has no flag to stop it), the build is refused, naming it. */
#include <stdlib.h>
#include <string.h>

#include "build_ctx.h"
#include "objdiff.h"
#include "util/err.h"

#define BLIND_TAG "orig-blind"

/* The excluded function and its cold part, by name. */
static void names_of(const char *name, char out[2][512])
{
	snprintf(out[0], sizeof(out[0]), "%s", name);
	snprintf(out[1], sizeof(out[1]), "%s.cold", name);
}

static bool changed(const struct obj *orig, const struct obj *patched, const char *name)
{
	size_t f = obj_find_sym(patched, name, STT_FUNC);

	return f && objdiff_func(orig, patched, f) != OBJDIFF_SAME;
}

/* Whether unit i's patched compile changed an excluded function, so that
 * it needs the compile without IPA; one not built by gcc is refused. */
static int needs_check(const struct build *b, size_t unit, bool *need)
{
	struct obj orig, patched;
	char names[2][512];
	int ret = build_open_pair(b, unit, "orig", b->new_tag, &orig, &patched);

	*need = false;
	if (ret)
		return ret;
	for (size_t k = 0; !ret && !*need && k < b->scope.nexclude; k++) {
		names_of(b->scope.exclude[k], names);
		*need = changed(&orig, &patched, names[0]) || changed(&orig, &patched, names[1]);
		if (*need && !obj_built_by_gcc(&orig))
			ret = opus_err(-ENOTSUP,
				       "%s (%s): excluded, it keeps its old code, which the diff "
				       "changed; its compiler is not gcc, and opus cannot check "
				       "that the old code counts on nothing of the functions it "
				       "calls that the patch replaces. Not built: leave %s in "
				       "the patch",
				       b->scope.exclude[k], orig.file ? orig.file : "?",
				       b->scope.exclude[k]);
	}
	obj_close(&patched);
	obj_close(&orig);
	return ret;
}

/* 0 if name has the same code in orig and blind (or is not in orig). */
static int refuse_if_counting(const struct obj *orig, const struct obj *blind, const char *name,
			      const char *excluded)
{
	size_t f = obj_find_sym(orig, name, STT_FUNC), g = obj_find_sym(blind, name, STT_FUNC);

	if (!f || (g && objdiff_func(orig, blind, g) == OBJDIFF_SAME))
		return 0;
	return opus_err(-ENOTSUP,
			"%s (%s): excluded, it keeps its old code, but that code counts on what "
			"gcc learnt of the other functions of its unit (the registers a callee "
			"leaves alone, the memory it does not touch, the arguments its callers "
			"pass: compiled with -fno-ipa-ra and the other -fno-ipa-*, %s's code "
			"differs), and the patch's code need not keep to it. Not built: leave %s "
			"in the patch (apply then waits for it to return)",
			excluded, orig->file ? orig->file : "?", name, excluded);
}

static int check_unit(const struct build *b, size_t unit)
{
	struct obj orig, blind;
	char names[2][512];
	int ret = build_open_pair(b, unit, "orig", BLIND_TAG, &orig, &blind);

	if (ret)
		return ret;
	for (size_t k = 0; !ret && k < b->scope.nexclude; k++) {
		names_of(b->scope.exclude[k], names);
		for (int n = 0; !ret && n < 2; n++)
			ret = refuse_if_counting(&orig, &blind, names[n], b->scope.exclude[k]);
	}
	obj_close(&blind);
	obj_close(&orig);
	return ret;
}

int build_check_kept(struct build *b, const bool *assembled)
{
	bool *need = calloc(b->ws.nunits + 1, sizeof(*need)), any = false;
	int ret = need ? 0 : -ENOMEM;

	for (size_t i = 0; !ret && i < b->ws.nunits; i++)
		if (assembled[i] && !(ret = needs_check(b, i, &need[i])))
			any |= need[i];
	/* The original units again, without what callers learn of callees. */
	if (!ret && any) {
		if (!(ret = workspace_unapply_diff(&b->ws)))
			ret = build_compile_as(b, BLIND_TAG, COMPILE_SECTIONS_NO_CALLEE_IPA, need,
					       "original units compiled without -fipa-ra");
		if (!ret)
			ret = workspace_apply_diff(&b->ws);
	}
	for (size_t i = 0; !ret && i < b->ws.nunits; i++)
		if (need[i])
			ret = check_unit(b, i);
	free(need);
	return ret;
}
