#include "layout.h"
#include "util/err.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STUB_SIZE 16

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static bool is_got(uint32_t type)
{
	return type == R_X86_64_GOTPCREL || type == R_X86_64_GOTPCRELX ||
	       type == R_X86_64_REX_GOTPCRELX;
}

/* Only branches may go through a stub: opus build marks every call and
 * jump PLT32. A PC32 reference is data, and must reach its referent. */
static bool is_call(uint32_t type)
{
	return type == R_X86_64_PLT32;
}

int layout_plan(struct layout *l, const struct opatch *p)
{
	size_t off;

	memset(l, 0, sizeof(*l));
	l->sec_off = calloc(p->nsections + 1, sizeof(*l->sec_off));
	l->stub_off = malloc((p->nsyms + 1) * sizeof(*l->stub_off));
	l->got_off = malloc((p->nsyms + 1) * sizeof(*l->got_off));
	if (!l->sec_off || !l->stub_off || !l->got_off)
		return -ENOMEM;
	for (size_t i = 0; i < p->nsyms; i++)
		l->stub_off[i] = l->got_off[i] = -1;
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
		}
	l->text_size = align_up(off - l->text_off, LAYOUT_PAGE);
	l->data_off = off = l->text_off + l->text_size;
	for (size_t i = 0; i < p->nsections; i++)
		if (p->sections[i].flags & SHF_WRITE) {
			off = align_up(off, p->sections[i].align);
			l->sec_off[i] = off;
			off += p->sections[i].size;
		}
	l->data_size = align_up(off - l->data_off, LAYOUT_PAGE);
	l->total = l->data_off + l->data_size;
	l->image = calloc(1, l->total);
	if (!l->image)
		return -ENOMEM;
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

int layout_link(struct layout *l, const struct opatch *p, uint64_t base, uint64_t *sym_addr)
{
	for (size_t i = 0; i < p->nsyms; i++) {
		const struct opatch_sym *s = &p->syms[i];

		if (s->kind == OPATCH_SYM_SECTION || s->kind == OPATCH_SYM_DEFINED)
			sym_addr[i] = base + l->sec_off[s->section] + s->value;
		if (l->stub_off[i] >= 0)
			write_stub(l->image + l->stub_off[i], sym_addr[i]);
		if (l->got_off[i] >= 0)
			memcpy(l->image + l->got_off[i], &sym_addr[i], 8);
	}
	for (size_t i = 0; i < p->nsections; i++) {
		const struct opatch_section *s = &p->sections[i];

		for (size_t j = 0; j < s->nrelas; j++) {
			const struct opatch_rela *r = &s->relas[j];
			uint64_t place = base + l->sec_off[i] + r->offset;
			int64_t S = (int64_t)sym_addr[r->sym], v;
			int ret;

			if (is_got(r->type))
				S = (int64_t)(base + (uint64_t)l->got_off[r->sym]);
			else if (is_call(r->type) && l->stub_off[r->sym] >= 0)
				S = (int64_t)(base + (uint64_t)l->stub_off[r->sym]);
			v = S + r->addend;
			if (r->type != R_X86_64_64 && r->type != R_X86_64_32 &&
			    r->type != R_X86_64_32S)
				v -= (int64_t)place;
			ret = put(l->image + l->sec_off[i] + r->offset, r->type, v,
				  p->syms[r->sym].name, s->name);
			if (ret)
				return ret;
		}
	}
	return 0;
}

void layout_free(struct layout *l)
{
	free(l->sec_off);
	free(l->stub_off);
	free(l->got_off);
	free(l->image);
	memset(l, 0, sizeof(*l));
}
