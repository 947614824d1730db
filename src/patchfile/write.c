/* Writes an .opatch with libelf, then seals it with a SHA-256 in .opus.meta. */
#include "opatch.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHA_KEY "sha256="

struct writer {
	Elf *elf;
	struct opus_buf shstr;
	void **owned; /* buffers that must live until elf_update */
	size_t nowned, owned_cap;
};

static int keep(struct writer *w, void *p)
{
	if (!p || OPUS_PUSH(w->owned, w->nowned, w->owned_cap)) {
		free(p);
		return -ENOMEM;
	}
	w->owned[w->nowned++] = p;
	return 0;
}

/* Adds a section; returns its ELF index or a negative errno. */
static int add_scn(struct writer *w, const char *name, const GElf_Shdr *tmpl, void *buf,
		   size_t size, Elf_Type dtype)
{
	Elf_Scn *scn = elf_newscn(w->elf);
	long name_off = opus_buf_addstr(&w->shstr, name);
	GElf_Shdr shdr = *tmpl;
	Elf_Data *d;

	if (!scn || name_off < 0)
		return -ENOMEM;
	d = elf_newdata(scn);
	if (!d)
		return -ENOMEM;
	d->d_buf = buf;
	d->d_size = size;
	d->d_type = dtype;
	d->d_align = shdr.sh_addralign ? shdr.sh_addralign : 1;
	d->d_version = EV_CURRENT;
	shdr.sh_name = (uint32_t)name_off;
	shdr.sh_size = size;
	if (!gelf_update_shdr(scn, &shdr))
		return -EIO;
	return (int)elf_ndxscn(scn);
}

static int add_text_scn(struct writer *w, const char *name, struct opus_buf *text)
{
	GElf_Shdr shdr = {.sh_type = SHT_PROGBITS, .sh_addralign = 1};
	void *copy = malloc(text->len + 1);

	if (keep(w, copy))
		return -ENOMEM;
	memcpy(copy, text->data ? text->data : "", text->len);
	return add_scn(w, name, &shdr, copy, text->len, ELF_T_BYTE);
}

/* ELF wants locals before globals: number syms so externs come last. */
static int number_syms(const struct opatch *p, uint32_t *elfidx, uint32_t *first_global)
{
	uint32_t next = 1;

	for (size_t i = 0; i < p->nsyms; i++)
		if (p->syms[i].kind != OPATCH_SYM_EXTERN)
			elfidx[i] = next++;
	*first_global = next;
	for (size_t i = 0; i < p->nsyms; i++)
		if (p->syms[i].kind == OPATCH_SYM_EXTERN)
			elfidx[i] = next++;
	return (int)next;
}

static int add_symtab(struct writer *w, uint32_t nelf, uint32_t first_global, int symtab_strndx)
{
	GElf_Shdr shdr = {.sh_type = SHT_SYMTAB,
			  .sh_addralign = 8,
			  .sh_entsize = sizeof(Elf64_Sym),
			  .sh_link = (uint32_t)symtab_strndx,
			  .sh_info = first_global};
	Elf64_Sym *syms = calloc(nelf, sizeof(*syms));

	if (keep(w, syms))
		return -ENOMEM;
	return add_scn(w, ".symtab", &shdr, syms, nelf * sizeof(*syms), ELF_T_SYM);
}

static int fill_symtab(const struct opatch *p, Elf64_Sym *syms, const uint32_t *elfidx,
		       struct opus_buf *str)
{
	for (size_t i = 0; i < p->nsyms; i++) {
		const struct opatch_sym *s = &p->syms[i];
		Elf64_Sym *e = &syms[elfidx[i]];
		long off = s->kind == OPATCH_SYM_SECTION ? 0 : opus_buf_addstr(str, s->name);
		int bind = s->kind == OPATCH_SYM_EXTERN ? STB_GLOBAL : STB_LOCAL;

		if (off < 0)
			return -ENOMEM;
		e->st_name = (uint32_t)off;
		e->st_info = ELF64_ST_INFO(bind, s->type);
		e->st_value = s->value;
		e->st_size = s->size;
		switch (s->kind) {
		case OPATCH_SYM_SECTION:
		case OPATCH_SYM_DEFINED:
			e->st_shndx = (uint16_t)(1 + s->section);
			break;
		case OPATCH_SYM_TARGET:
			e->st_shndx = SHN_ABS;
			break;
		case OPATCH_SYM_EXTERN:
			e->st_shndx = SHN_UNDEF;
			break;
		}
	}
	return 0;
}

static int add_content(struct writer *w, const struct opatch *p)
{
	for (size_t i = 0; i < p->nsections; i++) {
		const struct opatch_section *s = &p->sections[i];
		GElf_Shdr shdr = {
		    .sh_type = s->type, .sh_flags = s->flags, .sh_addralign = s->align};
		int idx;

		/* SHT_NOBITS data has a size and no buffer. */
		idx = add_scn(w, s->name, &shdr, s->data, s->size, ELF_T_BYTE);
		if (idx < 0)
			return idx;
	}
	return 0;
}

static int add_relas(struct writer *w, const struct opatch *p, const uint32_t *elfidx, int symtab)
{
	for (size_t i = 0; i < p->nsections; i++) {
		const struct opatch_section *s = &p->sections[i];
		GElf_Shdr shdr = {.sh_type = SHT_RELA,
				  .sh_flags = SHF_INFO_LINK,
				  .sh_addralign = 8,
				  .sh_entsize = sizeof(Elf64_Rela),
				  .sh_link = (uint32_t)symtab,
				  .sh_info = (uint32_t)(1 + i)};
		Elf64_Rela *r;
		char name[512];
		int idx;

		if (!s->nrelas)
			continue;
		r = calloc(s->nrelas, sizeof(*r));
		if (keep(w, r))
			return -ENOMEM;
		for (size_t j = 0; j < s->nrelas; j++) {
			r[j].r_offset = s->relas[j].offset;
			r[j].r_info = ELF64_R_INFO(elfidx[s->relas[j].sym], s->relas[j].type);
			r[j].r_addend = s->relas[j].addend;
		}
		snprintf(name, sizeof(name), ".rela%s", s->name);
		idx = add_scn(w, name, &shdr, r, s->nrelas * sizeof(*r), ELF_T_RELA);
		if (idx < 0)
			return idx;
	}
	return 0;
}

static void one_line(struct opus_buf *b, const char *key, const char *val)
{
	opus_buf_printf(b, "%s=", key);
	for (const char *c = val ? val : ""; *c; c++)
		opus_buf_add(b, *c == '\n' ? " " : c, 1);
	opus_buf_add(b, "\n", 1);
}

/* One key=value line per line of text. */
static void lines_of(struct opus_buf *b, const char *key, const char *text)
{
	for (const char *f = text ? text : ""; *f;) {
		size_t n = strcspn(f, "\n");
		char *line = strndup(f, n);

		if (line)
			one_line(b, key, line);
		free(line);
		f += n + (f[n] == '\n');
	}
}

static void format_meta(const struct opatch *p, struct opus_buf *b)
{
	/* The digest comes first so the reader finds it at a fixed place. */
	opus_buf_printf(b, SHA_KEY "%064d\n", 0);
	opus_buf_printf(b, "format=%d\n", OPATCH_FORMAT_VERSION);
	one_line(b, "id", p->id);
	one_line(b, "description", p->description);
	one_line(b, "diff-sha256", p->diff_sha256);
	lines_of(b, "after", p->after);
	lines_of(b, "line-map", p->line_map);
	lines_of(b, "finding", p->findings);
	if (p->stop_world && !*p->stop_world)
		one_line(b, "transition", "per-thread");
	lines_of(b, "stop-world", p->stop_world);
}

static void format_target(const struct opatch *p, struct opus_buf *b)
{
	char hex[2 * OPUS_BUILD_ID_MAX + 1];

	opus_hex_encode(p->build_id, p->build_id_len, hex);
	opus_buf_printf(b, "build-id=%s\n", hex);
	one_line(b, "name", p->target_name);
}

static void format_funcs(const struct opatch *p, const uint32_t *elfidx, struct opus_buf *b)
{
	for (size_t i = 0; i < p->nfuncs; i++) {
		const struct opatch_func *f = &p->funcs[i];
		char digest[2 * sizeof(f->old_sha256) + 1];

		opus_hex_encode(f->old_sha256, sizeof(f->old_sha256), digest);
		opus_buf_printf(b, "%s 0x%llx %llu %u %s %s", f->name,
				(unsigned long long)f->old_addr, (unsigned long long)f->old_size,
				elfidx[f->new_sym], f->cold ? "cold" : "replace", digest);
		if (f->old_sym >= 0)
			opus_buf_printf(b, " old=%u", elfidx[f->old_sym]);
		opus_buf_printf(b, "\n");
	}
}

static int build_elf(struct writer *w, const struct opatch *p, uint32_t *elfidx, int *meta_idx)
{
	struct opus_buf str = {0}, meta = {0}, target = {0}, funcs = {0};
	GElf_Shdr strhdr = {.sh_type = SHT_STRTAB, .sh_addralign = 1};
	uint32_t first_global;
	int nelf = number_syms(p, elfidx, &first_global);
	int symtab, strtab, shstrtab, ret;
	Elf_Data *symdata;
	GElf_Ehdr ehdr;

	opus_buf_addstr(&w->shstr, "");
	if ((ret = add_content(w, p)))
		return ret;
	/* .symtab is section nsections+1 and .strtab right after it. */
	symtab = add_symtab(w, (uint32_t)nelf, first_global, (int)p->nsections + 2);
	if (symtab < 0)
		return symtab;
	opus_buf_addstr(&str, "");
	symdata = elf_getdata(elf_getscn(w->elf, (size_t)symtab), NULL);
	if ((ret = fill_symtab(p, symdata->d_buf, elfidx, &str)))
		return ret;
	if (keep(w, str.data))
		return -ENOMEM;
	strtab = add_scn(w, ".strtab", &strhdr, str.data, str.len, ELF_T_BYTE);
	if (strtab < 0)
		return strtab;
	if ((ret = add_relas(w, p, elfidx, symtab)))
		return ret;
	format_target(p, &target);
	format_funcs(p, elfidx, &funcs);
	format_meta(p, &meta);
	ret = add_text_scn(w, ".opus.target", &target);
	if (ret >= 0)
		ret = add_text_scn(w, ".opus.funcs", &funcs);
	if (ret >= 0)
		ret = *meta_idx = add_text_scn(w, ".opus.meta", &meta);
	opus_buf_free(&target);
	opus_buf_free(&funcs);
	opus_buf_free(&meta);
	if (ret < 0)
		return ret;
	shstrtab = add_scn(w, ".shstrtab", &strhdr, NULL, 0, ELF_T_BYTE);
	if (shstrtab < 0)
		return shstrtab;
	/* Its own name is now in the table too; attach the final buffer. */
	symdata = elf_getdata(elf_getscn(w->elf, (size_t)shstrtab), NULL);
	symdata->d_buf = w->shstr.data;
	symdata->d_size = w->shstr.len;

	gelf_getehdr(w->elf, &ehdr);
	ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
	ehdr.e_ident[EI_OSABI] = ELFOSABI_NONE;
	ehdr.e_type = ET_REL;
	ehdr.e_machine = EM_X86_64;
	ehdr.e_version = EV_CURRENT;
	ehdr.e_shstrndx = (uint16_t)shstrtab;
	gelf_update_ehdr(w->elf, &ehdr);
	return 0;
}

/* Hash the file with the digest field zeroed, then write the digest in. */
static int seal(const char *path, uint64_t meta_offset)
{
	uint8_t digest[OPUS_SHA256_LEN];
	char hex[2 * OPUS_SHA256_LEN + 1];
	size_t len;
	char *buf;
	int ret = opus_read_file(path, &buf, &len);

	if (ret)
		return ret;
	opus_sha256(buf, len, digest);
	opus_hex_encode(digest, sizeof(digest), hex);
	memcpy(buf + meta_offset + strlen(SHA_KEY), hex, 2 * OPUS_SHA256_LEN);
	ret = opus_write_file(path, buf, len);
	free(buf);
	return ret;
}

int opatch_write(const struct opatch *p, const char *path)
{
	struct writer w = {0};
	uint32_t *elfidx = calloc(p->nsyms + 1, sizeof(*elfidx));
	uint64_t meta_offset = 0;
	char tmp[4200];
	int fd, meta_idx = 0, ret;

	if (!elfidx)
		return opus_err(-ENOMEM, "out of memory");
	elf_version(EV_CURRENT);
	/* Written beside path and renamed over it once whole and sealed: a
	 * symlink at path is replaced, never followed; a file there is kept
	 * if this fails. */
	fd = opus_tmp_beside(path, 0644, tmp, sizeof(tmp));
	if (fd < 0) {
		free(elfidx);
		return fd;
	}
	w.elf = elf_begin(fd, ELF_C_WRITE, NULL);
	ret = w.elf && gelf_newehdr(w.elf, ELFCLASS64) ? build_elf(&w, p, elfidx, &meta_idx) : -EIO;
	if (!ret && elf_update(w.elf, ELF_C_WRITE) < 0)
		ret = -EIO;
	if (!ret) {
		GElf_Shdr shdr;

		gelf_getshdr(elf_getscn(w.elf, (size_t)meta_idx), &shdr);
		meta_offset = shdr.sh_offset;
	}
	if (ret)
		opus_err(ret, "%s: cannot write patch file: %s", path, elf_errmsg(-1));
	elf_end(w.elf);
	close(fd);
	for (size_t i = 0; i < w.nowned; i++)
		free(w.owned[i]);
	free(w.owned);
	opus_buf_free(&w.shstr);
	free(elfidx);
	if (!ret)
		ret = seal(tmp, meta_offset);
	if (!ret && rename(tmp, path))
		ret = opus_err(-errno, "%s: %s", path, strerror(errno));
	if (ret)
		unlink(tmp);
	return ret;
}
