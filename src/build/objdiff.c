#include "objdiff.h"
#include "util/hex.h"
#include "util/sha256.h"

#include <stdio.h>
#include <string.h>

/* Where in its section a relocation points: PC-relative references point
 * 4 bytes short (the displacement precedes the next instruction). */
static int64_t referenced_offset(const GElf_Rela *r)
{
	return r->r_addend + (obj_rela_is_pcrel((uint32_t)GELF_R_TYPE(r->r_info)) ? 4 : 0);
}

/* A string literal referenced by a relocation, by its content. */
static void describe_string(const struct obj_scn *s, const GElf_Rela *r, char *out, size_t len)
{
	int64_t off = referenced_offset(r);
	const char *data = s->data ? s->data->d_buf : NULL;

	if (!data || off < 0 || (uint64_t)off >= s->data->d_size) {
		snprintf(out, len, "str:%s+%lld", s->name, (long long)r->r_addend);
		return;
	}
	snprintf(out, len, "str:%.*s", (int)strnlen(data + off, s->data->d_size - (size_t)off),
		 data + off);
}

/* Mergeable constants (.rodata.cst*): compare the constant itself. */
static bool describe_const(const struct obj_scn *s, const GElf_Rela *r, char *out, size_t len)
{
	int64_t off = referenced_offset(r);
	uint64_t size = s->sh.sh_entsize;
	char hex[2 * 64 + 1];

	if (!s->data || !size || size > 64 || off < 0 || (uint64_t)off + size > s->data->d_size)
		return false;
	opus_hex_encode((const uint8_t *)s->data->d_buf + off, size, hex);
	snprintf(out, len, "const:%s", hex);
	return true;
}

static void describe_rodata(const struct obj_scn *s, const GElf_Rela *r, char *out, size_t len)
{
	uint8_t digest[OPUS_SHA256_LEN];
	char hex[2 * OPUS_SHA256_LEN + 1];

	opus_sha256(s->data ? s->data->d_buf : "", s->data ? s->data->d_size : 0, digest);
	opus_hex_encode(digest, sizeof(digest), hex);
	snprintf(out, len, "ro:%s+%lld:%s", s->name, (long long)r->r_addend, hex);
}

static void describe_merged(const struct obj_scn *s, const GElf_Rela *r, char *out, size_t len)
{
	if (s->sh.sh_flags & SHF_STRINGS)
		describe_string(s, r, out, len);
	else if (!describe_const(s, r, out, len))
		describe_rodata(s, r, out, len);
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
		describe_rodata(s, r, out, len);
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
