/* Reads and validates an .opatch. Every field is checked: a corrupt or
 * hostile file gets an error naming the file and the field, never a crash. */
#include "opatch.h"
#include "trailer.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/file.h"
#include "util/hex.h"
#include "util/sha256.h"

#include <errno.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHA_KEY		  "sha256="
#define MAX_PATCH_SIZE	  (256u << 20)
#define MAX_SECTION_ALIGN 4096

struct reader {
	const char *path;
	char *buf;
	size_t len;
	Elf *elf;
	size_t shstrndx;
	int32_t *content_of; /* ELF section index -> content index, or -1 */
	size_t nscn;
};

#define BAD(r, ...) opus_err_wrap(opus_err(-EINVAL, __VA_ARGS__), "%s", (r)->path)

static const char *scn_name(struct reader *r, const GElf_Shdr *shdr)
{
	const char *n = elf_strptr(r->elf, r->shstrndx, shdr->sh_name);

	return n ? n : "";
}

static Elf_Data *text_section(struct reader *r, const char *name)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;

	while ((scn = elf_nextscn(r->elf, scn)))
		if (gelf_getshdr(scn, &shdr) && shdr.sh_type == SHT_PROGBITS &&
		    !strcmp(scn_name(r, &shdr), name))
			return elf_getdata(scn, NULL);
	return NULL;
}

/* Copies a section's text, NUL-terminated; no embedded NUL allowed. */
static int text_copy(struct reader *r, const char *name, char **out)
{
	Elf_Data *d = text_section(r, name);

	if (!d || !d->d_buf)
		return BAD(r, "missing section %s", name);
	if (memchr(d->d_buf, '\0', d->d_size))
		return BAD(r, "section %s: unexpected NUL byte", name);
	*out = strndup(d->d_buf, d->d_size);
	return *out ? 0 : -ENOMEM;
}

static int verify_digest(struct reader *r)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;
	uint8_t want[OPUS_SHA256_LEN], got[OPUS_SHA256_LEN];
	char *copy, *field;

	while ((scn = elf_nextscn(r->elf, scn)))
		if (gelf_getshdr(scn, &shdr) && !strcmp(scn_name(r, &shdr), ".opus.meta"))
			break;
	if (!scn)
		return BAD(r, "not an opus patch (no .opus.meta section)");
	if (shdr.sh_type != SHT_PROGBITS || shdr.sh_offset > r->len ||
	    shdr.sh_size > r->len - shdr.sh_offset || shdr.sh_size < strlen(SHA_KEY) + 64 ||
	    memcmp(r->buf + shdr.sh_offset, SHA_KEY, strlen(SHA_KEY)))
		return BAD(r, "malformed .opus.meta section");
	field = r->buf + shdr.sh_offset + strlen(SHA_KEY);
	{
		char hex[65];

		memcpy(hex, field, 64);
		hex[64] = '\0';
		if (opus_hex_decode(hex, want, sizeof(want)) != OPUS_SHA256_LEN)
			return BAD(r, "malformed sha256 in .opus.meta");
	}
	copy = malloc(r->len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, r->buf, r->len);
	memset(copy + (field - r->buf), '0', 64);
	opus_sha256(copy, r->len, got);
	free(copy);
	if (memcmp(want, got, sizeof(got)))
		return BAD(r, "checksum mismatch: the file is corrupt or was modified");
	return 0;
}

/* Next "key=value" line of text; returns false at the end. */
static bool next_kv(char **text, char **key, char **val)
{
	char *line = *text, *nl, *eq;

	if (!*line)
		return false;
	nl = strchr(line, '\n');
	if (nl)
		*nl = '\0';
	*text = nl ? nl + 1 : line + strlen(line);
	eq = strchr(line, '=');
	*key = line;
	*val = eq ? eq + 1 : NULL;
	if (eq)
		*eq = '\0';
	return true;
}

/* A text record's field, which may appear once. */
static int set_once(struct reader *r, const char *scn, const char *key, char **dst, const char *val)
{
	if (*dst)
		return BAD(r, "%s: %s given twice", scn, key);
	*dst = strdup(val);
	return *dst ? 0 : -ENOMEM;
}

static int read_meta(struct reader *r, struct opatch *p)
{
	char *text, *cur, *key, *val;
	int ret = text_copy(r, ".opus.meta", &text), format = 0;
	char *per_thread = NULL;

	if (ret)
		return ret;
	for (cur = text; !ret && next_kv(&cur, &key, &val);) {
		if (!val)
			ret = BAD(r, ".opus.meta: malformed line '%.40s'", key);
		else if (!strcmp(key, "format"))
			format = atoi(val);
		else if (!strcmp(key, "id"))
			ret = set_once(r, ".opus.meta", key, &p->id, val);
		else if (!strcmp(key, "description"))
			ret = set_once(r, ".opus.meta", key, &p->description, val);
		else if (!strcmp(key, "diff-sha256"))
			ret = set_once(r, ".opus.meta", key, &p->diff_sha256, val);
		else if (!strcmp(key, "finding"))
			ret = opus_append_line(&p->findings, val);
		else if (!strcmp(key, "line-map"))
			ret = opus_append_line(&p->line_map, val);
		else if (!strcmp(key, "transition"))
			ret = strcmp(val, "per-thread")
				  ? BAD(r, ".opus.meta: unknown transition '%.40s'", val)
				  : set_once(r, ".opus.meta", key, &per_thread, val);
		else if (!strcmp(key, "stop-world"))
			ret = opus_append_line(&p->stop_world, val);
		else if (!strcmp(key, "after"))
			ret = opatch_id_valid(val)
				  ? opus_append_line(&p->after, val)
				  : BAD(r, ".opus.meta: bad patch id after '%.40s'", val);
	}
	free(text);
	if (!ret && per_thread && p->stop_world)
		ret = BAD(r, ".opus.meta: transition=per-thread beside stop-world lines");
	else if (!ret && per_thread && !(p->stop_world = strdup("")))
		ret = -ENOMEM;
	free(per_thread);
	if (ret)
		return ret;
	if (format != OPATCH_FORMAT_VERSION)
		return BAD(
		    r,
		    "unsupported patch format %d (this opus reads %d): rebuild the patch with "
		    "this opus",
		    format, OPATCH_FORMAT_VERSION);
	if (!p->id || !opatch_id_valid(p->id))
		return BAD(r, "missing or invalid patch id");
	return 0;
}

static int read_target(struct reader *r, struct opatch *p)
{
	char *text, *cur, *key, *val;
	int ret = text_copy(r, ".opus.target", &text), n;

	if (ret)
		return ret;
	for (cur = text; !ret && next_kv(&cur, &key, &val);) {
		if (!val)
			ret = BAD(r, ".opus.target: malformed line");
		else if (!strcmp(key, "build-id")) {
			n = opus_hex_decode(val, p->build_id, sizeof(p->build_id));
			if (n <= 0)
				ret = BAD(r, ".opus.target: invalid build-id");
			else
				p->build_id_len = (size_t)n;
		} else if (!strcmp(key, "name"))
			ret = set_once(r, ".opus.target", key, &p->target_name, val);
	}
	free(text);
	if (!ret && (!p->build_id_len || !p->target_name))
		ret = BAD(r, ".opus.target: build-id and name are required");
	return ret;
}

static int read_content(struct reader *r, struct opatch *p)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;

	while ((scn = elf_nextscn(r->elf, scn))) {
		size_t idx = elf_ndxscn(scn);
		Elf_Data *d;
		int c;

		if (!gelf_getshdr(scn, &shdr))
			return BAD(r, "bad section header %zu", idx);
		if (!(shdr.sh_flags & SHF_ALLOC))
			continue;
		if ((shdr.sh_type != SHT_PROGBITS && shdr.sh_type != SHT_NOBITS) ||
		    shdr.sh_size > MAX_PATCH_SIZE || shdr.sh_addralign > MAX_SECTION_ALIGN ||
		    (shdr.sh_addralign & (shdr.sh_addralign - 1)))
			return BAD(r, "section %s: unsupported type, size or alignment",
				   scn_name(r, &shdr));
		d = shdr.sh_type == SHT_PROGBITS ? elf_getdata(scn, NULL) : NULL;
		if (shdr.sh_type == SHT_PROGBITS && shdr.sh_size &&
		    (!d || d->d_size != shdr.sh_size))
			return BAD(r, "section %s: truncated", scn_name(r, &shdr));
		c = opatch_add_section(p, scn_name(r, &shdr), shdr.sh_type, shdr.sh_flags,
				       shdr.sh_addralign, d ? d->d_buf : NULL, shdr.sh_size);
		if (c < 0)
			return c;
		r->content_of[idx] = c;
	}
	return 0;
}

static int read_syms(struct reader *r, struct opatch *p)
{
	GElf_Shdr shdr;
	Elf_Scn *scn = NULL;
	Elf_Data *d;
	size_t n;

	while ((scn = elf_nextscn(r->elf, scn)))
		if (gelf_getshdr(scn, &shdr) && shdr.sh_type == SHT_SYMTAB)
			break;
	if (!scn || !(d = elf_getdata(scn, NULL)) || shdr.sh_entsize != sizeof(Elf64_Sym))
		return BAD(r, "missing or malformed .symtab");
	n = shdr.sh_size / sizeof(Elf64_Sym);
	for (size_t i = 1; i < n; i++) {
		enum opatch_sym_kind kind;
		const char *name;
		uint32_t section = 0;
		GElf_Sym sym;
		int ret;

		if (!gelf_getsym(d, (int)i, &sym))
			return BAD(r, "symbol %zu unreadable", i);
		name = elf_strptr(r->elf, shdr.sh_link, sym.st_name);
		if (!name)
			return BAD(r, "symbol %zu: bad name", i);
		if (sym.st_shndx == SHN_UNDEF)
			kind = OPATCH_SYM_EXTERN;
		else if (sym.st_shndx == SHN_ABS)
			kind = OPATCH_SYM_TARGET;
		else if (sym.st_shndx < r->nscn && r->content_of[sym.st_shndx] >= 0) {
			section = (uint32_t)r->content_of[sym.st_shndx];
			kind = GELF_ST_TYPE(sym.st_info) == STT_SECTION ? OPATCH_SYM_SECTION
									: OPATCH_SYM_DEFINED;
			if (sym.st_value > p->sections[section].size)
				return BAD(r, "symbol %s: value outside its section", name);
		} else
			return BAD(r, "symbol %zu (%s): bad section index", i, name);
		if ((kind == OPATCH_SYM_EXTERN || kind == OPATCH_SYM_TARGET) && !*name)
			return BAD(r, "symbol %zu: unnamed external symbol", i);
		ret = opatch_add_sym(p, name, kind, section, sym.st_value, sym.st_size,
				     GELF_ST_TYPE(sym.st_info));
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int read_relas(struct reader *r, struct opatch *p)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;

	while ((scn = elf_nextscn(r->elf, scn))) {
		struct opatch_section *s;
		Elf_Data *d;
		int32_t c;

		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_RELA)
			continue;
		c = shdr.sh_info < r->nscn ? r->content_of[shdr.sh_info] : -1;
		d = elf_getdata(scn, NULL);
		if (c < 0 || !d || shdr.sh_entsize != sizeof(Elf64_Rela))
			return BAD(r, "relocation section %s is malformed", scn_name(r, &shdr));
		s = &p->sections[c];
		for (size_t j = 0; j < shdr.sh_size / sizeof(Elf64_Rela); j++) {
			struct opatch_rela rel;
			unsigned width;
			GElf_Rela gr;

			if (!gelf_getrela(d, (int)j, &gr))
				return BAD(r, "%s: relocation %zu unreadable", s->name, j);
			rel.offset = gr.r_offset;
			rel.type = (uint32_t)GELF_R_TYPE(gr.r_info);
			rel.addend = gr.r_addend;
			width = opatch_rela_width(rel.type);
			if (!width)
				return BAD(r, "%s: unsupported relocation type %u", s->name,
					   rel.type);
			if (GELF_R_SYM(gr.r_info) == 0 || GELF_R_SYM(gr.r_info) > p->nsyms)
				return BAD(r, "%s: relocation %zu: bad symbol index", s->name, j);
			rel.sym = (uint32_t)GELF_R_SYM(gr.r_info) - 1;
			if (s->type == SHT_NOBITS || rel.offset > s->size ||
			    s->size - rel.offset < width)
				return BAD(r, "%s: relocation %zu outside the section", s->name, j);
			if (opatch_add_rela(p, (uint32_t)c, &rel) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

/* Symbol index sym (1-based, as in .symtab) names a function of the
 * patch's code. */
static int check_func_sym(struct reader *r, const struct opatch *p, const char *name,
			  const char *which, unsigned sym)
{
	const struct opatch_sym *s;

	if (sym == 0 || sym > p->nsyms)
		return BAD(r, ".opus.funcs: %s: bad %s symbol index %u", name, which, sym);
	s = &p->syms[sym - 1];
	if (s->kind != OPATCH_SYM_DEFINED || s->type != STT_FUNC)
		return BAD(r, ".opus.funcs: %s: %s symbol %s is not a function in the patch", name,
			   which, s->name);
	return 0;
}

static int parse_func_line(struct reader *r, struct opatch *p, char *line)
{
	char name[256], kind[16], digest[72];
	unsigned long long addr, size;
	unsigned sym, old = 0;
	int ret, end = 0, tail = 0;

	/* An optional last field, old=<index>, names the old code's copy. */
	if (sscanf(line, "%255s 0x%llx %llu %u %15s %71s%n", name, &addr, &size, &sym, kind, digest,
		   &end) != 6 ||
	    (strcmp(kind, "replace") && strcmp(kind, "cold")) ||
	    (line[end] && (sscanf(line + end, " old=%u%n", &old, &tail) != 1 || line[end + tail] ||
			   !strcmp(kind, "cold"))))
		return BAD(r, ".opus.funcs: malformed line '%.60s'", line);
	if ((ret = check_func_sym(r, p, name, "new", sym)) ||
	    (old && (ret = check_func_sym(r, p, name, "old", old))))
		return ret;
	if (!strcmp(kind, "replace") && size < 5)
		return BAD(r, ".opus.funcs: %s: %llu bytes is too small to redirect", name, size);
	if (addr + size < addr)
		return BAD(r, ".opus.funcs: %s: address range overflows", name);
	ret = opatch_add_func(p, name, addr, size, sym - 1, !strcmp(kind, "cold"));
	if (ret < 0)
		return -ENOMEM;
	p->funcs[ret].old_sym = (int32_t)old - 1;
	if (opus_hex_decode(digest, p->funcs[ret].old_sha256, sizeof(p->funcs[ret].old_sha256)) !=
	    (int)sizeof(p->funcs[ret].old_sha256))
		return BAD(r, ".opus.funcs: %s: bad digest '%.70s'", name, digest);
	return 0;
}

static int read_funcs(struct reader *r, struct opatch *p)
{
	char *text, *cur, *nl;
	int ret = text_copy(r, ".opus.funcs", &text);

	if (ret)
		return ret;
	for (cur = text; !ret && *cur; cur = nl ? nl + 1 : cur + strlen(cur)) {
		nl = strchr(cur, '\n');
		if (nl)
			*nl = '\0';
		ret = parse_func_line(r, p, cur);
	}
	free(text);
	if (!ret && !p->nfuncs)
		ret = BAD(r, ".opus.funcs: the patch replaces no function");
	if (!ret && p->funcs[0].cold)
		ret = BAD(r, ".opus.funcs: a cold part must follow its function");
	return ret;
}

static int check_header(struct reader *r)
{
	GElf_Ehdr ehdr;

	if (elf_kind(r->elf) != ELF_K_ELF || !gelf_getehdr(r->elf, &ehdr) ||
	    gelf_getclass(r->elf) != ELFCLASS64)
		return BAD(r, "not an ELF64 file");
	if (ehdr.e_type != ET_REL || ehdr.e_machine != EM_X86_64)
		return BAD(r, "not an x86-64 relocatable patch file");
	if (elf_getshdrstrndx(r->elf, &r->shstrndx) || elf_getshdrnum(r->elf, &r->nscn))
		return BAD(r, "bad section headers");
	return 0;
}

int opatch_read_mem(const char *name, const void *buf, size_t len, struct opatch *p)
{
	struct reader r = {.path = name, .buf = (char *)buf, .len = len};
	int ret;

	opatch_init(p);
	elf_version(EV_CURRENT);
	if (len > MAX_PATCH_SIZE)
		return opus_err(-EFBIG, "%s: too large for a patch file", name);
	r.elf = elf_memory(r.buf, r.len);
	ret = r.elf ? check_header(&r) : BAD(&r, "not an ELF file");
	if (!ret)
		ret = verify_digest(&r);
	if (!ret) {
		r.content_of = malloc(r.nscn * sizeof(*r.content_of));
		ret = r.content_of ? 0 : -ENOMEM;
		for (size_t i = 0; i < r.nscn && !ret; i++)
			r.content_of[i] = -1;
	}
	if (!ret)
		ret = read_meta(&r, p);
	if (!ret)
		ret = read_target(&r, p);
	if (!ret)
		ret = read_content(&r, p);
	if (!ret)
		ret = read_syms(&r, p);
	if (!ret)
		ret = read_relas(&r, p);
	if (!ret)
		ret = read_funcs(&r, p);
	if (r.elf)
		elf_end(r.elf);
	free(r.content_of);
	if (ret)
		opatch_free(p);
	return ret;
}

int opatch_read(const char *path, struct opatch *p)
{
	struct optrailer t;
	char *buf;
	size_t len;
	int ret;

	opatch_init(p);
	ret = opus_read_file(path, &buf, &len);
	if (ret)
		return ret;
	/* A signature trailer is not part of the patch (trailer.h). */
	ret = optrailer_split(path, buf, len, &t);
	if (!ret)
		ret = opatch_read_mem(path, buf, t.body_len, p);
	free(buf);
	return ret;
}
