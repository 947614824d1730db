#include "build_ctx.h"
#include "bind.h"
#include "util/err.h"
#include "util/file.h"
#include "util/sha256.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The as-built compiles of the units, opened, and the line moves of the
 * earlier patches (one diff_files per patch of --after, oldest first). */
struct bases {
	struct obj *v;
	size_t n;
	struct diff_files *moves;
	size_t nmoves;
};

static int open_bases(const struct build *b, const char *tag, struct bases *bs)
{
	char path[256];
	int ret = 0;

	bs->v = calloc(b->ws.nunits + 1, sizeof(*bs->v));
	if (!bs->v)
		return -ENOMEM;
	for (bs->n = 0; !ret && bs->n < b->ws.nunits; bs->n += !ret) {
		build_obj_path(b, tag, bs->n, path, sizeof(path));
		ret = obj_open(path, &bs->v[bs->n]);
	}
	return ret;
}

static int read_moves(const struct build *b, struct bases *bs)
{
	int ret = 0;

	bs->moves = calloc(b->opts->nafter + 1, sizeof(*bs->moves));
	if (!bs->moves)
		return -ENOMEM;
	for (; !ret && bs->nmoves < b->opts->nafter; bs->nmoves += !ret)
		ret =
		    diff_files_from_line_map(b->after[bs->nmoves].line_map, &bs->moves[bs->nmoves]);
	return ret;
}

static void close_bases(struct bases *bs)
{
	for (size_t i = 0; i < bs->n; i++)
		obj_close(&bs->v[i]);
	for (size_t i = 0; i < bs->nmoves; i++)
		diff_files_free(&bs->moves[i]);
	free(bs->moves);
	free(bs->v);
}

/* Each earlier patch's hunks in the source of unit (NULL where it has
 * none), into steps (nmoves entries). */
static void moves_of_unit(const struct build *b, const struct bases *bs, size_t unit,
			  const struct diff_file **steps)
{
	const char *path = workspace_in_tree(&b->ws, b->ws.units[unit]->file);

	for (size_t i = 0; i < bs->nmoves; i++) {
		steps[i] = NULL;
		for (size_t k = 0; path && k < bs->moves[i].n; k++)
			if (!strcmp(path, bs->moves[i].v[k].path))
				steps[i] = &bs->moves[i].v[k];
	}
}

/* The binary's symbol named name at value, or NULL. */
static const struct opus_sym *bin_sym_at(const struct build *b, const char *name, uint64_t value)
{
	size_t first, n = opus_symtab_named(&b->bin_syms, name, &first);

	for (size_t k = 0; k < n; k++) {
		const struct opus_sym *s = &b->bin_syms.syms[b->bin_syms.by_name[first + k]];

		if (s->value == value && s->shndx != SHN_UNDEF && opus_sym_name_eq(s->name, name))
			return s;
	}
	return NULL;
}

/* The as-built compile among bs that defines the binary's symbol s (of
 * type type), and the index of its symbol there; 0 if none does. */
static size_t base_defining(const struct bases *bs, const struct opus_sym *s, int type,
			    const struct obj **o)
{
	/* A static is filed under its source file; a hidden global is made
	 * local by the link and filed under none. */
	bool is_static = s->bind == STB_LOCAL && s->file && s->file[0];

	for (size_t i = 0; i < bs->n; i++) {
		size_t k = obj_find_sym(&bs->v[i], s->name, type);
		GElf_Sym ks;

		if (!k || !obj_sym(&bs->v[i], k, &ks) ||
		    is_static != (GELF_ST_BIND(ks.st_info) == STB_LOCAL))
			continue;
		if (is_static && strcmp(opus_base_name(s->file), opus_base_name(bs->v[i].file)))
			continue;
		*o = &bs->v[i];
		return k;
	}
	return 0;
}

const struct opatch_func *build_replaced_before(const struct build *b, uint64_t addr,
						const struct opatch **by)
{
	for (size_t i = b->opts->nafter; i-- > 0;)
		for (size_t k = 0; k < b->after[i].nfuncs; k++)
			if (b->after[i].funcs[k].old_addr == addr) {
				*by = &b->after[i];
				return &b->after[i].funcs[k];
			}
	return NULL;
}

/* One function of a touched unit that the patch replaces or calls: what the
 * tree compiles to is what runs there, the binary's code or an earlier
 * patch's. */
static int check_func(const struct build *b, const struct bind_bin *bin, const struct bases *base,
		      const struct bases *orig, const struct opus_sym *s)
{
	const struct opatch *by = NULL;
	const struct opatch_func *f = build_replaced_before(b, s->value, &by);
	const struct obj *o = NULL;
	size_t k = base_defining(f ? orig : base, s, STT_FUNC, &o);
	const struct diff_file *steps[base->nmoves + 1];
	struct bind_lines lines = {steps, base->nmoves};

	if (!k)
		return 0;
	if (f)
		return bind_check_patched(o, k, by, f);
	moves_of_unit(b, base, (size_t)(o - base->v), steps);
	return bind_check_func(bin, o, k, s, &lines);
}

/* Which symbols the new code refers to. The copies of old code are left
 * out: they bind as the original does, so what they call needs no proof. */
static bool *new_code_refs(const struct opatch *p)
{
	bool *used = calloc(p->nsyms + 1, sizeof(*used));

	for (size_t s = 0; used && s < p->nsections; s++)
		for (size_t r = 0;
		     !opatch_is_old_copy(p->sections[s].name) && r < p->sections[s].nrelas; r++)
			used[p->sections[s].relas[r].sym] = true;
	return used;
}

/* Every function the patch replaces, and every function or variable of a
 * touched unit its code binds to, is in the binary what the unit compiles
 * to with its own flags. */
static int check_binding(struct build *b, const struct bases *base, const struct bases *orig)
{
	struct bind_bin bin = {b->bin.elf, &b->bin_syms};
	const struct opatch *p = &b->patch;
	bool *used = new_code_refs(p);
	const struct obj *o;
	int ret = used ? 0 : -ENOMEM;

	for (size_t i = 0; !ret && i < p->nfuncs; i++) {
		const struct opus_sym *s = bin_sym_at(b, p->funcs[i].name, p->funcs[i].old_addr);

		build_progress(b, "functions checked against the binary", i, p->nfuncs);
		if (!s || !base_defining(base, s, STT_FUNC, &o))
			ret = opus_err(-EINVAL,
				       "%s: the binary has it at 0x%" PRIx64
				       " but no compile of the changed units does",
				       p->funcs[i].name, p->funcs[i].old_addr);
		else
			ret = check_func(b, &bin, base, orig, s);
	}
	for (size_t i = 0; !ret && i < p->nsyms; i++) {
		const struct opatch_sym *t = &p->syms[i];
		const struct opus_sym *s;
		size_t k;

		if (t->kind != OPATCH_SYM_TARGET || !used[i] ||
		    !(s = bin_sym_at(b, t->name, t->value)))
			continue;
		if (t->type == STT_FUNC)
			ret = check_func(b, &bin, base, orig, s);
		else if (t->type == STT_OBJECT && (k = base_defining(base, s, STT_OBJECT, &o)))
			ret = bind_check_object(o, k, s);
	}
	free(used);
	return ret;
}

/* What apply expects to find in the process at each replaced function. */
static int record_old_code(struct build *b)
{
	for (size_t i = 0; i < b->patch.nfuncs; i++) {
		struct opatch_func *f = &b->patch.funcs[i];
		uint8_t *code = malloc(f->old_size + 1);
		int ret = code ? opus_elf_read_vaddr(b->bin.elf, f->old_addr, code, f->old_size)
			       : -ENOMEM;

		if (!ret)
			opus_sha256(code, f->old_size, f->old_sha256);
		free(code);
		if (ret)
			return opus_err(ret == -ENOMEM ? ret : -EINVAL,
					"%s: no code for %s at 0x%" PRIx64, b->opts->binary,
					f->name, f->old_addr);
	}
	return 0;
}

int build_bind_content(struct build *b)
{
	struct bases bases = {0}, origs = {0};
	int ret = open_bases(b, "base", &bases);

	if (!ret)
		ret = read_moves(b, &bases);
	if (!ret)
		ret = open_bases(b, "orig", &origs);
	if (!ret)
		ret = check_binding(b, &bases, &origs);
	close_bases(&bases);
	close_bases(&origs);
	return ret ? ret : record_old_code(b);
}
