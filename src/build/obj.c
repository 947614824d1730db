#include "obj.h"
#include "util/err.h"

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
	if (ret)
		obj_close(o);
	return ret;
}

void obj_close(struct obj *o)
{
	opus_elf_close(&o->e);
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

size_t obj_find_sym(const struct obj *o, const char *name, int type)
{
	GElf_Sym sym;

	for (size_t i = 1; i < o->nsyms; i++)
		if (obj_sym(o, i, &sym) && GELF_ST_TYPE(sym.st_info) == type &&
		    sym.st_shndx != SHN_UNDEF && !strcmp(obj_sym_name(o, &sym), name))
			return i;
	return 0;
}

size_t obj_sym_in_scn(const struct obj *o, size_t scn, long off, int type)
{
	GElf_Sym sym;

	for (size_t i = 1; i < o->nsyms; i++) {
		if (!obj_sym(o, i, &sym) || sym.st_shndx != scn ||
		    GELF_ST_TYPE(sym.st_info) != type)
			continue;
		if (off < 0 || ((uint64_t)off >= sym.st_value &&
				(uint64_t)off < sym.st_value + (sym.st_size ? sym.st_size : 1)))
			return i;
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
