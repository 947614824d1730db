#include "build_ctx.h"
#include "obj.h"
#include "source/compile.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/file.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <errno.h>
#include <limits.h>
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

/* Is cu the unit compiled from e's file, by the name its DWARF gives the
 * unit's source (relative to the unit's compile directory)? */
static bool cu_is_unit(Dwarf_Die *cu, const struct cdb_entry *e)
{
	Dwarf_Attribute a;
	const char *name = dwarf_formstring(dwarf_attr(cu, DW_AT_name, &a)), *dir;
	char path[PATH_MAX * 2], real[PATH_MAX];

	if (!name)
		return false;
	dir = dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &a));
	snprintf(path, sizeof(path), "%s%s%s", name[0] == '/' || !dir ? "" : dir,
		 name[0] == '/' || !dir ? "" : "/", name);
	if (!strcmp(realpath(path, real) ? real : path, e->file) || ends_with_path(e->file, name))
		return true;
	/* A mapped prefix leaves a relative compile directory: the name
	 * ("../../tree.c") is then read from the command's own. */
	snprintf(path, sizeof(path), "%s/%s", e->directory, name);
	return name[0] != '/' && realpath(path, real) && !strcmp(real, e->file);
}

/* The binary's unit compiled from e's file. */
static bool find_binary_cu(Dwarf *dw, const struct cdb_entry *e, Dwarf_Die *cu)
{
	Dwarf_Off off = 0, next;
	size_t hsize;

	for (; dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0; off = next)
		if (dwarf_offdie(dw, off + hsize, cu) && cu_is_unit(cu, e))
			return true;
	return false;
}

/* Is unit e one the binary was compiled from? Without DWARF, every unit
 * may be. */
static bool binary_has_unit(Dwarf *dw, const struct cdb_entry *e)
{
	Dwarf_Die cu;

	return !dw || find_binary_cu(dw, e, &cu);
}

/* Does the compile command pass the option word? */
static bool command_has(const struct cdb_entry *e, const char *word, size_t len)
{
	for (size_t i = 0; i < e->argc; i++)
		if (strlen(e->argv[i]) == len && !strncmp(e->argv[i], word, len))
			return true;
	return false;
}

/* An option GCC writes into DW_AT_producer: code generation (-f, -m, -O,
 * -g), but not the path maps or diagnostics, which it leaves out. */
static bool recorded_option(const char *a)
{
	static const char *const unrecorded[] = {
	    "-ffile-prefix-map=", "-fdebug-prefix-map=", "-fmacro-prefix-map=", "-fdiagnostics",
	    "-fmessage-length"};

	if (a[0] != '-' || !a[1] || !strchr("fmOg", a[1]))
		return false;
	for (size_t i = 0; i < sizeof(unrecorded) / sizeof(*unrecorded); i++)
		if (!strncmp(a, unrecorded[i], strlen(unrecorded[i])))
			return false;
	return true;
}

/* Does the producer string hold the option word a? */
static bool producer_has(const char *producer, const char *a)
{
	size_t len = strlen(a);

	for (const char *at = strstr(producer, a); at; at = strstr(at + 1, a))
		if ((at == producer || at[-1] == ' ') && (!at[len] || at[len] == ' '))
			return true;
	return false;
}

/* How far e's options are from those the producer string records: the
 * producer's options e lacks, and e's recorded options the producer lacks.
 * Options the driver adds on its own count alike for every command. */
static unsigned options_apart(const char *producer, const struct cdb_entry *e)
{
	unsigned apart = 0;

	for (const char *p = producer; *p;) {
		size_t len = strcspn(p, " ");

		apart += p[0] == '-' && !command_has(e, p, len);
		p += len + strspn(p + len, " ");
	}
	for (size_t i = 0; i < e->argc; i++)
		apart += recorded_option(e->argv[i]) && !producer_has(producer, e->argv[i]);
	return apart;
}

/* Was e run in the directory the unit's DWARF names (DW_AT_comp_dir,
 * relative when the build maps its prefix away)? Variants that differ
 * only in -D and -I (curl's three TLS flavours) are told apart by it. */
static bool ran_in_comp_dir(Dwarf_Die *cu, const struct cdb_entry *e)
{
	Dwarf_Attribute a;
	const char *dir = dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &a));

	if (!dir)
		return false;
	if (dir[0] == '/')
		return !strcmp(dir, e->directory);
	while (!strncmp(dir, "./", 2))
		dir += 2;
	return dir[0] && strcmp(dir, ".") && ends_with_path(e->directory, dir);
}

/* Of the variants of units[first]'s file, the one the binary's DWARF says
 * its unit was compiled as (*told): run in its compile directory, with its
 * options. The first when the DWARF cannot tell them apart (clang's
 * producer names no options, and a mapped prefix can hide the
 * directory). */
static size_t best_variant(const struct build *b, Dwarf *dw, size_t first, bool *told)
{
	const struct cdb_entry *const *u = b->ws.units;
	const char *producer;
	Dwarf_Attribute a;
	Dwarf_Die cu;
	size_t best = first;
	unsigned best_apart = UINT_MAX;

	*told = false;
	if (!dw || !find_binary_cu(dw, u[first], &cu))
		return first;
	producer = dwarf_formstring(dwarf_attr(&cu, DW_AT_producer, &a));
	for (size_t i = first; i < b->ws.nunits; i++) {
		unsigned apart;

		if (strcmp(u[i]->file, u[first]->file))
			continue;
		/* The directory weighs more than any count of options. */
		apart = (ran_in_comp_dir(&cu, u[i]) ? 0 : 1u << 16) +
			(producer ? options_apart(producer, u[i]) : 0);
		if (apart < best_apart)
			best = i, best_apart = apart, *told = true;
		else if (apart == best_apart)
			*told = false;
	}
	if (!*told)
		best = first;
	return best;
}

/* The file's -o argument, for messages. */
static const char *output_of(const struct cdb_entry *e)
{
	for (size_t i = 0; i + 1 < e->argc; i++)
		if (!strcmp(e->argv[i], "-o"))
			return e->argv[i + 1];
	return "its object";
}

/* The choices among a file's compile commands, for the notes: one line per
 * file when there are few, else one line for all (a header fix of a
 * libtool build brings every includer twice). */
struct variant_choices {
	struct opus_buf told, first; /* base names, ", "-separated */
	size_t ntold, nfirst;
	int err;
};

#define VARIANT_NOTES_EACH 3

static void choice_add(struct variant_choices *c, const char *file, bool told)
{
	struct opus_buf *to = told ? &c->told : &c->first;

	if (opus_buf_printf(to, "%s%s", to->len ? ", " : "", opus_base_name(file)) < 0)
		c->err = -ENOMEM;
	told ? c->ntold++ : c->nfirst++;
}

static void choices_note(struct variant_choices *c, struct build_notes *notes)
{
	if (c->ntold && !c->err)
		c->err = build_note_add(notes, BUILD_INFO, "compile commands", "units",
					"%zu files are each built by several compile commands: the "
					"one the binary's DWARF records (directory and options) is "
					"taken for %s",
					c->ntold, c->told.data);
	if (c->nfirst && !c->err)
		c->err =
		    build_note_add(notes, BUILD_INFO, "compile commands", "units",
				   "%zu files are each built by several compile commands that "
				   "the binary's DWARF does not tell apart: the first is taken "
				   "for %s",
				   c->nfirst, c->first.data);
}

static size_t variants_of(const struct build *b, size_t i)
{
	size_t n = 0;

	for (size_t j = i; j < b->ws.nunits; j++)
		n += !strcmp(b->ws.units[j]->file, b->ws.units[i]->file);
	return n;
}

int build_choose_variants(struct build *b, struct build_notes *notes)
{
	const struct cdb_entry **kept = calloc(b->ws.nunits + 1, sizeof(*kept));
	Dwarf *dw = dwarf_begin_elf(b->bin.elf, DWARF_C_READ, NULL);
	struct variant_choices c = {0};
	size_t n = 0, chosen = 0;

	for (size_t i = 0; i < b->ws.nunits; i++)
		chosen += !workspace_is_variant(&b->ws, i) && variants_of(b, i) > 1;
	for (size_t i = 0; kept && i < b->ws.nunits; i++) {
		size_t best = i, variants;
		bool told = false;

		if (workspace_is_variant(&b->ws, i))
			continue;
		if ((variants = variants_of(b, i)) > 1) {
			best = best_variant(b, dw, i, &told);
			if (chosen > VARIANT_NOTES_EACH)
				choice_add(&c, b->ws.units[i]->file, told);
			else if (!c.err)
				c.err = build_note_add(
				    notes, BUILD_INFO, opus_base_name(b->ws.units[i]->file), "unit",
				    "%zu compile commands build it: the one writing %s is taken, "
				    "%s",
				    variants, output_of(b->ws.units[best]),
				    told ? "its directory and options are those the binary's DWARF "
					   "records"
					 : "the first (the binary's DWARF does not tell them "
					   "apart)");
		}
		kept[n++] = b->ws.units[best];
	}
	choices_note(&c, notes);
	if (kept && !c.err) {
		memcpy(b->ws.units, kept, n * sizeof(*kept));
		b->ws.nunits = n;
	}
	free(kept);
	opus_buf_free(&c.told);
	opus_buf_free(&c.first);
	if (dw)
		dwarf_end(dw);
	return !kept ? -ENOMEM : c.err;
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

/* The object's first global function the binary lacks, by name and any
 * binding (a hidden function is local once linked), or NULL; *present
 * gets the first one the binary has ("" if none). */
static const char *global_missing_from_binary(const struct build *b, const struct obj *o,
					      char *present, size_t len)
{
	present[0] = '\0';
	for (size_t i = 1; i < o->nsyms; i++) {
		GElf_Sym sym;
		size_t first;

		if (!obj_sym(o, i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
		    GELF_ST_BIND(sym.st_info) == STB_LOCAL || sym.st_shndx == SHN_UNDEF)
			continue;
		if (!opus_symtab_named(&b->bin_syms, obj_sym_name(o, &sym), &first))
			return obj_sym_name(o, &sym);
		if (!present[0])
			snprintf(present, len, "%s", obj_sym_name(o, &sym));
	}
	return NULL;
}

/* The binary's DWARF gives the function func to a unit other than e's
 * (its name is a second implementation's: libssh compiles ecdh_gcrypt.c
 * or ecdh_crypto.c, each defining ssh_client_ecdh_init, as the flavour
 * has it). The other unit's name goes to other. False when the DWARF
 * names no unit at that address (code built without -g). */
static bool owned_by_other_unit(const struct build *b, Dwarf *dw, const struct cdb_entry *e,
				const char *func, char *other, size_t len)
{
	size_t first, n = opus_symtab_named(&b->bin_syms, func, &first);
	Dwarf_Attribute a;
	Dwarf_Die cu;
	const char *name;

	for (size_t k = 0; k < n; k++) {
		const struct opus_sym *s = &b->bin_syms.syms[b->bin_syms.by_name[first + k]];

		if (s->type != STT_FUNC || !dwarf_addrdie(dw, s->value, &cu))
			continue;
		if (cu_is_unit(&cu, e))
			return false;
		name = dwarf_formstring(dwarf_attr(&cu, DW_AT_name, &a));
		snprintf(other, len, "%s", name ? name : "another unit");
		return true;
	}
	return false;
}

/* Is the unit one the binary was built from? Both tests must agree before
 * it is left out: a unit compiled without -g is missing from the DWARF,
 * and one that includes another (a test that includes the library's .c)
 * has functions the binary has. Except when the DWARF gives those
 * functions to another unit: then the unit is a second implementation of
 * the same names, which the binary was not built with. */
bool build_unit_in_binary(const struct build *b, size_t unit, struct build_notes *notes)
{
	const struct cdb_entry *e = b->ws.units[unit];
	char path[256], missing[256] = "", present[256] = "", other[256];
	const char *m;
	struct obj o;
	Dwarf *dw;
	bool named = false, elsewhere = false;

	build_obj_path(b, "orig", unit, path, sizeof(path));
	if (!obj_open(path, &o)) {
		if ((m = global_missing_from_binary(b, &o, present, sizeof(present))))
			snprintf(missing, sizeof(missing), "%s", m);
		obj_close(&o);
	}
	dw = dwarf_begin_elf(b->bin.elf, DWARF_C_READ, NULL);
	if (missing[0])
		named = !dw || binary_has_unit(dw, e);
	else /* its functions' names are the binary's, unless from another unit */
		elsewhere = dw && present[0] &&
			    owned_by_other_unit(b, dw, e, present, other, sizeof(other)) &&
			    !binary_has_unit(dw, e);
	if (dw)
		dwarf_end(dw);
	if (elsewhere) {
		build_note_add(notes, BUILD_INFO, opus_base_name(e->file), "unit",
			       "not part of %s: its DWARF names no such unit, and gives %s to %s: "
			       "left out",
			       b->opts->binary, present, other);
		return false;
	}
	if (!missing[0] || named)
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
