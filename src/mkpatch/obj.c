#include "obj.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int load_sections(struct obj *o)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	if (elf_getshdrnum(o->e.elf, &o->nscn) || elf_getshdrstrndx(o->e.elf, &shstrndx))
		return opus_err(-EINVAL, "%s: bad section headers", o->path);
	o->scns = calloc(o->nscn, sizeof(*o->scns));
	if (!o->scns)
		return -ENOMEM;
	while ((scn = elf_nextscn(o->e.elf, scn))) {
		struct obj_scn *s = &o->scns[elf_ndxscn(scn)];

		gelf_getshdr(scn, &s->sh);
		s->name = elf_strptr(o->e.elf, shstrndx, s->sh.sh_name);
		if (!s->name)
			s->name = "";
		if (s->sh.sh_type != SHT_NOBITS)
			s->data = elf_getdata(scn, NULL);
		if (s->sh.sh_type == SHT_SYMTAB) {
			o->symdata = s->data;
			o->nsyms = s->sh.sh_size / sizeof(Elf64_Sym);
			o->symstr = s->sh.sh_link;
		}
	}
	for (size_t i = 1; i < o->nscn; i++) {
		struct obj_scn *s = &o->scns[i];

		if (s->sh.sh_type == SHT_RELA && s->sh.sh_info < o->nscn) {
			o->scns[s->sh.sh_info].rela = s->data;
			o->scns[s->sh.sh_info].nrela = s->sh.sh_size / sizeof(Elf64_Rela);
		}
	}
	if (!o->symdata)
		return opus_err(-EINVAL, "%s: no symbol table", o->path);
	return 0;
}

/* Sections whose pieces are compared by content: read-only data that is
 * neither code nor a mergeable section (which has its own entry sizes). */
static bool has_pieces(const struct obj_scn *s)
{
	return (s->sh.sh_flags & SHF_ALLOC) &&
	       !(s->sh.sh_flags & (SHF_WRITE | SHF_EXECINSTR | SHF_MERGE)) &&
	       s->sh.sh_type == SHT_PROGBITS;
}

static int add_cut(struct obj_scn *s, uint64_t off, size_t *cap)
{
	if (off > s->sh.sh_size)
		return 0;
	if (OPUS_PUSH(s->cuts, s->ncuts, *cap))
		return -ENOMEM;
	s->cuts[s->ncuts++] = off;
	return 0;
}

static int find_cuts(struct obj *o)
{
	size_t *cap = calloc(o->nscn, sizeof(*cap));
	GElf_Sym sym;
	GElf_Rela r;
	int ret = cap ? 0 : -ENOMEM;

	for (size_t i = 1; !ret && i < o->nsyms; i++)
		if (obj_sym(o, i, &sym) && sym.st_shndx < o->nscn &&
		    has_pieces(&o->scns[sym.st_shndx]) && GELF_ST_TYPE(sym.st_info) != STT_SECTION)
			ret = add_cut(&o->scns[sym.st_shndx], sym.st_value, &cap[sym.st_shndx]);
	for (size_t s = 1; !ret && s < o->nscn; s++)
		for (size_t i = 0; !ret && obj_rela(o, s, i, &r); i++) {
			int64_t off;

			if (!obj_sym(o, GELF_R_SYM(r.r_info), &sym) || sym.st_shndx >= o->nscn ||
			    !has_pieces(&o->scns[sym.st_shndx]))
				continue;
			off = obj_rela_lands(
			    &o->scns[sym.st_shndx], &r,
			    GELF_ST_TYPE(sym.st_info) != STT_SECTION ? (int64_t)sym.st_value : 0);
			if (off >= 0)
				ret = add_cut(&o->scns[sym.st_shndx], (uint64_t)off,
					      &cap[sym.st_shndx]);
		}
	for (size_t s = 1; !ret && s < o->nscn; s++) {
		struct obj_scn *x = &o->scns[s];

		if (!has_pieces(x) || (ret = add_cut(x, x->sh.sh_size, &cap[s])))
			continue;
		qsort(x->cuts, x->ncuts, sizeof(*x->cuts), opus_cmp_u64);
	}
	free(cap);
	return ret;
}

/* by_scn: a counting sort of the symbols by section. */
static int index_by_section(struct obj *o)
{
	GElf_Sym sym;

	o->scn_start = calloc(o->nscn + 2, sizeof(*o->scn_start));
	o->by_scn = calloc(o->nsyms ? o->nsyms : 1, sizeof(*o->by_scn));
	if (!o->scn_start || !o->by_scn)
		return -ENOMEM;
	for (size_t i = 1; i < o->nsyms; i++)
		if (obj_sym(o, i, &sym) && sym.st_shndx < o->nscn)
			o->scn_start[sym.st_shndx + 2]++;
	for (size_t s = 2; s < o->nscn + 2; s++)
		o->scn_start[s] += o->scn_start[s - 1];
	/* scn_start[s + 1] is now where section s's run begins: fill it,
	 * and it ends up where section s + 1's begins. */
	for (size_t i = 1; i < o->nsyms; i++)
		if (obj_sym(o, i, &sym) && sym.st_shndx < o->nscn)
			o->by_scn[o->scn_start[sym.st_shndx + 1]++] = i;
	return 0;
}

static int cmp_named(const void *a, const void *b, void *ctx)
{
	const struct obj *o = ctx;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	GElf_Sym sx, sy;
	int c;

	obj_sym(o, x, &sx);
	obj_sym(o, y, &sy);
	c = strcmp(obj_sym_name(o, &sx), obj_sym_name(o, &sy));
	return c ? c : (x > y) - (x < y);
}

/* by_name: the defined symbols that have a name, sorted by it. */
static int index_by_name(struct obj *o)
{
	GElf_Sym sym;

	o->by_name = calloc(o->nsyms ? o->nsyms : 1, sizeof(*o->by_name));
	if (!o->by_name)
		return -ENOMEM;
	for (size_t i = 1; i < o->nsyms; i++)
		if (obj_sym(o, i, &sym) && sym.st_shndx != SHN_UNDEF &&
		    GELF_ST_TYPE(sym.st_info) != STT_SECTION &&
		    GELF_ST_TYPE(sym.st_info) != STT_FILE)
			o->by_name[o->nnamed++] = i;
	qsort_r(o->by_name, o->nnamed, sizeof(*o->by_name), cmp_named, o);
	return 0;
}

void obj_piece(const struct obj *o, size_t scn, uint64_t off, uint64_t *lo, uint64_t *hi)
{
	const struct obj_scn *s = &o->scns[scn];
	const uint8_t *d = s->data ? s->data->d_buf : NULL;
	size_t sym;
	GElf_Sym object;

	/* A named object is itself. */
	if ((sym = obj_sym_in_scn(o, scn, (long)off, STT_OBJECT)) && obj_sym(o, sym, &object) &&
	    object.st_size) {
		*lo = object.st_value;
		*hi = object.st_value + object.st_size;
		return;
	}
	*lo = off;
	*hi = s->sh.sh_size > off ? s->sh.sh_size : off;
	for (size_t i = 0; i < s->ncuts; i++)
		if (s->cuts[i] > off) {
			*hi = s->cuts[i];
			break;
		}
	/* An anonymous literal ends before the alignment padding that follows
	 * it, whose length depends on where it happened to land. */
	while (d && *hi > *lo + 1 && *hi <= s->data->d_size && !d[*hi - 1] && !d[*hi - 2])
		(*hi)--;
}

/* How far past off a PC-relative reference into s, a section of mergeable
 * constants, really lands: the bytes of an immediate after its
 * displacement (a vector compare's predicate, a shuffle's pattern), which
 * the addend counts in and nothing in the object records. Constants are
 * read at multiples of 4 bytes (of their size, if smaller): a place 1 or 2
 * short of one is taken for an imm8 or imm16. 0 for any other section. */
static int64_t const_imm(const struct obj_scn *s, int64_t off)
{
	uint64_t align = s->sh.sh_entsize < 4 ? s->sh.sh_entsize : 4;

	if (!(s->sh.sh_flags & SHF_MERGE) || (s->sh.sh_flags & SHF_STRINGS) || align < 2)
		return 0;
	return (int64_t)((align - (uint64_t)off % align) % align);
}

int64_t obj_rela_lands(const struct obj_scn *s, const GElf_Rela *r, int64_t base)
{
	int64_t off = base + r->r_addend;

	if (!obj_rela_is_pcrel((uint32_t)GELF_R_TYPE(r->r_info)))
		return off;
	return off + 4 + const_imm(s, off + 4);
}

int obj_open(const char *path, struct obj *o)
{
	GElf_Sym sym;
	int ret;

	memset(o, 0, sizeof(*o));
	o->e.fd = -1;
	o->path = strdup(path);
	if (!o->path)
		return -ENOMEM;
	ret = opus_elf_open(path, &o->e);
	if (!ret)
		ret = load_sections(o);
	for (size_t i = 1; !ret && i < o->nsyms; i++)
		if (obj_sym(o, i, &sym) && GELF_ST_TYPE(sym.st_info) == STT_FILE) {
			o->file = obj_sym_name(o, &sym);
			break;
		}
	if (!ret && !o->file)
		o->file = "";
	if (!ret)
		ret = index_by_section(o) ?: index_by_name(o);
	if (!ret)
		ret = find_cuts(o);
	if (ret)
		obj_close(o);
	return ret;
}

void obj_close(struct obj *o)
{
	for (size_t i = 0; o->scns && i < o->nscn; i++)
		free(o->scns[i].cuts);
	opus_elf_close(&o->e);
	free(o->by_scn);
	free(o->scn_start);
	free(o->by_name);
	free(o->scns);
	free(o->path);
	memset(o, 0, sizeof(*o));
}

bool obj_sym(const struct obj *o, size_t idx, GElf_Sym *sym)
{
	return idx < o->nsyms && gelf_getsym(o->symdata, (int)idx, sym);
}

const char *obj_sym_name(const struct obj *o, const GElf_Sym *sym)
{
	const char *n;

	if (GELF_ST_TYPE(sym->st_info) == STT_SECTION && sym->st_shndx < o->nscn)
		return o->scns[sym->st_shndx].name;
	n = elf_strptr(o->e.elf, o->symstr, sym->st_name);
	return n ? n : "";
}

bool obj_rela(const struct obj *o, size_t scn, size_t i, GElf_Rela *r)
{
	return o->scns[scn].rela && i < o->scns[scn].nrela &&
	       gelf_getrela(o->scns[scn].rela, (int)i, r);
}

const size_t *obj_scn_syms(const struct obj *o, size_t scn, size_t *n)
{
	if (scn >= o->nscn) {
		*n = 0;
		return o->by_scn;
	}
	*n = o->scn_start[scn + 1] - o->scn_start[scn];
	return o->by_scn + o->scn_start[scn];
}

size_t obj_find_sym(const struct obj *o, const char *name, int type)
{
	size_t lo = 0, hi = o->nnamed;
	GElf_Sym sym;

	/* The first of name's run; then the first of the type in it. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		obj_sym(o, o->by_name[mid], &sym);
		if (strcmp(obj_sym_name(o, &sym), name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < o->nnamed; lo++) {
		obj_sym(o, o->by_name[lo], &sym);
		if (strcmp(obj_sym_name(o, &sym), name))
			break;
		if (GELF_ST_TYPE(sym.st_info) == type)
			return o->by_name[lo];
	}
	return 0;
}

size_t obj_sym_in_scn(const struct obj *o, size_t scn, long off, int type)
{
	size_t n;
	const size_t *v = obj_scn_syms(o, scn, &n);
	GElf_Sym sym;

	for (size_t k = 0; k < n; k++) {
		if (!obj_sym(o, v[k], &sym) || GELF_ST_TYPE(sym.st_info) != type)
			continue;
		if (off < 0 || ((uint64_t)off >= sym.st_value &&
				(uint64_t)off < sym.st_value + (sym.st_size ? sym.st_size : 1)))
			return v[k];
	}
	return 0;
}

bool obj_is_cold_name(const char *name)
{
	const char *c = strstr(name, ".cold");

	return c && (c[5] == '\0' || c[5] == '.');
}

bool obj_rela_is_pcrel(uint32_t type)
{
	return type == R_X86_64_PC32 || type == R_X86_64_PLT32 || type == R_X86_64_GOTPCREL ||
	       type == R_X86_64_GOTPCRELX || type == R_X86_64_REX_GOTPCRELX;
}

bool obj_rela_is_direct(uint32_t type)
{
	return type == R_X86_64_PC32 || type == R_X86_64_32 || type == R_X86_64_32S;
}

bool obj_rela_is_tls(uint32_t type)
{
	switch (type) {
	case R_X86_64_TPOFF32:
	case R_X86_64_TPOFF64:
	case R_X86_64_GOTTPOFF:
	case R_X86_64_TLSGD:
	case R_X86_64_TLSLD:
	case R_X86_64_DTPOFF32:
	case R_X86_64_DTPOFF64:
	case R_X86_64_GOTPC32_TLSDESC:
	case R_X86_64_TLSDESC_CALL:
		return true;
	default:
		return false;
	}
}

size_t obj_find_scn(const struct obj *o, const char *name)
{
	for (size_t s = 1; s < o->nscn; s++)
		if (o->scns[s].name && !strcmp(o->scns[s].name, name) && o->scns[s].data)
			return s;
	return 0;
}

bool obj_built_by_gcc(const struct obj *o)
{
	size_t s = obj_find_scn(o, ".comment");

	return s && memmem(o->scns[s].data->d_buf, o->scns[s].data->d_size, "GCC:", 4) != NULL;
}

bool obj_scn_holds_state(const struct obj_scn *s)
{
	return (s->sh.sh_flags & SHF_WRITE) && !(s->sh.sh_flags & SHF_TLS) &&
	       (!s->name || strncmp(s->name, ".data.rel.ro", 12));
}
