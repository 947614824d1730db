#include "layout.h"
#include "dispatch.h"
#include "util/err.h"
#include "util/file.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define STUB_SIZE 16

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* A GOT slot holding an address, or a thread-pointer offset (GOTTPOFF). */
static bool is_got(uint32_t type)
{
	return type == R_X86_64_GOTPCREL || type == R_X86_64_GOTPCRELX ||
	       type == R_X86_64_REX_GOTPCRELX || type == R_X86_64_GOTTPOFF;
}

static bool is_pcrel(uint32_t type)
{
	return type == R_X86_64_PC32 || type == R_X86_64_PLT32 || type == R_X86_64_PC64 ||
	       is_got(type) || type == R_X86_64_TLSGD || type == R_X86_64_TLSLD;
}

bool layout_uses_tls(const struct opatch *p)
{
	for (size_t i = 0; i < p->nsyms; i++)
		if (p->syms[i].type == STT_TLS)
			return true;
	return false;
}

/* Only branches may go through a stub: opus build marks every call and
 * jump PLT32. A PC32 reference is data, and must reach its referent. */
static bool is_call(uint32_t type)
{
	return type == R_X86_64_PLT32;
}

/* A function start of the patch as one sortable key: its section, then
 * its offset there (sections are far smaller than 2^40 bytes). */
#define START_KEY(sec, off) ((uint64_t)(sec) << 40 | (uint64_t)(off))

/* The starts of the functions defined in the patch's executable sections,
 * sorted: a patch replacing every function of redis has 4261, and a
 * scan of them for each reference took 108 ms of every apply. */
static uint64_t *function_starts(const struct opatch *p, size_t *n)
{
	uint64_t *v = malloc((p->nsyms + 1) * sizeof(*v));

	*n = 0;
	for (size_t k = 0; v && k < p->nsyms; k++)
		if (p->syms[k].kind == OPATCH_SYM_DEFINED && p->syms[k].section < p->nsections &&
		    (p->sections[p->syms[k].section].flags & SHF_EXECINSTR))
			v[(*n)++] = START_KEY(p->syms[k].section, p->syms[k].value);
	if (v)
		qsort(v, *n, sizeof(*v), opus_cmp_u64);
	return v;
}

/* Whether executable section sec, referenced with addend a, may be
 * referenced at a function's start (starts: function_starts). An
 * absolute reference leads to a; a PC-relative one to a in data (".long
 * f - ."), to a + 4 in an instruction whose displacement ends it, and up
 * to a + 8 in one with an immediate after. A section's start is a
 * function's, with -ffunction-sections. */
static bool reaches_function(const uint64_t *starts, size_t n, uint32_t sec, int64_t a, bool pcrel)
{
	int64_t hi = pcrel ? a + 8 : a;
	size_t i;

	if (hi < 0)
		return false;
	if (a <= 0)
		return true; /* the section's start is in [a, hi] */
	i = opus_lower_bound_u64(starts, n, sizeof(*starts), START_KEY(sec, a));
	return i < n && starts[i] <= START_KEY(sec, hi);
}

bool layout_makes_code_pointers(const struct opatch *p)
{
	size_t n;
	uint64_t *starts = function_starts(p, &n);
	bool makes = !starts; /* in doubt, it may */

	for (size_t i = 0; !makes && i < p->nsections; i++) {
		if (!strcmp(p->sections[i].name, OPATCH_CFI_SECTION))
			continue; /* read by unwinders, never followed as a pointer */
		for (size_t j = 0; !makes && j < p->sections[i].nrelas; j++) {
			const struct opatch_rela *r = &p->sections[i].relas[j];
			const struct opatch_sym *s = &p->syms[r->sym];

			if (is_call(r->type) || s->section >= p->nsections ||
			    (s->kind != OPATCH_SYM_DEFINED && s->kind != OPATCH_SYM_SECTION) ||
			    !(p->sections[s->section].flags & SHF_EXECINSTR))
				continue;
			/* A function of the patch by name, or its section and an
			 * offset: a jump table's entry leads inside a function. */
			makes =
			    s->kind == OPATCH_SYM_DEFINED || is_got(r->type) ||
			    reaches_function(starts, n, s->section, r->addend, is_pcrel(r->type));
		}
	}
	free(starts);
	return makes;
}

int layout_plan(struct layout *l, const struct opatch *p)
{
	size_t off;

	memset(l, 0, sizeof(*l));
	l->sec_off = calloc(p->nsections + 1, sizeof(*l->sec_off));
	l->stub_off = malloc((p->nsyms + 1) * sizeof(*l->stub_off));
	l->got_off = malloc((p->nsyms + 1) * sizeof(*l->got_off));
	l->gd_off = malloc((p->nsyms + 1) * sizeof(*l->gd_off));
	l->ld_off = malloc((p->nsyms + 1) * sizeof(*l->ld_off));
	l->dispatch_off = malloc((p->nfuncs + 1) * sizeof(*l->dispatch_off));
	if (!l->sec_off || !l->stub_off || !l->got_off || !l->gd_off || !l->ld_off ||
	    !l->dispatch_off)
		return -ENOMEM;
	for (size_t i = 0; i < p->nsyms; i++)
		l->stub_off[i] = l->got_off[i] = l->gd_off[i] = l->ld_off[i] = -1;
	l->reg_size = align_up(4096 + p->nfuncs * 1024, LAYOUT_PAGE);
	l->text_off = off = l->reg_size;
	for (size_t i = 0; i < p->nsections; i++)
		if (!(p->sections[i].flags & SHF_WRITE)) {
			off = align_up(off, p->sections[i].align);
			l->sec_off[i] = off;
			off += p->sections[i].size;
		}
	/* Far calls (libc is rarely within 2 GiB) go through stubs; any
	 * GOT-relative load gets a slot. */
	for (size_t i = 0; i < p->nsections; i++)
		for (size_t j = 0; j < p->sections[i].nrelas; j++) {
			const struct opatch_rela *r = &p->sections[i].relas[j];

			if (is_call(r->type) && p->syms[r->sym].kind == OPATCH_SYM_EXTERN &&
			    l->stub_off[r->sym] < 0) {
				off = align_up(off, STUB_SIZE);
				l->stub_off[r->sym] = (int64_t)off;
				off += STUB_SIZE;
			}
		}
	for (size_t i = 0; i < p->nsections; i++)
		for (size_t j = 0; j < p->sections[i].nrelas; j++) {
			const struct opatch_rela *r = &p->sections[i].relas[j];

			if (is_got(r->type) && l->got_off[r->sym] < 0) {
				off = align_up(off, 8);
				l->got_off[r->sym] = (int64_t)off;
				off += 8;
			}
			if (r->type == R_X86_64_TLSGD && l->gd_off[r->sym] < 0) {
				off = align_up(off, 16);
				l->gd_off[r->sym] = (int64_t)off;
				off += 16;
			}
			if (r->type == R_X86_64_TLSLD && l->ld_off[r->sym] < 0) {
				off = align_up(off, 16);
				l->ld_off[r->sym] = (int64_t)off;
				off += 16;
			}
		}
	off = align_up(off, 16);
	for (size_t i = 0; i < p->nfuncs; i++) {
		l->dispatch_off[i] = -1;
		if (!p->funcs[i].cold && p->funcs[i].old_sym >= 0) {
			l->dispatch_off[i] = (int64_t)off;
			off += DISPATCH_STUB_SIZE;
		}
	}
	l->text_size = align_up(off - l->text_off, LAYOUT_PAGE);
	l->exits_off = l->text_off + l->text_size;
	/* The table ends the r-x part: a switch stub writes it only once a
	 * stop has made it writable (transition.c), so a patch without data
	 * of its own is one mapping. */
	l->table_off = l->exits_off + LAYOUT_EXITS;
	l->data_off = off = l->table_off + LAYOUT_PAGE;
	for (size_t i = 0; i < p->nsections; i++)
		if (p->sections[i].flags & SHF_WRITE) {
			off = align_up(off, p->sections[i].align);
			l->sec_off[i] = off;
			off += p->sections[i].size;
		}
	l->data_size = align_up(off - l->data_off, LAYOUT_PAGE);
	l->total = l->data_off + l->data_size;
	/* Mapped, not calloc'd: the pages nothing writes (the exit stubs')
	 * are never touched, here or in the memfd (place.c). */
	l->image = mmap(NULL, l->total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (l->image == MAP_FAILED) {
		l->image = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->nsections; i++)
		if (p->sections[i].data)
			memcpy(l->image + l->sec_off[i], p->sections[i].data, p->sections[i].size);
	return 0;
}

static int put(uint8_t *where, uint32_t type, int64_t v, const char *sym, const char *sec)
{
	switch (type) {
	case R_X86_64_64:
	case R_X86_64_PC64:
	case R_X86_64_DTPOFF64:
	case R_X86_64_TPOFF64:
		memcpy(where, &v, 8);
		return 0;
	case R_X86_64_32:
		if (v < 0 || v > UINT32_MAX)
			break;
		memcpy(where, &(uint32_t){(uint32_t)v}, 4);
		return 0;
	default:
		if (v < INT32_MIN || v > INT32_MAX)
			break;
		memcpy(where, &(int32_t){(int32_t)v}, 4);
		return 0;
	}
	return opus_err(-ERANGE,
			"%s: its reference to %s cannot reach it from the patch (relocation type "
			"%u, value 0x%llx); the patch was not built for this",
			sec, sym, type, (unsigned long long)v);
}

static void write_stub(uint8_t *at, uint64_t target)
{
	/* jmp *0(%rip); .quad target */
	static const uint8_t jmp[6] = {0xff, 0x25, 0, 0, 0, 0};

	memcpy(at, jmp, sizeof(jmp));
	memcpy(at + 6, &target, 8);
}

/* Symbol i's thread-pointer offset, or an error naming what is unknown. */
static int tls_tpoff(const struct opatch *p, size_t i, uint64_t offset,
		     const struct layout_tls *tls, int64_t *out)
{
	if (!tls || !tls[i].tls || !tls[i].has_tpoff)
		return opus_err(-ENOTSUP,
				"thread-local %s: its block's place from the thread pointer is not "
				"known (a module loaded later, whose variables the program never "
				"reached with initial-exec code)",
				p->syms[i].name);
	*out = tls[i].tpoff + (int64_t)offset;
	return 0;
}

static int tls_modid(const struct opatch *p, size_t i, const struct layout_tls *tls, uint64_t *out)
{
	if (!tls || !tls[i].tls || !tls[i].modid)
		return opus_err(-ENOTSUP, "thread-local %s: its module id is not known",
				p->syms[i].name);
	*out = tls[i].modid;
	return 0;
}

/* Stubs, GOT slots and TLS pairs, now that every symbol has its value. */
static int fill_slots(struct layout *l, const struct opatch *p, uint64_t *sym_addr,
		      const struct layout_tls *tls)
{
	for (size_t i = 0; i < p->nsyms; i++) {
		uint64_t pair[2] = {0, sym_addr[i]}, slot = sym_addr[i];
		int64_t tp = 0;
		int ret;

		if (l->stub_off[i] >= 0)
			write_stub(l->image + l->stub_off[i], sym_addr[i]);
		if (l->got_off[i] >= 0 && tls && tls[i].tls) {
			if ((ret = tls_tpoff(p, i, sym_addr[i], tls, &tp)))
				return ret;
			slot = (uint64_t)tp;
		}
		if (l->got_off[i] >= 0)
			memcpy(l->image + l->got_off[i], &slot, 8);
		if (l->gd_off[i] >= 0 && (ret = tls_modid(p, i, tls, &pair[0])))
			return ret;
		if (l->gd_off[i] >= 0)
			memcpy(l->image + l->gd_off[i], pair, 16);
		pair[1] = 0;
		if (l->ld_off[i] >= 0 && (ret = tls_modid(p, i, tls, &pair[0])))
			return ret;
		if (l->ld_off[i] >= 0)
			memcpy(l->image + l->ld_off[i], pair, 16);
	}
	return 0;
}

/* The value relocation r writes, S its symbol's address (or TLS offset). */
static int rela_value(const struct layout *l, const struct opatch *p, const struct opatch_rela *r,
		      uint64_t base, uint64_t place, uint64_t *sym_addr,
		      const struct layout_tls *tls, int64_t *v)
{
	int64_t S = (int64_t)sym_addr[r->sym], tp = 0;
	int ret;

	if (is_got(r->type))
		S = (int64_t)(base + (uint64_t)l->got_off[r->sym]);
	else if (r->type == R_X86_64_TLSGD)
		S = (int64_t)(base + (uint64_t)l->gd_off[r->sym]);
	else if (r->type == R_X86_64_TLSLD)
		S = (int64_t)(base + (uint64_t)l->ld_off[r->sym]);
	else if (is_call(r->type) && l->stub_off[r->sym] >= 0)
		S = (int64_t)(base + (uint64_t)l->stub_off[r->sym]);
	else if (r->type == R_X86_64_TPOFF32 || r->type == R_X86_64_TPOFF64) {
		if ((ret = tls_tpoff(p, r->sym, sym_addr[r->sym], tls, &tp)))
			return ret;
		S = tp;
	}
	*v = S + r->addend - (is_pcrel(r->type) ? (int64_t)place : 0);
	return 0;
}

int layout_link(struct layout *l, const struct opatch *p, uint64_t base, uint64_t *sym_addr,
		const struct layout_tls *tls)
{
	int ret;

	for (size_t i = 0; i < p->nsyms; i++) {
		const struct opatch_sym *s = &p->syms[i];

		if (s->kind == OPATCH_SYM_SECTION || s->kind == OPATCH_SYM_DEFINED)
			sym_addr[i] = base + l->sec_off[s->section] + s->value;
	}
	if ((ret = fill_slots(l, p, sym_addr, tls)))
		return ret;
	for (size_t i = 0; i < p->nsections; i++) {
		const struct opatch_section *s = &p->sections[i];

		for (size_t j = 0; j < s->nrelas; j++) {
			const struct opatch_rela *r = &s->relas[j];
			int64_t v;

			ret = rela_value(l, p, r, base, base + l->sec_off[i] + r->offset, sym_addr,
					 tls, &v);
			if (!ret)
				ret = put(l->image + l->sec_off[i] + r->offset, r->type, v,
					  p->syms[r->sym].name, s->name);
			if (ret)
				return ret;
		}
	}
	for (size_t i = 0; i < p->nfuncs; i++)
		if (l->dispatch_off[i] >= 0)
			dispatch_stub(l->image + l->dispatch_off[i], base + l->table_off,
				      sym_addr[p->funcs[i].new_sym], sym_addr[p->funcs[i].old_sym]);
	return 0;
}

void layout_free(struct layout *l)
{
	free(l->sec_off);
	free(l->stub_off);
	free(l->got_off);
	free(l->gd_off);
	free(l->ld_off);
	free(l->dispatch_off);
	if (l->image)
		munmap(l->image, l->total);
	memset(l, 0, sizeof(*l));
}

bool live_code_pointers(const struct opatch *p)
{
	return layout_makes_code_pointers(p);
}
