#include "elf.h"
#include "err.h"
#include "file.h"

#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int opus_elf_open(const char *path, struct opus_elf *out)
{
	elf_version(EV_CURRENT);
	out->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (out->fd < 0)
		return opus_err(-errno, "%s: %s", path, strerror(errno));
	out->elf = elf_begin(out->fd, ELF_C_READ_MMAP, NULL);
	if (!out->elf || elf_kind(out->elf) != ELF_K_ELF) {
		int ret = opus_err(-EINVAL, "%s: not an ELF file", path);

		opus_elf_close(out);
		return ret;
	}
	return 0;
}

void opus_elf_close(struct opus_elf *e)
{
	if (e->elf)
		elf_end(e->elf);
	if (e->fd >= 0)
		close(e->fd);
	e->elf = NULL;
	e->fd = -1;
}

int opus_elf_build_id(Elf *elf, uint8_t out[OPUS_BUILD_ID_MAX])
{
	const void *id;
	ssize_t len = dwelf_elf_gnu_build_id(elf, &id);

	if (len <= 0)
		return -ENOENT;
	if (len > OPUS_BUILD_ID_MAX)
		return -EINVAL;
	memcpy(out, id, (size_t)len);
	return (int)len;
}

bool opus_elf_is_library(Elf *elf)
{
	GElf_Ehdr ehdr;
	size_t n;

	if (!gelf_getehdr(elf, &ehdr) || ehdr.e_type != ET_DYN || elf_getphdrnum(elf, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_INTERP)
			return false;
	}
	return true;
}

Elf_Scn *opus_elf_section(Elf *elf, const char *name, GElf_Shdr *shdr)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	if (elf_getshdrstrndx(elf, &shstrndx))
		return NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		const char *n;

		if (!gelf_getshdr(scn, shdr))
			return NULL;
		n = elf_strptr(elf, shstrndx, shdr->sh_name);
		if (n && !strcmp(n, name))
			return scn;
	}
	return NULL;
}

int opus_elf_read_vaddr(Elf *elf, uint64_t vaddr, void *buf, size_t len)
{
	size_t n, size;
	const char *raw = elf_rawfile(elf, &size);

	if (!raw || elf_getphdrnum(elf, &n))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD || vaddr < ph.p_vaddr ||
		    vaddr + len > ph.p_vaddr + ph.p_filesz || vaddr + len < vaddr)
			continue;
		if (ph.p_offset + (vaddr - ph.p_vaddr) + len > size)
			return -ERANGE;
		memcpy(buf, raw + ph.p_offset + (vaddr - ph.p_vaddr), len);
		return 0;
	}
	return -ERANGE;
}

int opus_elf_irelative_slot(Elf *elf, uint64_t resolver, uint64_t *slot)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(elf, scn))) {
		Elf_Data *d;
		GElf_Rela r;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA ||
		    !(d = elf_getdata(scn, NULL)))
			continue;
		for (size_t i = 0; gelf_getrela(d, (int)i, &r); i++)
			if (GELF_R_TYPE(r.r_info) == R_X86_64_IRELATIVE &&
			    (uint64_t)r.r_addend == resolver) {
				*slot = r.r_offset;
				return 0;
			}
	}
	return -ENOENT;
}

static Elf_Scn *find_section_by_type(Elf *elf, uint32_t type, GElf_Shdr *shdr)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn)))
		if (gelf_getshdr(scn, shdr) && shdr->sh_type == type)
			return scn;
	return NULL;
}

int opus_symtab_load(Elf *elf, bool dynamic, struct opus_symtab *out)
{
	GElf_Shdr shdr, vshdr;
	Elf_Scn *scn = find_section_by_type(elf, dynamic ? SHT_DYNSYM : SHT_SYMTAB, &shdr);
	Elf_Scn *vscn = dynamic ? find_section_by_type(elf, SHT_GNU_versym, &vshdr) : NULL;
	Elf_Data *data, *vdata = vscn ? elf_getdata(vscn, NULL) : NULL;
	const char *file = NULL;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!scn || !(data = elf_getdata(scn, NULL)) || !shdr.sh_entsize)
		return -ENOENT;
	n = shdr.sh_size / shdr.sh_entsize;
	out->syms = calloc(n ? n : 1, sizeof(*out->syms));
	if (!out->syms)
		return -ENOMEM;
	for (size_t i = 1; i < n; i++) {
		struct opus_sym *s = &out->syms[out->count];
		GElf_Versym vs = 0;
		GElf_Sym sym;

		if (!gelf_getsym(data, (int)i, &sym))
			continue;
		s->name = elf_strptr(elf, shdr.sh_link, sym.st_name);
		if (!s->name)
			continue;
		s->type = GELF_ST_TYPE(sym.st_info);
		s->bind = GELF_ST_BIND(sym.st_info);
		if (s->type == STT_FILE) {
			file = s->name;
			continue;
		}
		s->value = sym.st_value;
		s->size = sym.st_size;
		s->shndx = sym.st_shndx;
		s->file = s->bind == STB_LOCAL ? file : NULL;
		if (vdata && gelf_getversym(vdata, (int)i, &vs))
			s->hidden = (vs & 0x8000) != 0;
		out->count++;
	}
	return 0;
}

void opus_symtab_free(struct opus_symtab *t)
{
	free(t->syms);
	t->syms = NULL;
	t->count = 0;
}

bool opus_sym_name_eq(const char *symname, const char *name)
{
	size_t n = strlen(name);

	return !strncmp(symname, name, n) && (symname[n] == '\0' || symname[n] == '@');
}

const struct opus_sym *opus_symtab_find_global(const struct opus_symtab *t, const char *name)
{
	const struct opus_sym *weak = NULL;

	for (size_t i = 0; i < t->count; i++) {
		const struct opus_sym *s = &t->syms[i];

		if (s->shndx == SHN_UNDEF || s->hidden || !opus_sym_name_eq(s->name, name))
			continue;
		if (s->bind == STB_GLOBAL || s->bind == STB_GNU_UNIQUE)
			return s;
		if (s->bind == STB_WEAK && !weak)
			weak = s;
	}
	return weak;
}

int opus_symtab_find_local(const struct opus_symtab *t, const char *file, const char *name,
			   const struct opus_sym **out)
{
	int matches = 0;

	*out = NULL;
	for (size_t i = 0; i < t->count; i++) {
		const struct opus_sym *s = &t->syms[i];

		if (s->bind != STB_LOCAL || s->shndx == SHN_UNDEF || strcmp(s->name, name))
			continue;
		if (file && (!s->file || strcmp(opus_base_name(s->file), opus_base_name(file))))
			continue;
		if (!matches++)
			*out = s;
	}
	return matches;
}
