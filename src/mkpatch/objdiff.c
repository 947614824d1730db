#include "objdiff.h"
#include "util/buf.h"
#include "util/hex.h"
#include "util/sha256.h"

#include <stdio.h>
#include <string.h>

/* A string literal referenced by a relocation, by its content. */
static void describe_string(const struct obj_scn *s, const GElf_Rela *r, char *out, size_t len)
{
	int64_t off = obj_rela_lands(s, r, 0);
	const char *data = s->data ? s->data->d_buf : NULL;

	if (!data || off < 0 || (uint64_t)off >= s->data->d_size) {
		snprintf(out, len, "str:%s+%lld", s->name, (long long)r->r_addend);
		return;
	}
	snprintf(out, len, "str:%.*s", (int)strnlen(data + off, s->data->d_size - (size_t)off),
		 data + off);
}

/* Mergeable constants (.rodata.cst*): compare the constant itself, as the
 * whole entry the reference lands in and the offset into it (a reference
 * to the second of a pair of doubles lands 8 bytes into a 16-byte entry;
 * the bytes after the entry belong to another, placed anywhere). */
static bool describe_const(const struct obj_scn *s, const GElf_Rela *r, char *out, size_t len)
{
	int64_t off = obj_rela_lands(s, r, 0);
	uint64_t size = s->sh.sh_entsize, lo;
	char hex[2 * 64 + 1];

	if (!s->data || !size || size > 64 || off < 0)
		return false;
	lo = (uint64_t)off - (uint64_t)off % size;
	if (lo + size > s->data->d_size)
		return false;
	opus_hex_encode((const uint8_t *)s->data->d_buf + lo, size, hex);
	snprintf(out, len, "const:%s+%llu", hex, (unsigned long long)((uint64_t)off - lo));
	return true;
}

/* Relocations inside [lo, hi) of section scn, by what they refer to
 * (jump tables: offsets into code; tables of pointers), fed to the digest. */
static void describe_piece_relas(const struct obj *o, size_t scn, uint64_t lo, uint64_t hi,
				 struct opus_buf *b)
{
	GElf_Rela r;
	GElf_Sym sym;

	for (size_t i = 0; obj_rela(o, scn, i, &r); i++) {
		if (r.r_offset < lo || r.r_offset >= hi || !obj_sym(o, GELF_R_SYM(r.r_info), &sym))
			continue;
		opus_buf_printf(b, "%llu %u %s+%lld;", (unsigned long long)(r.r_offset - lo),
				(unsigned)GELF_R_TYPE(r.r_info), obj_sym_name(o, &sym),
				(long long)r.r_addend);
	}
}

/* Read-only data by the content of the piece referred to (a literal, a
 * constant, a table), so that literals moving within one .rodata (-O0, no
 * mergeable sections) change nothing. */
static void describe_rodata(const struct obj *o, size_t scn, const GElf_Rela *r, char *out,
			    size_t len)
{
	const struct obj_scn *s = &o->scns[scn];
	int64_t off = obj_rela_lands(s, r, 0);
	uint8_t digest[OPUS_SHA256_LEN];
	char hex[2 * OPUS_SHA256_LEN + 1];
	struct opus_buf piece = {0};
	uint64_t lo, hi;

	if (off < 0 || (uint64_t)off > s->sh.sh_size) {
		snprintf(out, len, "ro:%s+%lld", s->name, (long long)r->r_addend);
		return;
	}
	obj_piece(o, scn, (uint64_t)off, &lo, &hi);
	if (s->data && hi <= s->data->d_size)
		opus_buf_add(&piece, (const uint8_t *)s->data->d_buf + lo, hi - lo);
	describe_piece_relas(o, scn, lo, hi, &piece);
	opus_sha256(piece.data ? piece.data : "", piece.len, digest);
	opus_buf_free(&piece);
	opus_hex_encode(digest, sizeof(digest), hex);
	/* The offset into the piece, as a PC-relative addend carries it. */
	snprintf(out, len, "ro:%lld:%s", (long long)(r->r_addend - (int64_t)lo), hex);
}

static void describe_merged(const struct obj_scn *s, const GElf_Rela *r, char *out, size_t len)
{
	if (s->sh.sh_flags & SHF_STRINGS)
		describe_string(s, r, out, len);
	else if (!describe_const(s, r, out, len))
		snprintf(out, len, "merged:%s+%lld", s->name, (long long)r->r_addend);
}

/* What a relocation refers to, independent of where things were placed. */
static void describe(const struct obj *o, const GElf_Rela *r, char *out, size_t len)
{
	GElf_Sym sym;
	const struct obj_scn *s;

	if (!obj_sym(o, GELF_R_SYM(r->r_info), &sym)) {
		snprintf(out, len, "?");
		return;
	}
	if (sym.st_shndx == SHN_UNDEF || sym.st_shndx >= o->nscn) {
		snprintf(out, len, "sym:%s+%lld", obj_sym_name(o, &sym), (long long)r->r_addend);
		return;
	}
	s = &o->scns[sym.st_shndx];
	/* Local labels into merged sections (.LC3) are numbered per compile:
	 * describe them by content, like a section-relative reference. */
	if (GELF_ST_TYPE(sym.st_info) != STT_SECTION &&
	    !(GELF_ST_BIND(sym.st_info) == STB_LOCAL && (s->sh.sh_flags & SHF_MERGE))) {
		snprintf(out, len, "sym:%s+%lld", obj_sym_name(o, &sym), (long long)r->r_addend);
		return;
	}
	if (GELF_ST_TYPE(sym.st_info) != STT_SECTION) {
		GElf_Rela adj = *r;

		adj.r_addend += (int64_t)sym.st_value;
		r = &adj;
		describe_merged(s, r, out, len);
		return;
	}
	if (s->sh.sh_flags & SHF_MERGE)
		describe_merged(s, r, out, len);
	else if (!(s->sh.sh_flags & (SHF_WRITE | SHF_EXECINSTR)))
		describe_rodata(o, sym.st_shndx, r, out, len);
	else
		snprintf(out, len, "sec:%s+%lld", s->name, (long long)r->r_addend);
}

struct func_view {
	const struct obj *o;
	size_t scn;
	uint64_t start, size;
};

static bool view_of(const struct obj *o, size_t symidx, struct func_view *v)
{
	GElf_Sym sym;

	if (!obj_sym(o, symidx, &sym) || sym.st_shndx == SHN_UNDEF || sym.st_shndx >= o->nscn)
		return false;
	v->o = o;
	v->scn = sym.st_shndx;
	v->start = sym.st_value;
	v->size = sym.st_size;
	return true;
}

static const uint8_t *view_bytes(const struct func_view *v)
{
	const Elf_Data *d = v->o->scns[v->scn].data;

	if (!d || v->start + v->size > d->d_size)
		return NULL;
	return (const uint8_t *)d->d_buf + v->start;
}

/* Relocations inside the function, in order; returns how many were seen. */
static size_t next_rela(const struct func_view *v, size_t *cursor, GElf_Rela *r)
{
	while (obj_rela(v->o, v->scn, *cursor, r)) {
		(*cursor)++;
		if (r->r_offset >= v->start && r->r_offset < v->start + v->size)
			return 1;
	}
	return 0;
}

static bool relas_equal(const struct func_view *a, const struct func_view *b)
{
	size_t ca = 0, cb = 0;
	GElf_Rela ra, rb;
	char da[1024], db[1024];

	for (;;) {
		size_t na = next_rela(a, &ca, &ra), nb = next_rela(b, &cb, &rb);

		if (na != nb)
			return false;
		if (!na)
			return true;
		if (ra.r_offset - a->start != rb.r_offset - b->start ||
		    GELF_R_TYPE(ra.r_info) != GELF_R_TYPE(rb.r_info))
			return false;
		describe(a->o, &ra, da, sizeof(da));
		describe(b->o, &rb, db, sizeof(db));
		if (strcmp(da, db))
			return false;
	}
}

enum objdiff_state objdiff_func(const struct obj *a, const struct obj *b, size_t fb)
{
	struct func_view va, vb;
	const uint8_t *ba, *bb;
	GElf_Sym sym;
	size_t fa;

	if (!obj_sym(b, fb, &sym) || !view_of(b, fb, &vb))
		return OBJDIFF_NEW;
	fa = obj_find_sym(a, obj_sym_name(b, &sym), STT_FUNC);
	if (!fa || !view_of(a, fa, &va))
		return OBJDIFF_NEW;
	if (va.size != vb.size)
		return OBJDIFF_CHANGED;
	ba = view_bytes(&va);
	bb = view_bytes(&vb);
	if (!ba || !bb || memcmp(ba, bb, va.size))
		return OBJDIFF_CHANGED;
	return relas_equal(&va, &vb) ? OBJDIFF_SAME : OBJDIFF_CHANGED;
}

/* Every function of x exists in y. */
static bool same_functions(const struct obj *x, const struct obj *y, const char **name)
{
	GElf_Sym sym;

	for (size_t i = 1; i < x->nsyms; i++) {
		if (!obj_sym(x, i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
		    sym.st_shndx == SHN_UNDEF)
			continue;
		*name = obj_sym_name(x, &sym);
		if (!obj_find_sym(y, *name, STT_FUNC))
			return false;
	}
	return true;
}

bool objdiff_same_changes(const struct obj *a1, const struct obj *b1, const struct obj *a2,
			  const struct obj *b2, const char **name)
{
	GElf_Sym sym;

	if (!same_functions(a1, a2, name) || !same_functions(a2, a1, name) ||
	    !same_functions(b1, b2, name) || !same_functions(b2, b1, name))
		return false;
	for (size_t i = 1; i < b1->nsyms; i++) {
		if (!obj_sym(b1, i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
		    sym.st_shndx == SHN_UNDEF)
			continue;
		*name = obj_sym_name(b1, &sym);
		if (objdiff_func(a1, b1, i) !=
		    objdiff_func(a2, b2, obj_find_sym(b2, *name, STT_FUNC)))
			return false;
	}
	*name = NULL;
	return true;
}

static int32_t read_imm32(const uint8_t *p)
{
	int32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

bool objdiff_only_lines(const struct obj *a, const struct obj *b, size_t fb, objdiff_line_map map,
			void *ctx)
{
	struct func_view va, vb;
	const uint8_t *ba, *bb;
	bool any = false;
	GElf_Sym sym;
	size_t fa;

	if (!obj_sym(b, fb, &sym) || !view_of(b, fb, &vb))
		return false;
	fa = obj_find_sym(a, obj_sym_name(b, &sym), STT_FUNC);
	if (!fa || !view_of(a, fa, &va) || va.size != vb.size || !relas_equal(&va, &vb))
		return false;
	ba = view_bytes(&va);
	bb = view_bytes(&vb);
	if (!ba || !bb)
		return false;
	for (size_t i = 0; i < va.size;) {
		int new_line;

		if (ba[i] == bb[i]) {
			i++;
			continue;
		}
		if (i + 4 > va.size || read_imm32(ba + i) <= 0 ||
		    !map(ctx, read_imm32(ba + i), &new_line) || new_line != read_imm32(bb + i))
			return false;
		any = true;
		i += 4;
	}
	return any;
}
