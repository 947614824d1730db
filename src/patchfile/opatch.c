#include "opatch.h"
#include "util/file.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void opatch_init(struct opatch *p)
{
	memset(p, 0, sizeof(*p));
}

struct opatch_mark opatch_mark(const struct opatch *p)
{
	return (struct opatch_mark){p->nsections, p->nsyms, p->nfuncs};
}

void opatch_truncate(struct opatch *p, struct opatch_mark m)
{
	for (size_t i = m.nsections; i < p->nsections; i++) {
		free(p->sections[i].name);
		free(p->sections[i].data);
		free(p->sections[i].relas);
	}
	for (size_t i = m.nsyms; i < p->nsyms; i++)
		free(p->syms[i].name);
	for (size_t i = m.nfuncs; i < p->nfuncs; i++)
		free(p->funcs[i].name);
	p->nsections = m.nsections;
	p->nsyms = m.nsyms;
	p->nfuncs = m.nfuncs;
}

void opatch_free(struct opatch *p)
{
	opatch_truncate(p, (struct opatch_mark){0, 0, 0});
	free(p->sections);
	free(p->syms);
	opus_hindex_free(&p->sym_index);
	free(p->funcs);
	free(p->id);
	free(p->description);
	free(p->diff_sha256);
	free(p->findings);
	free(p->after);
	free(p->line_map);
	free(p->stop_world);
	free(p->target_name);
	opatch_init(p);
}

int opatch_add_section(struct opatch *p, const char *name, uint32_t type, uint64_t flags,
		       uint64_t align, const void *data, uint64_t size)
{
	struct opatch_section *s;

	if (OPUS_PUSH(p->sections, p->nsections, p->sections_cap))
		return -ENOMEM;
	s = &p->sections[p->nsections];
	memset(s, 0, sizeof(*s));
	s->name = strdup(name);
	s->type = type;
	s->flags = flags;
	s->align = align ? align : 1;
	s->size = size;
	if (type != SHT_NOBITS && size) {
		s->data = malloc(size);
		if (s->data && data)
			memcpy(s->data, data, size);
		else if (s->data)
			memset(s->data, 0, size);
	}
	if (!s->name || (type != SHT_NOBITS && size && !s->data)) {
		free(s->name);
		free(s->data);
		return -ENOMEM;
	}
	return (int)p->nsections++;
}

int opatch_find_section(const struct opatch *p, const char *name)
{
	for (size_t i = 0; i < p->nsections; i++)
		if (!strcmp(p->sections[i].name, name))
			return (int)i;
	return -ENOENT;
}

static uint64_t sym_hash(const char *name, enum opatch_sym_kind kind, uint64_t value)
{
	return opus_hash_u64(value, opus_hash_u64((uint64_t)kind, opus_hash_str(name, 0)));
}

int opatch_add_sym(struct opatch *p, const char *name, enum opatch_sym_kind kind, uint32_t section,
		   uint64_t value, uint64_t size, uint8_t type)
{
	struct opatch_sym *s;

	if (OPUS_PUSH(p->syms, p->nsyms, p->syms_cap))
		return -ENOMEM;
	s = &p->syms[p->nsyms];
	s->name = strdup(name);
	if (!s->name)
		return -ENOMEM;
	s->kind = kind;
	s->section = section;
	s->value = value;
	s->size = size;
	s->type = type;
	if (opus_hindex_add(&p->sym_index, sym_hash(name, kind, value), p->nsyms)) {
		free(s->name);
		return -ENOMEM;
	}
	return (int)p->nsyms++;
}

int opatch_find_sym(const struct opatch *p, const char *name, enum opatch_sym_kind kind,
		    uint64_t value)
{
	uint64_t h = sym_hash(name, kind, value);
	size_t cursor = 0, i;

	/* Positions past a truncation, or reused by another symbol, do not
	 * compare equal. */
	while ((i = opus_hindex_next(&p->sym_index, h, &cursor)) != SIZE_MAX)
		if (i < p->nsyms && p->syms[i].kind == kind && p->syms[i].value == value &&
		    !strcmp(p->syms[i].name, name))
			return (int)i;
	return -ENOENT;
}

int opatch_add_rela(struct opatch *p, uint32_t section, const struct opatch_rela *r)
{
	struct opatch_section *s = &p->sections[section];

	if (OPUS_PUSH(s->relas, s->nrelas, s->relas_cap))
		return -ENOMEM;
	s->relas[s->nrelas] = *r;
	return (int)s->nrelas++;
}

int opatch_add_func(struct opatch *p, const char *name, uint64_t old_addr, uint64_t old_size,
		    uint32_t new_sym, bool cold)
{
	struct opatch_func *f;

	if (OPUS_PUSH(p->funcs, p->nfuncs, p->funcs_cap))
		return -ENOMEM;
	f = &p->funcs[p->nfuncs];
	f->name = strdup(name);
	if (!f->name)
		return -ENOMEM;
	f->old_addr = old_addr;
	f->old_size = old_size;
	f->new_sym = new_sym;
	f->old_sym = -1;
	f->cold = cold;
	return (int)p->nfuncs++;
}

bool opatch_is_old_copy(const char *name)
{
	size_t n = strlen(name), k = strlen(OPATCH_OLD_SUFFIX);

	return n > k && !strcmp(name + n - k, OPATCH_OLD_SUFFIX);
}

bool opatch_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > OPATCH_ID_MAX || id[0] == '.')
		return false;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

unsigned opatch_rela_width(uint32_t type)
{
	switch (type) {
	case R_X86_64_64:
	case R_X86_64_PC64:
	case R_X86_64_DTPOFF64:
	case R_X86_64_TPOFF64:
		return 8;
	case R_X86_64_TPOFF32:
	case R_X86_64_GOTTPOFF:
	case R_X86_64_TLSGD:
	case R_X86_64_TLSLD:
	case R_X86_64_DTPOFF32:
		return 4;
	case R_X86_64_PC32:
	case R_X86_64_PLT32:
	case R_X86_64_32:
	case R_X86_64_32S:
	case R_X86_64_GOTPCREL:
	case R_X86_64_GOTPCRELX:
	case R_X86_64_REX_GOTPCRELX:
		return 4;
	default:
		return 0;
	}
}
