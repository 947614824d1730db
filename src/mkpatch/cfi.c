/* The unwind tables of the code a patch carries: each FDE of the compiled
 * object whose code went into the patch, with the CIE it names, appended to
 * the patch's one .eh_frame section, its start relocated to the copy. Laid
 * out with the code, they let the stack check unwind through a frame in a
 * patch (live/unwind.c) instead of scanning the rest of that stack, where
 * a stale word that looks like a return address into a patch held up an
 * nginx revert for its whole timeout.
 *
 * An entry is taken only when nothing in it but an FDE's start is
 * relocated: a CIE with a personality routine or an FDE with an LSDA
 * (C++ exceptions) is left out, and its code is scanned as before. */
#include "assemble_ctx.h"
#include "util/err.h"
#include "util/file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FDE_START 8 /* length, CIE pointer, then the FDE's initial location */
#define NO_CIE	  UINT64_MAX

static uint32_t le32(const uint8_t *b)
{
	uint32_t v;

	memcpy(&v, b, sizeof(v));
	return v;
}

/* The patch's .eh_frame, made on first use. */
static int cfi_section(struct opatch *p)
{
	int i = opatch_find_section(p, OPATCH_CFI_SECTION);

	return i >= 0
		   ? i
		   : opatch_add_section(p, OPATCH_CFI_SECTION, SHT_PROGBITS, SHF_ALLOC, 8, NULL, 0);
}

/* The object's .eh_frame: its bytes, and its relocations sorted by offset
 * (read once: each entry looks up its own). */
struct eh_frame {
	const uint8_t *b;
	size_t size;
	GElf_Rela *relas;
	size_t nrelas;
};

static int eh_frame_read(const struct obj *o, size_t scn, struct eh_frame *f)
{
	size_t n = 0;
	GElf_Rela r;

	while (obj_rela(o, scn, n, &r))
		n++;
	*f = (struct eh_frame){.b = o->scns[scn].data->d_buf,
			       .size = o->scns[scn].data->d_size,
			       .relas = malloc((n + 1) * sizeof(*f->relas)),
			       .nrelas = n};
	if (!f->relas)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		obj_rela(o, scn, i, &f->relas[i]);
	/* r_offset is a GElf_Rela's first member. */
	qsort(f->relas, n, sizeof(*f->relas), opus_cmp_u64);
	return 0;
}

/* The relocations that fall in [lo, hi): how many, the first at *first. */
static size_t relas_in(const struct eh_frame *f, uint64_t lo, uint64_t hi, const GElf_Rela **first)
{
	size_t a = opus_lower_bound_u64(f->relas, f->nrelas, sizeof(*f->relas), lo), n = 0;

	*first = &f->relas[a];
	while (a + n < f->nrelas && f->relas[a + n].r_offset < hi)
		n++;
	return n;
}

/* The patch symbol an FDE's start relocation r leads to, if its code was
 * copied in by this assembly; -1 otherwise. */
static int fde_code_sym(const struct asm_ctx *c, const GElf_Rela *r)
{
	GElf_Sym sym;
	size_t idx = GELF_R_SYM(r->r_info);

	if (GELF_R_TYPE(r->r_info) != R_X86_64_PC32 || !obj_sym(c->o, idx, &sym) ||
	    sym.st_shndx == SHN_UNDEF || sym.st_shndx >= c->o->nscn ||
	    c->scn_idx[sym.st_shndx] < 0 || !(c->o->scns[sym.st_shndx].sh.sh_flags & SHF_EXECINSTR))
		return -1;
	if (GELF_ST_TYPE(sym.st_info) == STT_SECTION)
		return c->scn_sym[sym.st_shndx];
	return c->sym_map[idx] >= 0 ? c->sym_map[idx] : -1;
}

static int append(struct opatch_section *s, const uint8_t *b, size_t len, uint64_t *at)
{
	uint8_t *d = realloc(s->data, s->size + len);

	if (!d)
		return -ENOMEM;
	memcpy(d + s->size, b, len);
	s->data = d;
	*at = s->size;
	s->size += len;
	return 0;
}

/* The object's CIEs copied so far: where each went in the patch. */
struct cies {
	struct cie_copy {
		uint64_t from, to;
	} * v;
	size_t n, cap;
};

/* Where the object's CIE at off went in the patch, in *to, copying it there
 * the first time; *to NO_CIE if it cannot be taken (relocated: a
 * personality). */
static int copy_cie(const struct eh_frame *f, struct opatch_section *out, struct cies *cs,
		    uint64_t off, uint64_t *to)
{
	const GElf_Rela *first;
	uint64_t len;
	int ret;

	*to = NO_CIE;
	for (size_t i = 0; i < cs->n; i++)
		if (cs->v[i].from == off)
			return (*to = cs->v[i].to), 0;
	if (off + 8 > f->size || (len = le32(f->b + off)) == 0 || len == 0xffffffffu ||
	    off + 4 + len > f->size || relas_in(f, off, off + 4 + len, &first))
		return 0;
	if (OPUS_PUSH(cs->v, cs->n, cs->cap) || (ret = append(out, f->b + off, 4 + len, to)))
		return -ENOMEM;
	cs->v[cs->n++] = (struct cie_copy){off, *to};
	return 0;
}

/* One FDE at off of length 4 + len: copied with its CIE if its code is the
 * patch's and nothing else of it is relocated. */
static int copy_fde(struct asm_ctx *c, const struct eh_frame *f, int *pscn, struct cies *cs,
		    uint64_t off, uint64_t len)
{
	const uint8_t *b = f->b + off;
	struct opatch_section *out;
	const GElf_Rela *r;
	uint64_t cie_to, at;
	uint32_t back;
	int sym, ret;

	if (relas_in(f, off, off + 4 + len, &r) != 1 || r->r_offset != off + FDE_START ||
	    (sym = fde_code_sym(c, r)) < 0)
		return 0;
	if (*pscn < 0 && (*pscn = cfi_section(c->p)) < 0)
		return *pscn;
	out = &c->p->sections[*pscn];
	if ((ret = copy_cie(f, out, cs, off + 4 - le32(b + 4), &cie_to)) || cie_to == NO_CIE)
		return ret;
	if ((ret = append(out, b, 4 + len, &at)))
		return ret;
	/* The CIE pointer counts back from its own field. */
	back = (uint32_t)(at + 4 - cie_to);
	memcpy(out->data + at + 4, &back, sizeof(back));
	return opatch_add_rela(c->p, (uint32_t)*pscn,
			       &(struct opatch_rela){.offset = at + FDE_START,
						     .type = R_X86_64_PC32,
						     .sym = (uint32_t)sym,
						     .addend = r->r_addend}) < 0
		   ? -ENOMEM
		   : 0;
}

int asm_add_cfi(struct asm_ctx *c)
{
	size_t scn = obj_find_scn(c->o, OPATCH_CFI_SECTION);
	struct cies cs = {0};
	struct eh_frame f;
	int pscn = -1, ret;

	if (!scn)
		return 0;
	if ((ret = eh_frame_read(c->o, scn, &f)))
		return ret;
	for (uint64_t off = 0, len; !ret && off + 8 <= f.size; off += 4 + len) {
		len = le32(f.b + off);
		if (len == 0 || len == 0xffffffffu || off + 4 + len > f.size)
			break;
		if (le32(f.b + off + 4) == 0)
			continue; /* a CIE: copied with its first FDE */
		ret = copy_fde(c, &f, &pscn, &cs, off, len);
	}
	free(f.relas);
	free(cs.v);
	return ret;
}
