#include "build_ctx.h"
#include "obj.h"
#include "source/compile.h"
#include "util/err.h"
#include "util/file.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LTO_REASON                                                                                 \
	"link-time optimisation moves code across translation units, so the binary's functions "   \
	"cannot be matched to a unit's; LTO builds are not supported"

/* A binary linked with -flto: its units' DWARF says GCC compiled them from
 * GIMPLE at link time. */
static bool binary_is_lto(Elf *elf)
{
	Dwarf *dw = dwarf_begin_elf(elf, DWARF_C_READ, NULL);
	Dwarf_Off off = 0, next;
	size_t hsize;
	bool lto = false;

	while (dw && !lto && dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu;
		Dwarf_Attribute a;
		const char *producer;

		if (dwarf_offdie(dw, off + hsize, &cu) &&
		    (producer = dwarf_formstring(dwarf_attr(&cu, DW_AT_producer, &a))))
			lto = !strncmp(producer, "GNU GIMPLE", 10);
		off = next;
	}
	if (dw)
		dwarf_end(dw);
	return lto;
}

/* Does path end with the relative path tail, at a component boundary?
 * (A build's file-prefix map can leave DWARF with relative paths only.) */
static bool ends_with_path(const char *path, const char *tail)
{
	size_t n = strlen(path), t = strlen(tail);

	while (!strncmp(tail, "./", 2))
		tail += 2, t -= 2;
	return tail[0] != '/' && n > t && path[n - t - 1] == '/' && !strcmp(path + n - t, tail);
}

/* Is unit e one the binary was compiled from? Its DWARF names each unit's
 * source (relative to the unit's compile directory). Without DWARF, every
 * unit may be. */
static bool binary_has_unit(Dwarf *dw, const struct cdb_entry *e)
{
	Dwarf_Off off = 0, next;
	size_t hsize;

	if (!dw)
		return true;
	for (; dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0; off = next) {
		Dwarf_Die cu;
		Dwarf_Attribute a;
		const char *name, *dir;
		char path[PATH_MAX * 2], real[PATH_MAX];

		if (!dwarf_offdie(dw, off + hsize, &cu) ||
		    !(name = dwarf_formstring(dwarf_attr(&cu, DW_AT_name, &a))))
			continue;
		dir = dwarf_formstring(dwarf_attr(&cu, DW_AT_comp_dir, &a));
		snprintf(path, sizeof(path), "%s%s%s", name[0] == '/' || !dir ? "" : dir,
			 name[0] == '/' || !dir ? "" : "/", name);
		if (!strcmp(realpath(path, real) ? real : path, e->file) ||
		    ends_with_path(e->file, name))
			return true;
	}
	return false;
}

/* A self-replacement of every unit keeps those the binary has. */
void build_keep_units_of_binary(struct build *b, struct build_notes *notes)
{
	Dwarf *dw = dwarf_begin_elf(b->bin.elf, DWARF_C_READ, NULL);
	size_t kept = 0;

	for (size_t i = 0; i < b->ws.nunits; i++)
		if (binary_has_unit(dw, b->ws.units[i]))
			b->ws.units[kept++] = b->ws.units[i];
	if (kept < b->ws.nunits)
		build_note_add(notes, BUILD_INFO, "", "compile database",
			       "%zu of %zu units are not in %s (its DWARF): left out",
			       b->ws.nunits - kept, b->ws.nunits, b->opts->binary);
	b->ws.nunits = kept;
	if (dw)
		dwarf_end(dw);
}

/* The first of the object's global functions that the binary lacks, by
 * name and any binding (a hidden function is local once linked), or NULL. */
static const char *global_missing_from_binary(const struct build *b, const struct obj *o)
{
	for (size_t i = 1; i < o->nsyms; i++) {
		GElf_Sym sym;
		size_t first;

		if (obj_sym(o, i, &sym) && GELF_ST_TYPE(sym.st_info) == STT_FUNC &&
		    GELF_ST_BIND(sym.st_info) != STB_LOCAL && sym.st_shndx != SHN_UNDEF &&
		    !opus_symtab_named(&b->bin_syms, obj_sym_name(o, &sym), &first))
			return obj_sym_name(o, &sym);
	}
	return NULL;
}

/* Both tests must agree before a unit is left out: a unit compiled
 * without -g is missing from the DWARF, and one that includes another
 * (a test that includes the library's .c) has functions the binary has. */
bool build_unit_in_binary(const struct build *b, size_t unit, struct build_notes *notes)
{
	const struct cdb_entry *e = b->ws.units[unit];
	char path[256], missing[256] = "";
	const char *m;
	struct obj o;
	Dwarf *dw;
	bool named;

	/* The symbol test first: it reads the unit's own object, small, where
	 * the DWARF test walks every unit of the binary. */
	build_obj_path(b, "orig", unit, path, sizeof(path));
	if (!obj_open(path, &o)) {
		if ((m = global_missing_from_binary(b, &o)))
			snprintf(missing, sizeof(missing), "%s", m);
		obj_close(&o);
	}
	if (!missing[0])
		return true;
	dw = dwarf_begin_elf(b->bin.elf, DWARF_C_READ, NULL);
	named = !dw || binary_has_unit(dw, e);
	if (dw)
		dwarf_end(dw);
	if (named)
		return true;
	build_note_add(notes, BUILD_INFO, opus_base_name(e->file), "unit",
		       "not part of %s (its DWARF names no such unit, and it has no function %s): "
		       "left out",
		       b->opts->binary, missing);
	return false;
}

int build_refuse_lto(const struct build *b)
{
	if (binary_is_lto(b->bin.elf))
		return opus_err(-ENOTSUP, "%s was linked with -flto: " LTO_REASON, b->opts->binary);
	for (size_t i = 0; i < b->ws.nunits; i++)
		if (compile_uses_lto(b->ws.units[i]))
			return opus_err(-ENOTSUP, "%s is compiled with -flto: " LTO_REASON,
					b->ws.units[i]->file);
	return 0;
}
