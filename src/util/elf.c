#include "elf.h"
#include "err.h"
#include "file.h"
#include "hindex.h"

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

bool opus_elf_writable_at(Elf *elf, uint64_t vaddr)
{
	bool writable = false;
	size_t n;

	if (elf_getphdrnum(elf, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || vaddr < ph.p_vaddr ||
		    vaddr >= ph.p_vaddr + ph.p_memsz)
			continue;
		if (ph.p_type == PT_GNU_RELRO)
			return false;
		if (ph.p_type == PT_LOAD)
			writable = ph.p_flags & PF_W;
	}
	return writable;
}

/* The first relocation of an SHT_RELA section (with all of flags) that
 * match accepts, and its section's header. */
static bool find_rela(Elf *elf, uint64_t flags, bool (*match)(const GElf_Rela *, uint64_t),
		      uint64_t key, GElf_Shdr *sh, GElf_Rela *r)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn))) {
		Elf_Data *d;

		if (!gelf_getshdr(scn, sh) || sh->sh_type != SHT_RELA ||
		    (sh->sh_flags & flags) != flags || !(d = elf_getdata(scn, NULL)))
			continue;
		for (size_t i = 0; gelf_getrela(d, (int)i, r); i++)
			if (match(r, key))
				return true;
	}
	return false;
}

static bool irelative_of(const GElf_Rela *r, uint64_t resolver)
{
	return GELF_R_TYPE(r->r_info) == R_X86_64_IRELATIVE && (uint64_t)r->r_addend == resolver;
}

int opus_elf_irelative_slot(Elf *elf, uint64_t resolver, uint64_t *slot)
{
	GElf_Shdr sh;
	GElf_Rela r;

	if (!find_rela(elf, 0, irelative_of, resolver, &sh, &r))
		return -ENOENT;
	*slot = r.r_offset;
	return 0;
}

static const char *dynsym_name(Elf *elf, const GElf_Shdr *rela_sh, size_t index)
{
	Elf_Scn *symscn = elf_getscn(elf, rela_sh->sh_link);
	Elf_Data *d = symscn ? elf_getdata(symscn, NULL) : NULL;
	GElf_Shdr sh;
	GElf_Sym sym;

	if (!index)
		return "";
	if (!d || !gelf_getshdr(symscn, &sh) || !gelf_getsym(d, (int)index, &sym))
		return NULL;
	return elf_strptr(elf, sh.sh_link, sym.st_name);
}

static bool applied_at(const GElf_Rela *r, uint64_t slot)
{
	return r->r_offset == slot;
}

int opus_elf_dynreloc_at(Elf *elf, uint64_t slot, const char **name, int64_t *addend)
{
	GElf_Shdr sh;
	GElf_Rela r;

	/* The loader's relocations are the loaded ones. */
	if (!find_rela(elf, SHF_ALLOC, applied_at, slot, &sh, &r))
		return -ENOENT;
	*name = dynsym_name(elf, &sh, GELF_R_SYM(r.r_info));
	*addend = r.r_addend;
	return *name ? 0 : -ENOENT;
}

int opus_elf_plt_slot(Elf *elf, uint64_t entry, uint64_t *slot)
{
	static const uint8_t endbr64[] = {0xf3, 0x0f, 0x1e, 0xfa};
	uint8_t c[16];
	size_t i = 0;
	int32_t disp;

	if (opus_elf_read_vaddr(elf, entry, c, sizeof(c)))
		return -ENOENT;
	if (!memcmp(c, endbr64, sizeof(endbr64)))
		i += sizeof(endbr64);
	if (c[i] == 0xf2) /* bnd */
		i++;
	if (c[i] != 0xff || c[i + 1] != 0x25)
		return -ENOENT;
	memcpy(&disp, c + i + 2, sizeof(disp));
	*slot = entry + i + 6 + (uint64_t)(int64_t)disp;
	return 0;
}

Elf_Scn *opus_elf_section_of_type(Elf *elf, uint32_t type, GElf_Shdr *shdr)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn)))
		if (gelf_getshdr(scn, shdr) && shdr->sh_type == type)
			return scn;
	return NULL;
}

static int index_by_name(struct opus_symtab *t);

bool opus_sym_read(Elf *elf, Elf_Data *syms, size_t strtab, Elf_Data *versyms, size_t i,
		   struct opus_sym *out)
{
	GElf_Versym vs = 0;
	GElf_Sym sym;

	if (!gelf_getsym(syms, (int)i, &sym) || !(out->name = elf_strptr(elf, strtab, sym.st_name)))
		return false;
	out->file = NULL;
	out->value = sym.st_value;
	out->size = sym.st_size;
	out->shndx = sym.st_shndx;
	out->type = GELF_ST_TYPE(sym.st_info);
	out->bind = GELF_ST_BIND(sym.st_info);
	out->hidden = versyms && gelf_getversym(versyms, (int)i, &vs) && (vs & 0x8000);
	return true;
}

int opus_symtab_load(Elf *elf, bool dynamic, struct opus_symtab *out)
{
	GElf_Shdr shdr, vshdr;
	Elf_Scn *scn = opus_elf_section_of_type(elf, dynamic ? SHT_DYNSYM : SHT_SYMTAB, &shdr);
	Elf_Scn *vscn = dynamic ? opus_elf_section_of_type(elf, SHT_GNU_versym, &vshdr) : NULL;
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

		if (!opus_sym_read(elf, data, shdr.sh_link, vdata, i, s))
			continue;
		if (s->type == STT_FILE) {
			file = s->name;
			continue;
		}
		s->file = s->bind == STB_LOCAL ? file : NULL;
		out->count++;
	}
	if (index_by_name(out)) {
		opus_symtab_free(out);
		return -ENOMEM;
	}
	return 0;
}

bool opus_elf_imports(Elf *elf, const char *const *names, size_t n)
{
	GElf_Shdr shdr;
	Elf_Scn *scn = opus_elf_section_of_type(elf, SHT_DYNSYM, &shdr);
	Elf_Data *data = scn ? elf_getdata(scn, NULL) : NULL;
	size_t count = data && shdr.sh_entsize ? shdr.sh_size / shdr.sh_entsize : 0;

	for (size_t i = 1; i < count; i++) {
		GElf_Sym sym;
		const char *name;

		if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx != SHN_UNDEF ||
		    !(name = elf_strptr(elf, shdr.sh_link, sym.st_name)))
			continue;
		for (size_t k = 0; k < n; k++)
			if (opus_sym_name_eq(name, names[k]))
				return true;
	}
	return false;
}

/* Names compare up to any '@': "memcpy@GLIBC_2.14" sorts as "memcpy". */
static int name_key_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int x = *a == '@' ? 0 : (unsigned char)*a, y = *b == '@' ? 0 : (unsigned char)*b;

		if (x != y || !x)
			return x - y;
	}
}

/* The hash of a name up to any '@' (its low 32 bits: enough to tell
 * buckets and most names apart). */
static uint32_t name_key_hash(const char *s)
{
	return (uint32_t)opus_hash_mem(s, strcspn(s, "@"), 0);
}

/* Symbol x against the name n, whose hash is h: by hash, then name. */
static int cmp_named(const struct opus_symtab *t, size_t x, uint32_t h, const char *n)
{
	if (t->name_hash[x] != h)
		return t->name_hash[x] < h ? -1 : 1;
	return name_key_cmp(t->syms[x].name, n);
}

static int cmp_by_addr(const void *a, const void *b, void *ctx)
{
	const struct opus_sym *v = ctx;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	if (v[x].value != v[y].value)
		return v[x].value < v[y].value ? -1 : 1;
	return (x > y) - (x < y);
}

static bool defined_func(const struct opus_sym *s)
{
	return s->type == STT_FUNC && s->shndx != SHN_UNDEF;
}

/* by_name grouped by bucket (a counting sort, table order kept), then
 * each bucket, of about one symbol, sorted by hash and name by insertion
 * (stable: equal names stay in table order). */
static int index_by_name(struct opus_symtab *t)
{
	size_t nb = 1;

	while (nb < t->count)
		nb *= 2;
	t->nbuckets = nb;
	t->by_name = malloc((t->count ? t->count : 1) * sizeof(*t->by_name));
	t->name_hash = malloc((t->count ? t->count : 1) * sizeof(*t->name_hash));
	t->bucket_start = calloc(nb + 1, sizeof(*t->bucket_start));
	if (!t->by_name || !t->name_hash || !t->bucket_start)
		return -ENOMEM;
	for (size_t i = 0; i < t->count; i++) {
		t->name_hash[i] = name_key_hash(t->syms[i].name);
		t->bucket_start[(t->name_hash[i] & (nb - 1)) + 1]++;
	}
	for (size_t b = 0; b < nb; b++)
		t->bucket_start[b + 1] += t->bucket_start[b];
	/* Filled through bucket_start, each start ends at the next one's... */
	for (size_t i = 0; i < t->count; i++)
		t->by_name[t->bucket_start[t->name_hash[i] & (nb - 1)]++] = i;
	/* ...so shift them back. */
	memmove(t->bucket_start + 1, t->bucket_start, nb * sizeof(*t->bucket_start));
	t->bucket_start[0] = 0;
	for (size_t b = 0; b < nb; b++)
		for (size_t k = t->bucket_start[b] + 1; k < t->bucket_start[b + 1]; k++) {
			size_t x = t->by_name[k], j = k;

			for (;
			     j > t->bucket_start[b] &&
			     cmp_named(t, t->by_name[j - 1], t->name_hash[x], t->syms[x].name) > 0;
			     j--)
				t->by_name[j] = t->by_name[j - 1];
			t->by_name[j] = x;
		}
	return 0;
}

int opus_symtab_index_funcs(struct opus_symtab *t)
{
	if (t->funcs_by_addr)
		return 0;
	t->funcs_by_addr = malloc((t->count ? t->count : 1) * sizeof(*t->funcs_by_addr));
	if (!t->funcs_by_addr)
		return -ENOMEM;
	for (size_t i = 0; i < t->count; i++) {
		if (!defined_func(&t->syms[i]))
			continue;
		t->funcs_by_addr[t->nfuncs++] = i;
		if (t->syms[i].size > t->max_func_size)
			t->max_func_size = t->syms[i].size;
	}
	qsort_r(t->funcs_by_addr, t->nfuncs, sizeof(*t->funcs_by_addr), cmp_by_addr, t->syms);
	return 0;
}

void opus_symtab_free(struct opus_symtab *t)
{
	free(t->syms);
	free(t->by_name);
	free(t->name_hash);
	free(t->bucket_start);
	free(t->funcs_by_addr);
	memset(t, 0, sizeof(*t));
}

size_t opus_symtab_named(const struct opus_symtab *t, const char *name, size_t *first)
{
	uint32_t h = name_key_hash(name);
	size_t b, lo, hi, end;

	*first = 0;
	if (!t->nbuckets) /* never loaded (no such table) */
		return 0;
	b = h & (t->nbuckets - 1);
	lo = t->bucket_start[b];
	hi = t->bucket_start[b + 1];
	while (lo < hi && cmp_named(t, t->by_name[lo], h, name) < 0)
		lo++;
	for (end = lo; end < hi && !cmp_named(t, t->by_name[end], h, name); end++)
		;
	*first = lo;
	return end - lo;
}

size_t opus_symtab_funcs_starting(const struct opus_symtab *t, uint64_t addr, size_t *first)
{
	size_t lo = 0, hi = t->nfuncs, n = 0;

	while (lo < hi) { /* the first function starting at or above addr */
		size_t mid = lo + (hi - lo) / 2;

		if (t->syms[t->funcs_by_addr[mid]].value < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	*first = lo;
	while (lo + n < t->nfuncs && t->syms[t->funcs_by_addr[lo + n]].value == addr)
		n++;
	return n;
}

const struct opus_sym *opus_symtab_func_at(const struct opus_symtab *t, uint64_t addr)
{
	size_t lo = 0, hi = t->nfuncs, best = SIZE_MAX;

	/* Past the last function starting at or below addr... */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->syms[t->funcs_by_addr[mid]].value <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* ...back over every one that may still reach addr. */
	while (lo-- > 0) {
		size_t i = t->funcs_by_addr[lo];
		const struct opus_sym *s = &t->syms[i];

		if (s->value + t->max_func_size + 1 <= addr)
			break;
		if (addr < s->value + (s->size ? s->size : 1) && i < best)
			best = i;
	}
	return best == SIZE_MAX ? NULL : &t->syms[best];
}

bool opus_sym_name_eq(const char *symname, const char *name)
{
	size_t n = strlen(name);

	return !strncmp(symname, name, n) && (symname[n] == '\0' || symname[n] == '@');
}

const struct opus_sym *opus_symtab_find_global(const struct opus_symtab *t, const char *name)
{
	const struct opus_sym *weak = NULL;
	size_t first, n = opus_symtab_named(t, name, &first);

	for (size_t k = 0; k < n; k++) {
		const struct opus_sym *s = &t->syms[t->by_name[first + k]];

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
	size_t first, n = opus_symtab_named(t, name, &first);
	int matches = 0;

	*out = NULL;
	for (size_t k = 0; k < n; k++) {
		const struct opus_sym *s = &t->syms[t->by_name[first + k]];

		if (s->bind != STB_LOCAL || s->shndx == SHN_UNDEF || strcmp(s->name, name))
			continue;
		if (file && (!s->file || strcmp(opus_base_name(s->file), opus_base_name(file))))
			continue;
		if (!matches++)
			*out = s;
	}
	return matches;
}
