/* The binary's own copies of the new code's constants.
 *
 * A literal, a constant or a table of addresses (a struct of handlers, a
 * list of names) that the new code refers to, and that the running binary
 * already holds with the same bytes and the same addresses inside, is
 * bound to the binary's copy instead of travelling in the patch. A pointer
 * to it that the program keeps (a parser's encoding table, an error
 * string) then stays valid once the patch is reverted and unmapped: revert
 * refuses to unmap memory the program still points into.
 *
 * A table's addresses are compared where they lead in the binary: each
 * relocation inside it is resolved as the patch would resolve it, and must
 * lead to the binary's own function or data. In a position-independent
 * binary those words are rewritten at load time, so the binary's copy must
 * carry a relative relocation at exactly those words and none elsewhere:
 * the bytes the file holds there are then the ones the process sees, plus
 * the load address. */
#include "assemble_ctx.h"
#include "util/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool wanted_section(const GElf_Shdr *sh, const char *name)
{
	if (sh->sh_type != SHT_PROGBITS || !(sh->sh_flags & SHF_ALLOC) ||
	    (sh->sh_flags & SHF_EXECINSTR))
		return false;
	if (!strncmp(name, ".data.rel.ro", 12))
		return true; /* written by the loader only, read-only after */
	return !(sh->sh_flags & SHF_WRITE) && !strncmp(name, ".rodata", 7);
}

static int by_offset(const void *a, const void *b)
{
	const struct bin_dyn_rel *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Every load-time relocation of the binary, by offset. */
static void load_dyn_rels(struct bin_consts *b, Elf_Scn *scn, const GElf_Shdr *sh)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	size_t n = d && sh->sh_entsize ? d->d_size / sh->sh_entsize : 0;
	GElf_Rela r;

	for (size_t i = 0; i < n && gelf_getrela(d, (int)i, &r); i++) {
		if (OPUS_PUSH(b->dyn, b->ndyn, b->dyn_cap))
			return;
		b->dyn[b->ndyn++] =
		    (struct bin_dyn_rel){r.r_offset, GELF_R_TYPE(r.r_info) == R_X86_64_RELATIVE};
	}
}

static void load_consts(struct bin_consts *b, Elf *e)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;
	GElf_Ehdr eh;
	GElf_Shdr sh;

	b->loaded = true;
	if (!e || elf_getshdrstrndx(e, &shstrndx) || !gelf_getehdr(e, &eh))
		return;
	b->pic = eh.e_type == ET_DYN;
	while ((scn = elf_nextscn(e, scn))) {
		const char *n;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_RELA && (sh.sh_flags & SHF_ALLOC)) {
			load_dyn_rels(b, scn, &sh);
			continue;
		}
		if (!(n = elf_strptr(e, shstrndx, sh.sh_name)) || !wanted_section(&sh, n) ||
		    !(d = elf_getdata(scn, NULL)) || !d->d_buf ||
		    OPUS_PUSH(b->scns, b->nscns, b->scns_cap))
			continue;
		b->scns[b->nscns++] = (struct bin_const_scn){sh.sh_addr, d->d_buf, d->d_size};
	}
	qsort(b->dyn, b->ndyn, sizeof(*b->dyn), by_offset);
}

void asm_consts_free(struct bin_consts *b)
{
	free(b->scns);
	free(b->dyn);
}

/* Are the binary's load-time relocations in [a, a + n) exactly relative
 * ones at a + slot[0..nslots)? */
static bool relocated_at(const struct bin_consts *b, uint64_t a, size_t n, const uint64_t *slot,
			 size_t nslots)
{
	size_t lo = opus_lower_bound_u64(b->dyn, b->ndyn, sizeof(*b->dyn), a), k = 0;

	for (; lo < b->ndyn && b->dyn[lo].off < a + n; lo++, k++)
		if (k >= nslots || b->dyn[lo].off != a + slot[k] || !b->dyn[lo].relative)
			return false;
	return k == nslots;
}

/* The binary's address of the piece want (n bytes, at an address congruent
 * to want_at modulo align: the compiler may rely on its alignment), with
 * the addresses at slot[] relocated at load time when the binary is
 * position-independent. */
static bool find_in_binary(struct asm_ctx *c, const uint8_t *want, size_t n, uint64_t want_at,
			   uint64_t align, const uint64_t *slot, size_t nslots, uint64_t *addr)
{
	struct bin_consts *b = &c->consts;

	if (!b->loaded)
		load_consts(b, c->bin_elf);
	for (size_t i = 0; i < b->nscns; i++) {
		const struct bin_const_scn *r = &b->scns[i];
		const uint8_t *at = r->data, *end = r->data + r->size;

		while (n && at + n <= end && (at = memmem(at, (size_t)(end - at), want, n))) {
			uint64_t a = r->addr + (uint64_t)(at - r->data);

			if ((!align || (a - want_at) % align == 0) &&
			    relocated_at(b, a, n, slot, b->pic ? nslots : 0)) {
				*addr = a;
				return true;
			}
			at++;
		}
	}
	return false;
}

/* The piece of section scn that offset at lies in: a whole string, an
 * entry of a merged section, a named object. false for anonymous data,
 * whose extent is not known. */
static bool piece_at(const struct obj *o, size_t scn, uint64_t at, uint64_t *lo, uint64_t *hi)
{
	const struct obj_scn *s = &o->scns[scn];
	const uint8_t *d = s->data->d_buf;
	size_t size = s->data->d_size, sym;
	GElf_Sym os;

	if ((s->sh.sh_flags & SHF_MERGE) && (s->sh.sh_flags & SHF_STRINGS)) {
		for (*lo = at; *lo > 0 && d[*lo - 1]; (*lo)--)
			;
		*hi = at + strnlen((const char *)d + at, size - at) + 1;
	} else if (s->sh.sh_flags & SHF_MERGE) {
		uint64_t entsize = s->sh.sh_entsize ? s->sh.sh_entsize : 1;

		*lo = at - at % entsize;
		*hi = *lo + entsize;
	} else {
		sym = obj_sym_in_scn(o, scn, (long)at, STT_OBJECT);
		if (!sym || !obj_sym(o, sym, &os) || !os.st_size)
			return false;
		*lo = os.st_value;
		*hi = os.st_value + os.st_size;
	}
	return *hi <= size && *hi > *lo;
}

/* Is [lo, hi) of scn being resolved further out (a table that points to
 * itself, or too deep a chain of tables)? */
static bool in_progress(const struct asm_ctx *c, size_t scn, uint64_t lo)
{
	if (c->nconst_stack == MAX_CONST_DEPTH)
		return true;
	for (size_t i = 0; i < c->nconst_stack; i++)
		if (c->const_stack[i].scn == scn && c->const_stack[i].lo == lo)
			return true;
	return false;
}

/* Piece [lo, hi) of scn as the binary would hold it, in buf: each address
 * inside (a plain 64-bit one) filled in with where it leads in the binary,
 * its offset in slot[]. -ENOENT if one leads where the binary has nothing
 * (new code or data, an interposable symbol). */
static int as_in_binary(struct asm_ctx *c, size_t scn, uint64_t lo, uint64_t hi, uint8_t *buf,
			uint64_t *slot, size_t *nslots)
{
	const char *from = c->from;
	int ret = 0;
	GElf_Rela k;

	memcpy(buf, (const uint8_t *)c->o->scns[scn].data->d_buf + lo, hi - lo);
	*nslots = 0;
	/* Its addresses are bound as the section's own would be, were it
	 * carried: not on behalf of the function that refers to it. */
	c->from = NULL;
	c->const_stack[c->nconst_stack++] = (struct const_ref){scn, lo};
	for (size_t i = 0; !ret && obj_rela(c->o, scn, i, &k); i++) {
		const struct opatch_sym *s;
		int64_t addend;
		uint64_t v;
		int sym;

		if (k.r_offset < lo || k.r_offset >= hi)
			continue;
		if (GELF_R_TYPE(k.r_info) != R_X86_64_64 || k.r_offset + 8 > hi) {
			ret = -ENOENT;
			break;
		}
		if ((sym = asm_resolve(c, &k, R_X86_64_64, &addend)) < 0) {
			ret = sym;
			break;
		}
		s = &c->p->syms[sym];
		if (s->kind != OPATCH_SYM_TARGET || s->type == STT_GNU_IFUNC ||
		    s->type == STT_TLS) {
			ret = -ENOENT;
			break;
		}
		v = s->value + (uint64_t)addend;
		memcpy(buf + (k.r_offset - lo), &v, 8);
		slot[(*nslots)++] = k.r_offset - lo;
	}
	c->nconst_stack--;
	c->from = from;
	return ret;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int asm_bin_const(struct asm_ctx *c, const GElf_Rela *r, size_t scn, uint64_t v, int64_t *addend)
{
	const struct obj_scn *s = &c->o->scns[scn];
	int64_t at = obj_rela_lands(s, r, (int64_t)v + *addend - r->r_addend);
	uint64_t lo, hi, addr, *slot = NULL;
	uint8_t *buf = NULL;
	size_t nslots = 0;
	char name[64];
	int ret;

	if (!s->data || !s->data->d_buf || at < 0 || (uint64_t)at >= s->data->d_size ||
	    !piece_at(c->o, scn, (uint64_t)at, &lo, &hi) || in_progress(c, scn, lo))
		return -ENOENT;
	buf = malloc(hi - lo);
	slot = malloc((hi - lo) / 8 * sizeof(*slot) + 1);
	ret = buf && slot ? as_in_binary(c, scn, lo, hi, buf, slot, &nslots) : -ENOMEM;
	if (!ret)
		qsort(slot, nslots, sizeof(*slot), by_value);
	if (!ret && !find_in_binary(c, buf, hi - lo, lo, s->sh.sh_addralign, slot, nslots, &addr))
		ret = -ENOENT;
	free(buf);
	free(slot);
	if (ret)
		return ret;
	*addend += (int64_t)v - (int64_t)lo;
	snprintf(name, sizeof(name), "%s+0x%llx", s->name, (unsigned long long)lo);
	return asm_target_sym(c, name, addr, STT_OBJECT);
}
