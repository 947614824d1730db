/* The object diff on objects the compiler makes here: two compiles of one
 * unit, all its functions in one .text section, one function changed and
 * grown so that every function after it moves. Only that function is
 * changed; its neighbours, moved but the same, are not; a new one is new;
 * a function that differs only in a __LINE__ moved by the diff is
 * recognised as such. */
#include "mkpatch/obj.h"
#include "mkpatch/objdiff.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[] = "/tmp/opus-unit-objdiff-XXXXXX";

static const char original[] = "int report(int line);\n"
			       "int first(int x) { return x + 1; }\n"
			       "int middle(int x) { return x > 10 ? x - 10 : x; }\n"
			       "int last(int x) { return first(x) * 2 + report(__LINE__); }\n"
			       "const char *msg(void) { return \"hello\"; }\n";

/* middle gains a clause (and bytes), a new line moves last's __LINE__. */
static const char patched[] =
    "int report(int line);\n"
    "int first(int x) { return x + 1; }\n"
    "int middle(int x) { if (x < 0) return report(0); return x > 10 ? x - 10 : x; }\n"
    "\n"
    "int last(int x) { return first(x) * 2 + report(__LINE__); }\n"
    "const char *msg(void) { return \"hello\"; }\n"
    "int added(int x) { return x * 7; }\n";

static int compile(const char *name, const char *text, struct obj *o)
{
	char src[512], cmd[1200];
	FILE *f;

	snprintf(src, sizeof(src), "%s/%s.c", dir, name);
	f = fopen(src, "w");
	if (!f)
		return -1;
	fputs(text, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cc -O2 -c -o %s/%s.o %s", dir, name, src);
	if (system(cmd))
		return -1;
	snprintf(src, sizeof(src), "%s/%s.o", dir, name);
	return obj_open(src, o);
}

static enum objdiff_state state_of(const struct obj *a, const struct obj *b, const char *name)
{
	size_t fb = obj_find_sym(b, name, STT_FUNC);

	CHECK(fb != 0);
	return fb ? objdiff_func(a, b, fb) : OBJDIFF_SAME;
}

/* Line 4 of the original is line 5 of the patched file; 3 changed. */
static bool map_line(void *ctx, int old, int *new_line)
{
	(void)ctx;
	*new_line = old >= 4 ? old + 1 : old;
	return old != 3;
}

int main(void)
{
	struct obj a, b;
	char cmd[300];

	CHECK(mkdtemp(dir) != NULL);
	CHECK(compile("a", original, &a) == 0);
	CHECK(compile("b", patched, &b) == 0);
	/* The premise: the functions after middle moved. */
	GElf_Sym sa, sb;

	CHECK(obj_sym(&a, obj_find_sym(&a, "msg", STT_FUNC), &sa) &&
	      obj_sym(&b, obj_find_sym(&b, "msg", STT_FUNC), &sb) && sa.st_value != sb.st_value &&
	      !strcmp(a.scns[sa.st_shndx].name, ".text"));
	CHECK(state_of(&a, &b, "first") == OBJDIFF_SAME);
	CHECK(state_of(&a, &b, "middle") == OBJDIFF_CHANGED);
	CHECK(state_of(&a, &b, "msg") == OBJDIFF_SAME);
	CHECK(state_of(&a, &b, "added") == OBJDIFF_NEW);
	/* last differs in its __LINE__ immediate only, which the diff moved. */
	CHECK(state_of(&a, &b, "last") == OBJDIFF_CHANGED);
	CHECK(objdiff_only_lines(&a, &b, obj_find_sym(&b, "last", STT_FUNC), map_line, NULL));
	CHECK(!objdiff_only_lines(&a, &b, obj_find_sym(&b, "middle", STT_FUNC), map_line, NULL));
	obj_close(&a);
	obj_close(&b);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return unit_status();
}
