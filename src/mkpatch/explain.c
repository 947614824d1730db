#include "explain.h"
#include "util/err.h"
#include "util/file.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *die_name(Dwarf_Die *die)
{
	Dwarf_Attribute attr;

	return dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr));
}

static struct src_func *find(struct src_map *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->v[i].name, name))
			return &m->v[i];
	return NULL;
}

static int add_inlined(struct src_func *f, const char *name)
{
	for (size_t i = 0; i < f->ninlined; i++)
		if (!strcmp(f->inlined[i], name))
			return 0;
	if (OPUS_PUSH(f->inlined, f->ninlined, f->inlined_cap))
		return -ENOMEM;
	f->inlined[f->ninlined] = strdup(name);
	return f->inlined[f->ninlined++] ? 0 : -ENOMEM;
}

static void collect_inlined(struct src_func *f, Dwarf_Die *die)
{
	Dwarf_Die child;

	if (dwarf_child(die, &child) != 0)
		return;
	do {
		const char *n;

		if (dwarf_tag(&child) == DW_TAG_inlined_subroutine && (n = die_name(&child)))
			add_inlined(f, n);
		collect_inlined(f, &child);
	} while (dwarf_siblingof(&child, &child) == 0);
}

struct cu_walk {
	struct src_map *m;
	int ret;
};

static int on_func(Dwarf_Die *die, void *arg)
{
	struct cu_walk *w = arg;
	const char *name = die_name(die), *decl = dwarf_decl_file(die);
	struct src_func *f;
	int line;

	if (!name || !decl || dwarf_decl_line(die, &line))
		return DWARF_CB_OK;
	f = find(w->m, name);
	if (!f) {
		if (OPUS_PUSH(w->m->v, w->m->n, w->m->cap)) {
			w->ret = -ENOMEM;
			return DWARF_CB_ABORT;
		}
		f = &w->m->v[w->m->n++];
		memset(f, 0, sizeof(*f));
		f->name = strdup(name);
		f->file = strdup(decl);
		f->first = line;
	}
	collect_inlined(f, die);
	return DWARF_CB_OK;
}

static int by_place(const void *a, const void *b)
{
	const struct src_func *x = a, *y = b;
	int c = strcmp(x->file ? x->file : "", y->file ? y->file : "");

	return c ? c : (x->first > y->first) - (x->first < y->first);
}

static char *debuginfo_path;

/* Through libdwfl: it applies the relocations an object's DWARF needs. */
static const Dwfl_Callbacks offline = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &debuginfo_path,
};

int src_map_load(const char *path, struct src_map *out)
{
	Dwfl *dwfl = dwfl_begin(&offline);
	Dwfl_Module *mod = dwfl ? dwfl_report_offline(dwfl, "", path, -1) : NULL;
	Dwarf_Addr bias;
	Dwarf *dw = mod ? dwfl_module_getdwarf(mod, &bias) : NULL;
	Dwarf_Off off = 0, next;
	size_t hsize;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	while (dw && !ret && dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu;
		struct cu_walk w = {.m = out};

		if (dwarf_offdie(dw, off + hsize, &cu)) {
			dwarf_getfuncs(&cu, on_func, &w, 0);
			ret = w.ret;
		}
		off = next;
	}
	if (dwfl)
		dwfl_end(dwfl);
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), by_place);
	/* A function runs until the next one in the same file begins. */
	for (size_t i = 0; i < out->n; i++)
		out->v[i].last = i + 1 < out->n && out->v[i + 1].file && out->v[i].file &&
					 !strcmp(out->v[i + 1].file, out->v[i].file)
				     ? out->v[i + 1].first - 1
				     : INT_MAX;
	return ret;
}

void src_map_free(struct src_map *m)
{
	for (size_t i = 0; i < m->n; i++) {
		for (size_t j = 0; j < m->v[i].ninlined; j++)
			free(m->v[i].inlined[j]);
		free(m->v[i].inlined);
		free(m->v[i].name);
		free(m->v[i].file);
	}
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* The diff's changes to the file f was defined in (the diff names it
 * relative to the tree; the compiler saw a longer path). */
static const struct diff_file *diff_for(const struct diff_files *diff, const struct src_func *f)
{
	size_t fl = f->file ? strlen(f->file) : 0;

	for (size_t i = 0; diff && i < diff->n; i++) {
		size_t pl = strlen(diff->v[i].path);

		if (fl > pl && f->file[fl - pl - 1] == '/' &&
		    !strcmp(f->file + fl - pl, diff->v[i].path))
			return &diff->v[i];
	}
	return NULL;
}

static const struct src_func *find_const(const struct src_map *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->v[i].name, name))
			return &m->v[i];
	return NULL;
}

/* The function a symbol name comes from: foo.isra.0, foo.constprop.0,
 * foo.part.0 and foo.cold come from foo. */
static const struct src_func *find_symbol(const struct src_map *m, const char *name)
{
	char base[256];

	snprintf(base, sizeof(base), "%.*s", (int)strcspn(name, "."), name);
	return find_const(m, base);
}

static bool changed(const struct diff_files *diff, const struct src_func *f, int *line)
{
	const struct diff_file *df = f ? diff_for(diff, f) : NULL;

	return df && diff_file_touches(df, f->first, f->last, line);
}

enum src_reason src_explain(const struct src_map *m, const struct diff_files *diff,
			    const char *name, char *buf, size_t len)
{
	const struct src_func *f = find_symbol(m, name);
	int line;

	if (changed(diff, f, &line)) {
		snprintf(buf, len, "its source changed (%s:%d)", opus_base_name(f->file), line);
		return SRC_OWN;
	}
	for (size_t i = 0; f && i < f->ninlined; i++) {
		const struct src_func *g = find_const(m, f->inlined[i]);

		if (changed(diff, g, &line)) {
			snprintf(buf, len, "it inlines %s, whose source changed (%s:%d)", g->name,
				 opus_base_name(g->file), line);
			return SRC_INLINED;
		}
	}
	snprintf(buf, len, "its code changed (a constant, macro, type or inlined code it uses)");
	return SRC_OTHER;
}

bool src_touched(const struct src_map *m, const struct diff_files *diff, const char *name)
{
	const struct src_func *f = find_symbol(m, name);
	int line;

	if (!f || changed(diff, f, &line))
		return true; /* unknown counts as touched */
	for (size_t i = 0; i < f->ninlined; i++)
		if (changed(diff, find_const(m, f->inlined[i]), &line))
			return true;
	return false;
}

bool src_known(const struct src_map *m, const char *name)
{
	return find_symbol(m, name) != NULL;
}

const struct diff_file *src_diff_of(const struct src_map *m, const struct diff_files *diff,
				    const char *name)
{
	const struct src_func *f = find_symbol(m, name);

	return f ? diff_for(diff, f) : NULL;
}
